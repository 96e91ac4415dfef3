"""T5 / Flan-T5 tokenizer (T5, Flan-T5, BLIP-2 and InstructBLIP Flan-T5 checkpoints):
transformers' ``T5Tokenizer`` as transformers 5 runs it (one class on the tokenizers library,
``T5TokenizerFast`` is the same class), read from ``spiece.model`` + tokenizer_config.json.

That pipeline is not sentencepiece's, so it is written out here in Python on top of the pieces
and scores the C core (``mmsuite._C.SentencePiece``) reads from spiece.model:

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

Decoding maps ids to tokens (added tokens first; a normalized one shows its normalized text),
drops special tokens on request, removes every '▁' of the first token and turns the others into
spaces (``Metaspace`` decoder), then applies ``clean_up_tokenization_spaces`` when the config
sets it (transformers 5 default: off). Ids outside the vocabulary raise ValueError (transformers
drops them silently).

Exactness is checked against transformers 5.24 / tokenizers 0.23 on every record of
tests/data/tokenizers/t5.jsonl. Known approximation: grapheme clusters come from Python's
unicodedata (Unicode 14) with the rules that can change a result (CR LF, controls, Extend /
SpacingMark / ZWJ, Prepend), not the full UAX #29 (Hangul, emoji and Indic conjunct rules only
join clusters of 6 bytes or more, which are normalized char by char either way).
"""
import errno
import operator
import os
import re
import unicodedata

import numpy as np

from . import _C
from ._jsonio import read_json
from .errors import FormatError, UnsupportedError
from .tokenizer import (SPIECE_UNDERLINE, SentencePieceTokenizer, _UNSET_MAX_LENGTH, _WHITESPACE_RUN,
                        _check_batch_options, _token_content)

__all__ = ["T5Tokenizer"]

T5_MODEL_FILE = "spiece.model"
T5_DEFAULT_EXTRA_IDS = 100
_UNK_PENALTY = 10.0  # tokenizers' K_UNK_PENALTY: an unknown char scores min_score - 10
_CACHE_LIMIT = 1 << 16  # words kept in the per-tokenizer Viterbi cache before it is cleared
_SENTINEL = re.compile(r"<extra_id_\d+>")
# tokenizers' find_matches: Rust regex \s*$ / ^\s* (White_Space).
_WS_AT_END = re.compile("[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$")
_WS_AT_START = re.compile("[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*")
_PIECE_START = re.compile(SPIECE_UNDERLINE + "[^" + SPIECE_UNDERLINE + "]*")


# ---- spiece.model: the precompiled charsmap ---------------------------------------------------------


