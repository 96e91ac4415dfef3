"""T5 / Flan-T5 tokenizer (T5, Flan-T5, BLIP-2 and InstructBLIP Flan-T5 checkpoints):
transformers' ``T5Tokenizer`` as transformers 5 runs it (one class on the tokenizers library,
``T5TokenizerFast`` is the same class), read from ``spiece.model`` + tokenizer_config.json.

That pipeline is not sentencepiece's; it runs in C (``mmsuite._C.T5Tokenizer``,
csrc/tokenizer_t5.h, without the GIL, batches in parallel) on the pieces, scores and
precompiled charsmap of spiece.model:

1. added tokens (``<pad>``, ``</s>``, ``<unk>``, the sentinels ``<extra_id_0..99>``, BLIP-2's
   ``<image>``, ...) are cut out of the raw text, leftmost-longest, with their AddedToken flags
   (``single_word``, ``lstrip``, ``rstrip``; ``normalized`` ones are matched after step 2);
2. each other chunk goes through the model's precompiled charsmap the way tokenizers'
   ``Precompiled`` normalizer applies it: per extended grapheme cluster, a cluster under 6 UTF-8
   bytes replaced whole by the replacement of its *shortest* charsmap prefix, others char by char
   (sentencepiece instead takes the longest match anywhere: 'ﬁ\\u0301' -> 'fi' here, 'fí' there);
3. split on Unicode White_Space (``WhitespaceSplit``); each word gets a leading '▁' unless it
   has one, and is cut before every '▁' (``Metaspace(prepend_scheme="always", split=True)``);
4. each piece is segmented by unigram Viterbi over the whole vocabulary, control pieces and
   sentinels included (fullwidth '＜/s＞' gives '</s>'), scores summed in double, a run of
   unknown characters fused into one ``<unk>``;
5. ``</s>`` is appended (always: also after a text ending in "</s>").

This module reads the checkpoint files (tokenizer_config.json, special_tokens_map.json,
added_tokens.json, ``extra_ids``) into the added-token list the C tokenizer takes, and owns the
public API: batch padding / truncation options, ids <-> tokens and decoding.

Decoding maps ids to tokens (added tokens first; a normalized one shows its normalized text),
drops special tokens on request, removes every '▁' of the first token and turns the others into
spaces (``Metaspace`` decoder), then applies ``clean_up_tokenization_spaces`` when the config
sets it (transformers 5 default: off). Ids outside the vocabulary raise ValueError (transformers
drops them silently).

Exactness is checked against transformers 5.24 / tokenizers 0.23 on every record of
tests/data/tokenizers/t5.jsonl. Known approximation: grapheme clusters follow the UAX #29 rules
that can change a result (CR LF, controls, Extend / SpacingMark / ZWJ, Prepend) on Unicode 15.0
data, not the full UAX #29 (Hangul, emoji and Indic conjunct rules only join clusters of 6
bytes or more, which are normalized char by char either way).
"""
import errno
import operator
import os
import re

import numpy as np

from . import _C
from ._jsonio import read_json
from .errors import FormatError, UnsupportedError
from .tokenizer import (SPIECE_UNDERLINE, SentencePieceTokenizer, _UNSET_MAX_LENGTH, _batch_result,
                        _check_batch_options, _token_content)

__all__ = ["T5Tokenizer"]

T5_MODEL_FILE = "spiece.model"
T5_DEFAULT_EXTRA_IDS = 100
_SENTINEL = re.compile(r"<extra_id_\d+>")


class _AddedToken:
    """An AddedToken of the vocabulary: ``content`` matched in text becomes ``id``."""
    __slots__ = ("content", "id", "lstrip", "rstrip", "single_word", "normalized", "special")

    def __init__(self, content, id, *, lstrip=False, rstrip=False, single_word=False, normalized=None,
                 special=False):
        self.content, self.id = content, int(id)
        self.lstrip, self.rstrip, self.single_word = bool(lstrip), bool(rstrip), bool(single_word)
        self.special = bool(special)
        self.normalized = (not self.special) if normalized is None else bool(normalized)

    def as_tuple(self):
        """What ``_C.T5Tokenizer`` takes."""
        return (self.content, self.id, self.lstrip, self.rstrip, self.single_word, self.normalized, self.special)