def _varint(buf, pos):
    shift = value = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _proto_fields(buf):
    """(field number, wire type, value) of a serialized protobuf message; value is bytes for
    length-delimited fields, an int otherwise."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        else:
            raise ValueError(f"wire type {wire}")
        if pos > len(buf):
            raise ValueError("truncated field")
        yield field, wire, value


def _read_charsmap(model_path):
    """ModelProto.normalizer_spec.precompiled_charsmap (field 3, its field 2) of a model file,
    b"" when there is none."""
    with open(model_path, "rb") as f:
        data = f.read()
    charsmap = b""
    try:
        for field, wire, value in _proto_fields(data):
            if field == 3 and wire == 2:
                for f2, w2, v2 in _proto_fields(value):
                    if f2 == 2 and w2 == 2:
                        charsmap = bytes(v2)
    except ValueError as e:
        raise FormatError(f"{model_path}: cannot read the normalizer spec: {e}") from None
    return charsmap


class _Charsmap:
    """sentencepiece's precompiled charsmap: u32 trie size, a darts-clone double array of that
    many bytes (values = offsets of replacements), NUL-terminated UTF-8 replacements. Lookups as
    tokenizers' ``spm_precompiled`` crate does them."""

    def __init__(self, blob, what):
        if len(blob) < 4:
            raise FormatError(f"{what}: precompiled charsmap of {len(blob)} bytes")
        size = int.from_bytes(blob[:4], "little")
        if size % 4 or 4 + size > len(blob) or size == 0:
            raise FormatError(f"{what}: precompiled charsmap trie of {size} bytes in a blob of {len(blob)}")
        self.units = np.frombuffer(blob, dtype="<u4", count=size // 4, offset=4).tolist()  # (n_units,)
        self.strings = blob[4 + size:]
        self.what = what
        self._single = {}  # char -> replacement or None

    def first(self, key):
        """Replacement of the shortest key that is a prefix of `key` (bytes), or None:
        ``Precompiled::transform`` (common_prefix_search()[0]); a NUL byte ends the search."""
        units = self.units
        n = len(units)
        unit = units[0]
        pos = (unit >> 10) << ((unit & 0x200) >> 6)
        for c in key:
            if c == 0:
                return None
            pos ^= c
            if pos >= n:
                return None
            unit = units[pos]
            if unit & 0x800000FF != c:
                return None
            pos ^= (unit >> 10) << ((unit & 0x200) >> 6)
            if (unit >> 8) & 1:
                if pos >= n:
                    raise FormatError(f"{self.what}: precompiled charsmap leaf out of range")
                off = units[pos] & 0x7FFFFFFF
                end = self.strings.find(b"\0", off)
                raw = self.strings[off:end if end >= 0 else len(self.strings)]
                try:
                    return raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise FormatError(f"{self.what}: precompiled charsmap replacement is not UTF-8") from None
        return None

    def char(self, c):
        r = self._single.get(c, 0)
        if r == 0:
            r = self._single[c] = self.first(c.encode("utf-8", "surrogatepass"))
        return r


# ---- grapheme clusters (the rules that can change a normalization) ---------------------------------

_OTHER, _CR, _LF, _CONTROL, _JOIN, _PREPEND = range(6)
_PREPEND_RANGES = ((0x600, 0x605), (0x6DD, 0x6DD), (0x70F, 0x70F), (0x890, 0x891), (0x8E2, 0x8E2),
                   (0xD4E, 0xD4E), (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x111C2, 0x111C3),
                   (0x1193F, 0x1193F), (0x11941, 0x11941), (0x11A3A, 0x11A3A), (0x11A84, 0x11A89),
                   (0x11D46, 0x11D46), (0x11F02, 0x11F02))
# Spacing marks (Mc) whose Grapheme_Cluster_Break is Other, not SpacingMark.
_MC_OTHER = frozenset([0x102B, 0x102C, 0x1038, 0x1062, 0x1063, 0x1064, *range(0x1067, 0x106E), 0x1083,
                       *range(0x1087, 0x108D), 0x108F, 0x109A, 0x109B, 0x109C, 0x1A61, 0x1A63, 0x1A64,
                       0xAA7B, 0xAA7D, 0x11720, 0x11721])
_gcb_cache = {}


def _gcb(c):
    """Grapheme_Cluster_Break of c, folded to what the segmenter below distinguishes."""
    k = _gcb_cache.get(c)
    if k is not None:
        return k
    cp = ord(c)
    cat = unicodedata.category(c)
    if c == "\r":
        k = _CR
    elif c == "\n":
        k = _LF
    elif any(a <= cp <= b for a, b in _PREPEND_RANGES):
        k = _PREPEND
    elif (cat in ("Mn", "Me") or cp in (0x200C, 0x200D, 0x0E33, 0x0EB3) or 0xFF9E <= cp <= 0xFF9F
          or 0x1F3FB <= cp <= 0x1F3FF or 0xE0020 <= cp <= 0xE007F or (cat == "Mc" and cp not in _MC_OTHER)):
        k = _JOIN  # Extend, ZWJ or SpacingMark: never a break before it (GB9, GB9a)
    elif cat in ("Cc", "Zl", "Zp", "Cf", "Cs"):
        k = _CONTROL
    else:
        k = _OTHER
    _gcb_cache[c] = k
    return k


def _graphemes(text):
    """Extended grapheme clusters of text (UAX #29 GB3-GB5, GB9-GB9b, GB999)."""
    if text.isascii() and "\r\n" not in text:
        return list(text)
    out, start, prev = [], 0, None
    for i, c in enumerate(text):
        k = _gcb(c)
        if i and not (prev == _CR and k == _LF) and (
                prev in (_CR, _LF, _CONTROL) or k in (_CR, _LF, _CONTROL) or not (k == _JOIN or prev == _PREPEND)):
            out.append(text[start:i])
            start = i
        prev = k
    if start < len(text):
        out.append(text[start:])
    return out


def _is_word_char(c):
    """Rust regex ``\\w``: Alphabetic, marks, decimal digits, connector punctuation, joiners."""
    cat = unicodedata.category(c)
    if cat[0] in "LM" or cat in ("Nd", "Nl", "Pc") or c in "\u200c\u200d":
        return True
    cp = ord(c)
    return 0x24B6 <= cp <= 0x24E9 or 0x1F130 <= cp <= 0x1F149 or 0x1F150 <= cp <= 0x1F169 or 0x1F170 <= cp <= 0x1F189


# ---- added tokens -----------------------------------------------------------------------------------


class _AddedToken:
    """An AddedToken of the vocabulary: ``content`` matched in text becomes ``id``."""
    __slots__ = ("content", "id", "lstrip", "rstrip", "single_word", "normalized", "special")

    def __init__(self, content, id, *, lstrip=False, rstrip=False, single_word=False, normalized=None,
                 special=False):
        self.content, self.id = content, int(id)
        self.lstrip, self.rstrip, self.single_word = bool(lstrip), bool(rstrip), bool(single_word)
        self.special = bool(special)
        self.normalized = (not self.special) if normalized is None else bool(normalized)


class _Matcher:
    """Leftmost-longest matching of a set of added tokens (tokenizers' AddedVocabulary
    find_matches on an Aho-Corasick automaton)."""

    def __init__(self, patterns):
        self.tokens = {}  # pattern -> _AddedToken (first token given wins on a duplicate pattern)
        for pattern, tok in patterns:
            if pattern and pattern not in self.tokens:
                self.tokens[pattern] = tok
        alternatives = sorted(self.tokens, key=len, reverse=True)
        self.regex = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None

    def split(self, text):
        """[(chunk, _AddedToken or None)] covering text; chunks next to a token may lose the
        whitespace its lstrip / rstrip takes."""
        if self.regex is None or not text:
            return [(text, None)]
        out, offset = [], 0
        for m in self.regex.finditer(text):
            start, stop = m.span()
            tok = self.tokens[m.group()]
            if tok.single_word:
                if start > 0 and _is_word_char(text[start - 1]):
                    continue
                if stop < len(text) and _is_word_char(text[stop]):
                    continue
            if tok.lstrip:
                start = max(_WS_AT_END.search(text, 0, start).start(), offset)
            if tok.rstrip:
                stop = _WS_AT_START.match(text, stop).end()
            if offset < start:
                out.append((text[offset:start], None))
            out.append((text[start:stop], tok))
            offset = stop
        if offset < len(text):
            out.append((text[offset:], None))
        return out


# ---- the tokenizer ------------------------------------------------------------------------------------


class T5Tokenizer(SentencePieceTokenizer):
    """transformers' T5Tokenizer / T5TokenizerFast (v5 semantics, see the module docstring) on a
    SentencePiece unigram model; build it with :meth:`from_pretrained`.

    Ids: the model's pieces 0..n-1, then ``extra_ids`` sentinels with ``<extra_id_0>`` LAST
    (id n + extra_ids - 1 - i), then added tokens (BLIP-2's ``<image>`` = n + extra_ids).
    ``encode`` appends ``</s>``; there is no BOS. ``vocab_size`` counts pieces + sentinels,
    ``len()`` the added tokens too. Thread safe: the vocabulary is immutable after construction;
    the word cache is a dict (atomic updates under the GIL).
    """

    def __init__(self, core, *, extra_ids=T5_DEFAULT_EXTRA_IDS, added_tokens=(), eos_token="</s>",
                 unk_token="<unk>", pad_token="<pad>", model_max_length=None, clean_up_tokenization_spaces=False,
                 charsmap=b"", name_or_path=None):
        what = name_or_path or "T5Tokenizer"
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
        scores = [core.score(i) for i in range(n)] + [0.0] * extra_ids
        self._pieces = pieces                                      # (vocab_size,) id -> token
        self._vocab = {p: (i, s) for i, (p, s) in enumerate(zip(pieces, scores))}  # token -> (id, score)
        self._max_piece_len = max((len(p) for p in pieces), default=1)
        self._unk_score = min(scores, default=0.0) - _UNK_PENALTY
        self._charsmap = _Charsmap(charsmap, what) if charsmap else None
        self._ascii_keys = self._ascii_key_regex()
        self._cache = {}

        def vocab_id(tok, what_tok):
            if tok not in self._vocab:
                raise FormatError(f"{what}: {what_tok} {tok!r} is not a piece of the SentencePiece model")
            return self._vocab[tok][0]

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
            self._added[self._vocab[tok][0]] = _AddedToken(tok, self._vocab[tok][0], normalized=False, special=True)
        for tok in added_tokens:
            if tok.id < 0:
                raise FormatError(f"{what}: added token {tok.content!r} has id {tok.id}")
            known = self._vocab.get(tok.content)
            if known is not None and known[0] != tok.id:
                raise FormatError(f"{what}: added token {tok.content!r} has id {tok.id} but is piece {known[0]}")
            self._added[tok.id] = tok
        self._len = max([len(pieces)] + [i + 1 for i in self._added])
        by_content = {}
        for tok in sorted(self._added.values(), key=lambda t: (not t.special, t.id)):  # specials first
            by_content.setdefault(tok.content, tok)
        tokens = list(by_content.values())
        self._raw_matcher = _Matcher((t.content, t) for t in tokens if not t.normalized)
        self._norm_matcher = _Matcher((self._normalize(t.content), t) for t in tokens if t.normalized)
        # What decoding shows for an added token (tokenizers gives a normalized one's normalized
        # text) and the contents skip_special_tokens drops.
        self._surface = {i: (self._normalize(t.content) if t.normalized else t.content) for i, t in self._added.items()}
        self._special_contents = frozenset(t.content for t in self._added.values() if t.special)

    def _ascii_key_regex(self):
        """ASCII characters the charsmap rewrites (plus CR when CR LF is a key), or None."""
        if self._charsmap is None:
            return None
        keys = [chr(c) for c in range(128) if self._charsmap.first(bytes([c])) is not None]
        if self._charsmap.first(b"\r\n") is not None and "\r" not in keys:
            keys.append("\r")
        return re.compile("[" + re.escape("".join(keys)) + "]") if keys else None

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
        core = _C.SentencePiece.from_file(model_path)
        args = cls._files_args(core, directory) if directory else {}
        args["charsmap"] = _read_charsmap(model_path)
        args.update(kwargs)
        return cls(core, name_or_path=path, **args)

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
        hit = self._vocab.get(token)
        return hit[0] if hit else None

    def id_to_token(self, i):
        """The token decoding shows for id i; ValueError outside the vocabulary."""
        i = self._check_id(i)
        return self._surface.get(i) or self._pieces[i]

    # ---- encoding ------------------------------------------------------------------------

    def _normalize(self, text):
        """tokenizers' Precompiled normalizer (see the module docstring)."""
        cm = self._charsmap
        if cm is None or (text.isascii() and (self._ascii_keys is None or not self._ascii_keys.search(text))):
            return text
        out = []
        for g in _graphemes(text):
            if len(g) > 1:
                b = g.encode("utf-8", "surrogatepass")
                if len(b) < 6:
                    r = cm.first(b)
                    if r is not None:
                        out.append(r)
                        continue
            for c in g:
                r = cm.char(c)
                out.append(c if r is None else r)
        return "".join(out)

    def _viterbi(self, s):
        """Ids of one pre-token ('▁...'): tokenizers' Unigram encode_optimized + fuse_unk."""
        n = len(s)
        vocab, max_len, unk_score = self._vocab, self._max_piece_len, self._unk_score
        score = [0.0] * (n + 1)
        start = [-1] * (n + 1)   # (n + 1,) start of the best last piece ending here; -1: none yet
        piece = [0] * (n + 1)    # (n + 1,) its id
        unk = self._unk_id
        for i in range(n):
            base = score[i]
            single = False
            for j in range(i + 1, min(i + max_len, n) + 1):
                hit = vocab.get(s[i:j])
                if hit is None:
                    continue
                cand = hit[1] + base
                if start[j] < 0 or cand > score[j]:
                    score[j], start[j], piece[j] = cand, i, hit[0]
                if j == i + 1:
                    single = True
            if not single:
                cand = unk_score + base
                if start[i + 1] < 0 or cand > score[i + 1]:
                    score[i + 1], start[i + 1], piece[i + 1] = cand, i, unk
        out, end, unk_end = [], n, None
        while end > 0:
            i = start[end]
            if piece[end] == unk:
                if unk_end is None:
                    unk_end = end
            else:
                if unk_end is not None:
                    out.append(self._fused_unk(s[end:unk_end]))
                    unk_end = None
                out.append(piece[end])
            end = i
        if unk_end is not None:
            out.append(self._fused_unk(s[0:unk_end]))
        out.reverse()
        return out

    def _fused_unk(self, text):
        hit = self._vocab.get(text)
        return hit[0] if hit else self._unk_id

    def _word_ids(self, word):
        """Ids of one whitespace-free word: Metaspace (prepend '▁', split before each '▁')."""
        ids = self._cache.get(word)
        if ids is None:
            w = word if word.startswith(SPIECE_UNDERLINE) else SPIECE_UNDERLINE + word
            ids = []
            for p in _PIECE_START.findall(w):
                ids += self._viterbi(p)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[word] = ids
        return ids

    def _chunk_ids(self, chunk, ids):
        for part, tok in self._norm_matcher.split(self._normalize(chunk)):
            if tok is not None:
                ids.append(tok.id)
                continue
            for word in _WHITESPACE_RUN.split(part):
                if word:
                    ids += self._word_ids(word)

    def _raw_ids(self, text):
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        ids = []
        for chunk, tok in self._raw_matcher.split(text):
            if tok is not None:
                ids.append(tok.id)
            elif chunk:
                self._chunk_ids(chunk, ids)
        return ids

    def encode(self, text, add_special_tokens=True):
        """HF ``tokenizer(text)["input_ids"]``: ids, then ``</s>`` (unless add_special_tokens
        is False)."""
        ids = self._raw_ids(text)
        if add_special_tokens:
            ids.append(self._eos_id)
        return ids

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
        False (HF would return a longer row)."""
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
        rows = []
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] must be str, not {type(t).__name__}")
            row = self._raw_ids(t)
            if length is not None and len(row) + 1 > length:
                if not truncation:
                    raise ValueError(f"text {i} has {len(row) + 1} tokens, more than the context length {length} "
                                     "(truncation is off)")
                row = row[:length - 1]
            rows.append(row + [self._eos_id])
        width = length if padding == "max_length" else max((len(r) for r in rows), default=0)
        ids = np.full((len(rows), width), self.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, :len(r)], mask[i, :len(r)] = r, 1
        if return_tensors is None:
            ids, mask = ids.tolist(), mask.tolist()
        return {"input_ids": ids, "attention_mask": mask}

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