class T5Tokenizer(SentencePieceTokenizer):
    """transformers' T5Tokenizer / T5TokenizerFast (v5 semantics, see the module docstring) on a
    SentencePiece unigram model; build it with :meth:`from_pretrained`.

    Ids: the model's pieces 0..n-1, then ``extra_ids`` sentinels with ``<extra_id_0>`` LAST
    (id n + extra_ids - 1 - i), then added tokens (BLIP-2's ``<image>`` = n + extra_ids).
    ``encode`` appends ``</s>``; there is no BOS. ``vocab_size`` counts pieces + sentinels,
    ``len()`` the added tokens too. Thread safe: everything is immutable after construction
    and the C tokenizer keeps no cache.
    """

    def __init__(self, model, *, core=None, extra_ids=T5_DEFAULT_EXTRA_IDS, added_tokens=(), eos_token="</s>",
                 unk_token="<unk>", pad_token="<pad>", model_max_length=None, clean_up_tokenization_spaces=False,
                 name_or_path=None):
        """``model``: the bytes of spiece.model; ``core``: the ``_C.SentencePiece`` already made
        from them, if any."""
        what = name_or_path or "T5Tokenizer"
        if core is None:
            core = _C.SentencePiece(model, what)
        if core.model_type != "unigram":
            raise UnsupportedError(f"{what}: T5Tokenizer needs a unigram SentencePiece model, not {core.model_type}")
        extra_ids = int(extra_ids)
        if extra_ids < 0:
            raise FormatError(f"{what}: extra_ids must be >= 0, not {extra_ids}")
        self.core = core
        self.name_or_path = name_or_path
        self.extra_ids = extra_ids
        n = core.vocab_size
        # The tokenizers Unigram vocabulary: every piece (control ones too) + the sentinels.
        pieces = [core.id_to_piece(i) for i in range(n)]
        pieces += [f"<extra_id_{i}>" for i in range(extra_ids - 1, -1, -1)]
        self._pieces = pieces                                   # (vocab_size,) id -> token
        self._piece_ids = {p: i for i, p in enumerate(pieces)}  # token -> id (a later id wins)

        def vocab_id(tok, what_tok):
            if tok not in self._piece_ids:
                raise FormatError(f"{what}: {what_tok} {tok!r} is not a piece of the SentencePiece model")
            return self._piece_ids[tok]

        self.eos_token, self.unk_token, self.pad_token = eos_token, unk_token, pad_token
        self._eos_id = vocab_id(eos_token, "eos_token")
        self._pad_id = vocab_id(pad_token, "pad_token")
        vocab_id(unk_token, "unk_token")
        self._unk_id = 2  # transformers 5 builds the Unigram model with unk_id=2, whatever the piece
        self.add_bos, self.add_eos = False, True
        self.model_max_length = int(model_max_length) if model_max_length else _UNSET_MAX_LENGTH
        self.pad_token_id = self._pad_id
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)

        # Added tokens: pad / eos / unk and the sentinels (special, not normalized), then the
        # files' ones, which override those flags.
        self._added = {}  # id -> _AddedToken
        for tok in (pad_token, eos_token, unk_token) + tuple(pieces[n:]):
            self._added[self._piece_ids[tok]] = _AddedToken(tok, self._piece_ids[tok], normalized=False, special=True)
        for tok in added_tokens:
            if tok.id < 0:
                raise FormatError(f"{what}: added token {tok.content!r} has id {tok.id}")
            known = self._piece_ids.get(tok.content)
            if known is not None and known != tok.id:
                raise FormatError(f"{what}: added token {tok.content!r} has id {tok.id} but is piece {known}")
            self._added[tok.id] = tok
        self._len = max([len(pieces)] + [i + 1 for i in self._added])
        # The C tokenizer orders the matching (specials first, then by id) and normalizes the
        # normalized tokens' contents.
        self._c = _C.T5Tokenizer(model, [t.as_tuple() for t in self._added.values()], extra_ids=extra_ids,
                                 eos_id=self._eos_id, unk_id=self._unk_id, name=what)
        # What decoding shows for an added token (tokenizers gives a normalized one's normalized
        # text) and the contents skip_special_tokens drops.
        self._surface = {i: (self._c.normalize(t.content) if t.normalized else t.content)
                         for i, t in self._added.items()}
        self._special_contents = frozenset(t.content for t in self._added.values() if t.special)

    # ---- loading -------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        """Load a checkpoint directory: spiece.model (required: the Unigram model inside
        tokenizer.json is not read) with tokenizer_config.json, special_tokens_map.json and
        added_tokens.json when present; or a bare ``spiece.model`` file. Keyword arguments
        override what the files say."""
        path = os.fspath(path)
        if os.path.isdir(path):
            model_path = os.path.join(path, T5_MODEL_FILE)
            if not os.path.exists(model_path):
                alt = os.path.join(path, "tokenizer.model")
                if not os.path.exists(alt):
                    why = (" (tokenizer.json is there, but mmsuite reads T5's SentencePiece model, not the Unigram "
                           "model of tokenizer.json)" if os.path.exists(os.path.join(path, "tokenizer.json")) else "")
                    raise FileNotFoundError(errno.ENOENT, f"T5 tokenizer: no {T5_MODEL_FILE}{why}", model_path)
                model_path = alt
            directory = path
        elif os.path.exists(path):
            model_path, directory = path, None
        else:
            raise FileNotFoundError(errno.ENOENT, "No such tokenizer file or directory", path)
        with open(model_path, "rb") as f:
            model = f.read()
        core = _C.SentencePiece(model, model_path)
        args = cls._files_args(core, directory) if directory else {}
        args.update(kwargs)
        return cls(model, core=core, name_or_path=path, **args)

    @classmethod
    def _files_args(cls, core, directory):
        """Constructor arguments from tokenizer_config.json, special_tokens_map.json and
        added_tokens.json, as transformers 5 reads them."""
        def load(name):
            p = os.path.join(directory, name)
            return p, read_json(p, missing_ok=True)

        config_path, config = load("tokenizer_config.json")
        special_path, special = load("special_tokens_map.json")
        added_path, added_json = load("added_tokens.json")
        config, special, added_json = config or {}, special or {}, added_json or {}
        for p, obj in ((config_path, config), (special_path, special), (added_path, added_json)):
            if not isinstance(obj, dict):
                raise FormatError(f"{p}: expected a JSON object")
        args = {}
        extra_ids = config.get("extra_ids", T5_DEFAULT_EXTRA_IDS)
        if not isinstance(extra_ids, int) or isinstance(extra_ids, bool) or extra_ids < 0:
            raise FormatError(f"{config_path}: extra_ids must be a non-negative integer, not {extra_ids!r}")
        args["extra_ids"] = extra_ids
        for key in ("eos_token", "unk_token", "pad_token"):
            tok = _token_content(config.get(key)) or _token_content(special.get(key))
            if tok is not None:
                args[key] = tok
        max_len = config.get("model_max_length")
        if isinstance(max_len, int) and 0 < max_len < _UNSET_MAX_LENGTH:
            args["model_max_length"] = max_len
        if isinstance(config.get("clean_up_tokenization_spaces"), bool):
            args["clean_up_tokenization_spaces"] = config["clean_up_tokenization_spaces"]

        base = core.vocab_size + extra_ids
        known = {core.id_to_piece(i): i for i in range(core.vocab_size)}
        known.update({f"<extra_id_{i}>": base - 1 - i for i in range(extra_ids)})
        tokens = {}  # content -> _AddedToken

        decoder = config.get("added_tokens_decoder") or {}
        if not isinstance(decoder, dict):
            raise FormatError(f"{config_path}: added_tokens_decoder must be an object")
        for key, tok in decoder.items():
            try:
                idx = int(key)
            except ValueError:
                raise FormatError(f"{config_path}: added_tokens_decoder key {key!r} is not an id") from None
            if not isinstance(tok, dict) or not isinstance(tok.get("content"), str):
                raise FormatError(f"{config_path}: added_tokens_decoder[{key!r}] has no content")
            tokens[tok["content"]] = _AddedToken(
                tok["content"], idx, lstrip=tok.get("lstrip", False), rstrip=tok.get("rstrip", False),
                single_word=tok.get("single_word", False), normalized=tok.get("normalized"),
                special=tok.get("special", False))

        # Older files: additional_special_tokens (strings or AddedToken dicts) and added_tokens.json.
        additional = []
        for src in (config.get("additional_special_tokens"), config.get("extra_special_tokens"),
                    special.get("additional_special_tokens")):
            if isinstance(src, list):
                additional += [t for t in src if _token_content(t) is not None]
        sentinels = {_token_content(t) for t in additional if _SENTINEL.fullmatch(_token_content(t))}
        if sentinels and extra_ids and len(sentinels) != extra_ids:
            raise FormatError(f"{config_path}: extra_ids is {extra_ids} but additional_special_tokens holds "
                              f"{len(sentinels)} <extra_id_N> tokens")
        for name, idx in added_json.items():
            if not isinstance(idx, int) or isinstance(idx, bool):
                raise FormatError(f"{added_path}: id of {name!r} is not an integer")
            known.setdefault(name, idx)
        next_id = max([base] + [t.id + 1 for t in tokens.values()] + [i + 1 for i in known.values()])
        special_names = {_token_content(t) for t in additional}
        for t in additional:
            content = _token_content(t)
            if content in tokens:
                continue
            flags = t if isinstance(t, dict) else {}
            if content not in known:
                known[content], next_id = next_id, next_id + 1
            tokens[content] = _AddedToken(content, known[content], lstrip=flags.get("lstrip", False),
                                          rstrip=flags.get("rstrip", False),
                                          single_word=flags.get("single_word", False),
                                          normalized=flags.get("normalized", False), special=True)
        for name, idx in added_json.items():
            if name not in tokens:
                tokens[name] = _AddedToken(name, idx, special=name in special_names)
        args["added_tokens"] = list(tokens.values())
        return args

    # ---- properties ----------------------------------------------------------------------

    @property
    def vocab_size(self):
        """Pieces + sentinels (transformers' ``vocab_size``); ``len()`` adds the added tokens."""
        return len(self._pieces)

    def __len__(self):
        return self._len

    @property
    def bos_token_id(self):
        return None

    @property
    def eos_token_id(self):
        return self._eos_id

    @property
    def unk_token_id(self):
        return self._unk_id

    def __repr__(self):
        return (f"T5Tokenizer({self.name_or_path!r}, vocab_size={self.vocab_size}, len={len(self)}, "
                f"extra_ids={self.extra_ids}, model_max_length={self.model_max_length})")

    def token_to_id(self, token):
        """Id of a token (added token or piece), or None."""
        for i, t in self._added.items():
            if t.content == token:
                return i
        return self._piece_ids.get(token)

    def id_to_token(self, i):
        """The token decoding shows for id i; ValueError outside the vocabulary."""
        i = self._check_id(i)
        return self._surface.get(i) or self._pieces[i]

    # ---- encoding ------------------------------------------------------------------------

    def _raw_ids(self, text):
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        return self._c.encode(text, add_eos=False)

    def encode(self, text, add_special_tokens=True):
        """HF ``tokenizer(text)["input_ids"]``: ids, then ``</s>`` (unless add_special_tokens
        is False)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        return self._c.encode(text, add_eos=bool(add_special_tokens))

    def tokenize(self, text):
        """The tokens of ``encode(text, add_special_tokens=False)``."""
        return [self.id_to_token(i) for i in self._raw_ids(text)]

    def __call__(self, texts, context_length=None, padding="max_length", truncation=True, return_tensors="np"):
        """HF ``tokenizer(texts, padding=..., max_length=context_length, truncation=...)`` as
        ``{"input_ids", "attention_mask"}`` int64 arrays (n, L) (``return_tensors=None``: lists).

        Rows are ids + ``</s>``, padded on the right with ``<pad>`` (0). ``context_length``
        defaults to ``model_max_length``; ``padding="max_length"`` makes rows that long,
        ``"longest"`` as long as the longest (at most ``context_length`` when one is known). A
        longer row is cut to L - 1 ids + ``</s>``, or raises ValueError if ``truncation`` is
        False (HF would return a longer row). Texts are encoded in parallel without the GIL."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        padding = _check_batch_options(padding, return_tensors)
        length = self.model_max_length if context_length is None else int(context_length)
        if length >= _UNSET_MAX_LENGTH:
            if padding == "max_length":
                raise ValueError("T5Tokenizer: no model_max_length is known; pass context_length")
            length = None
        elif length < 1:
            raise ValueError(f"context_length must be >= 1, not {length}")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] must be str, not {type(t).__name__}")
        if length is None:  # "longest" without a bound: rows as long as they come
            rows = [self._c.encode(t) for t in texts]
            width = max((len(r) for r in rows), default=0)
            ids = np.full((len(rows), width), self.pad_token_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for i, r in enumerate(rows):
                ids[i, :len(r)], mask[i, :len(r)] = r, 1
            lengths, length = np.asarray([len(r) for r in rows], dtype=np.int64), width
        else:
            ids, mask, lengths = self._c.encode_batch(texts, length, True, self.pad_token_id, True,
                                                      return_lengths=True)
            if not truncation:
                over = np.flatnonzero(lengths > length)
                if len(over):
                    i = int(over[0])
                    raise ValueError(f"text {i} has {int(lengths[i])} tokens, more than the context length {length} "
                                     "(truncation is off)")
        return _batch_result(ids, mask, lengths, length, padding, return_tensors)

    # ---- decoding ------------------------------------------------------------------------

    def _check_id(self, i):
        try:
            j = operator.index(i)
        except TypeError:
            raise TypeError(f"token ids must be integers, not {type(i).__name__}") from None
        if not (0 <= j < self._len) or (j >= len(self._pieces) and j not in self._surface):
            raise ValueError(f"token id {i!r} is not in the vocabulary (0..{self._len - 1})")
        return j

    def decode(self, ids, skip_special_tokens=False, clean_up_tokenization_spaces=None):
        """HF ``decode``: tokens joined by the Metaspace decoder (the first token loses every
        '▁', the others turn '▁' into ' '), special tokens dropped with skip_special_tokens, then
        transformers' clean-up (" ." -> "." etc.) if ``clean_up_tokenization_spaces`` (default:
        the config's flag). ValueError for an id outside the vocabulary."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        if isinstance(ids, int):
            ids = [ids]
        out = []
        for i in ids:
            tok = self.id_to_token(i)
            if skip_special_tokens and tok in self._special_contents:
                continue
            out.append(tok.replace(SPIECE_UNDERLINE, "" if not out else " "))
        text = "".join(out)
        if self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None else clean_up_tokenization_spaces:
            text = (text.replace(" .", ".").replace(" ?", "?").replace(" !", "!").replace(" ,", ",")
                    .replace(" ' ", "'").replace(" n't", "n't").replace(" 'm", "'m").replace(" 's", "'s")
                    .replace(" 've", "'ve").replace(" 're", "'re"))
        return text
