"""Tokenizers: CLIP BPE (openai/CLIP ``simple_tokenizer.py`` semantics, HF ``CLIPTokenizer`` files)
and SentencePiece (SigLIP, T5, Llama / Mistral).

The work is split where the reference semantics are:

* **Python** (:meth:`CLIPTokenizer.clean`): text clean-up, because its reference *is*
  Python: ``ftfy.fix_text``, ``html.unescape`` twice, ``str.strip()``, every run of
  White_Space (the regex module's ``\\s``) collapsed to one space, and full-Unicode
  ``str.lower()``. ftfy (a runtime dependency, fixtures made with 6.3.1) is used when
  importable; without it ``fix_text`` is the identity, which matches the reference's
  ``*_noftfy`` outputs.
* **C** (``mmsuite._C.BPETokenizer``, csrc/tokenizer.h): everything after that: special
  tokens, the pre-tokenizer regex on Unicode 15.0 tables, byte-to-unicode mapping, BPE
  merges, padding/truncation into int64 arrays (in parallel, without the GIL), decoding.

SentencePiece models (SigLIP / T5 ``spiece.model``, Llama / Mistral ``tokenizer.model``) run in
C too (``mmsuite._C.SentencePiece``, csrc/sentencepiece.h, sentencepiece-library semantics);
:class:`SiglipTokenizer` adds transformers' SiglipTokenizer text rules on top in Python.
:class:`T5Tokenizer` (mmsuite/tokenizer_t5.py, re-exported here) follows transformers 5's
T5Tokenizer, whose tokenizers-library pipeline differs from sentencepiece's; it runs in C too
(``mmsuite._C.T5Tokenizer``, csrc/tokenizer_t5.h) on the pieces and scores of the model.

GPT-2 / OPT files (vocab.json + merges.txt, encoder.json + vocab.bpe) and Hugging Face
``tokenizer.json`` files (Llama, Mistral, Qwen2, LLaVA, ...) run in C too
(``mmsuite._C.HFTokenizer``, csrc/tokenizer_hf.h): :class:`GPT2Tokenizer`, :class:`HFTokenizer`
and the streaming detokenizer :class:`StreamDecoder` live in mmsuite/tokenizer_hf.py and are
re-exported here.

``load_tokenizer(path)`` picks the tokenizer class for a checkpoint.
"""
import gzip
import html
import os
import re
import string
import zlib

import numpy as np

from ._jsonio import read_json
from . import _C
from .errors import FormatError, UnsupportedError

try:
    import ftfy
except ImportError:  # optional at run time: the identity then, as the *_noftfy fixtures
    ftfy = None

__all__ = ["CLIPTokenizer", "SentencePieceTokenizer", "SiglipTokenizer", "T5Tokenizer", "HFTokenizer",
           "GPT2Tokenizer", "StreamDecoder", "load_tokenizer", "CLIP_CONTEXT_LENGTH"]

CLIP_CONTEXT_LENGTH = 77
BUNDLED_CLIP_VOCAB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "bpe_simple_vocab_16e6.txt.gz")
SOT_TOKEN = "<|startoftext|>"
EOT_TOKEN = "<|endoftext|>"

# The regex module's \s (White_Space); Python's re \s would add U+001C..U+001F.
_WHITESPACE_RUN = re.compile("[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")
# HF writes a huge model_max_length (int(1e30)) when a checkpoint sets none.
_UNSET_MAX_LENGTH = 10**9


def _read_json(path):
    """Parsed JSON file, or None if it does not exist; FormatError names a corrupt file."""
    return read_json(path, missing_ok=True)


def _check_batch_options(padding, return_tensors):
    """``padding`` of a batch call normalized (True -> "longest"), after checking both options."""
    if padding is True:
        padding = "longest"
    if padding not in ("max_length", "longest"):
        raise ValueError(f"padding must be 'max_length' or 'longest', not {padding!r}")
    if return_tensors not in ("np", None):
        raise ValueError(f"return_tensors must be 'np' or None, not {return_tensors!r}")
    return padding


def _batch_result(ids, mask, lengths, length, padding, return_tensors):
    """A batch call's ``{"input_ids", "attention_mask"}`` from full rows (n, length):
    ``padding="longest"`` keeps the columns of the longest row (``lengths`` (n,), untruncated)."""
    if padding == "longest":
        longest = min(int(lengths.max()), length) if len(ids) else 0
        ids, mask = ids[:, :longest].copy(), mask[:, :longest].copy()
    if return_tensors is None:
        ids, mask = ids.tolist(), mask.tolist()
    return {"input_ids": ids, "attention_mask": mask}


def _token_content(tok):
    """A special token as tokenizer_config.json writes it: a string or an AddedToken dict."""
    if isinstance(tok, dict):
        tok = tok.get("content")
    return tok if isinstance(tok, str) else None


class _CoreVocab:
    """Vocabulary size of a tokenizer whose C core is `self.core`."""

    @property
    def vocab_size(self):
        return self.core.vocab_size

    def __len__(self):
        return self.core.vocab_size


class CLIPTokenizer(_CoreVocab):
    """CLIP BPE tokenizer; build it with :meth:`from_pretrained`.

    ``use_ftfy``: clean text with ``ftfy.fix_text`` first (default: when ftfy is
    importable); can be changed on an instance. ``pad_token_id`` fills padded positions
    (0 as ``clip.tokenize``; HF checkpoints name their own pad token, e.g.
    ``<|endoftext|>`` = 49407). Thread safe: the C core is immutable.
    """

    def __init__(self, core, *, model_max_length=CLIP_CONTEXT_LENGTH, pad_token_id=0,
                 use_ftfy=None, name_or_path=None):
        if use_ftfy and ftfy is None:
            raise ImportError("use_ftfy=True needs the ftfy package: pip install ftfy")
        self.core = core
        self.model_max_length = int(model_max_length)
        self.pad_token_id = int(pad_token_id)
        self.use_ftfy = (ftfy is not None) if use_ftfy is None else bool(use_ftfy)
        self.name_or_path = name_or_path

    # ---- loading -------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path, *, use_ftfy=None):
        """Load a checkpoint directory (vocab.json + merges.txt, with tokenizer_config.json /
        special_tokens_map.json when present) or OpenAI's ``bpe_simple_vocab_16e6.txt.gz``."""
        path = os.fspath(path)
        if os.path.isdir(path):
            return cls._from_hf_dir(path, use_ftfy)
        if not os.path.exists(path):
            raise FileNotFoundError(2, "No such tokenizer file or directory", path)
        if os.path.basename(path) in ("vocab.json", "merges.txt"):
            return cls._from_hf_dir(os.path.dirname(path) or ".", use_ftfy)
        try:
            with open(path, "rb") as f:
                data = f.read()
            if data[:2] == b"\x1f\x8b":  # the file OpenAI ships is gzip-compressed
                data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            if isinstance(e, FileNotFoundError):
                raise
            raise FormatError(f"{path}: cannot decompress: {e}") from None
        try:
            core = _C.BPETokenizer(data, n_merges=_C.CLIP_N_MERGES)
        except FormatError as e:
            raise FormatError(f"{path}: {e}") from None
        return cls(core, model_max_length=CLIP_CONTEXT_LENGTH, pad_token_id=0, use_ftfy=use_ftfy,
                   name_or_path=path)

    @classmethod
    def _from_hf_dir(cls, path, use_ftfy):
        vocab, merges = os.path.join(path, "vocab.json"), os.path.join(path, "merges.txt")
        try:
            core = _C.BPETokenizer.from_hf_files(vocab, merges)
        except FormatError as e:
            raise FormatError(f"{path}: {e}") from None
        config = _read_json(os.path.join(path, "tokenizer_config.json")) or {}
        special = _read_json(os.path.join(path, "special_tokens_map.json")) or {}
        max_len = config.get("model_max_length")
        if not isinstance(max_len, int) or not 0 < max_len < _UNSET_MAX_LENGTH:
            max_len = CLIP_CONTEXT_LENGTH
        # HF's CLIPTokenizer defaults pad_token to <|endoftext|>.
        pad = _token_content(special.get("pad_token")) or _token_content(config.get("pad_token")) or EOT_TOKEN
        pad_id = core.token_to_id(pad)
        if pad_id is None:
            raise FormatError(f"{path}: pad token {pad!r} is not in vocab.json")
        return cls(core, model_max_length=max_len, pad_token_id=pad_id, use_ftfy=use_ftfy,
                   name_or_path=path)

    # ---- properties ----------------------------------------------------------------------

    @property
    def sot_token_id(self):
        return self.core.sot_id

    @property
    def eot_token_id(self):
        return self.core.eot_id

    bos_token_id = sot_token_id
    eos_token_id = eot_token_id

    def __repr__(self):
        return (f"CLIPTokenizer({self.name_or_path!r}, vocab_size={self.vocab_size}, "
                f"model_max_length={self.model_max_length}, pad_token_id={self.pad_token_id}, "
                f"use_ftfy={self.use_ftfy})")

    # ---- text ----------------------------------------------------------------------------

    def clean(self, text):
        """The reference's ``whitespace_clean(basic_clean(text)).lower()``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        if self.use_ftfy:
            if ftfy is None:
                raise ImportError("use_ftfy is set but ftfy is not installed: pip install ftfy")
            text = ftfy.fix_text(text)
        text = html.unescape(html.unescape(text)).strip()
        return _WHITESPACE_RUN.sub(" ", text).strip().lower()

    def encode(self, text, add_special_tokens=True):
        """Token ids of text; with SOT/EOT around them by default."""
        ids = self.core.encode(self.clean(text))
        if add_special_tokens:
            return [self.core.sot_id] + ids + [self.core.eot_id]
        return ids

    def decode(self, ids, skip_special_tokens=False):
        """Text of ids as the reference decodes it (lowercase, a space after each word)."""
        return self.core.decode(ids, skip_special_tokens)

    def __call__(self, texts, context_length=None, padding="max_length", truncation=True,
                 return_tensors="np"):
        """Batch encode to ``{"input_ids", "attention_mask"}``, int64 arrays (n, L).

        Rows are SOT + ids + EOT. ``context_length`` (default ``model_max_length``) is the
        row length for ``padding="max_length"`` and the most any row may hold for
        ``"longest"`` (rows then as long as the longest one). A longer text is cut, its
        last kept id set to EOT, or raises ValueError if ``truncation`` is False.
        ``return_tensors``: ``"np"`` or None (lists).
        """
        if isinstance(texts, str):
            texts = [texts]
        length = self.model_max_length if context_length is None else int(context_length)
        padding = _check_batch_options(padding, return_tensors)
        cleaned = [self.clean(t) for t in texts]
        ids, mask, lengths = self.core.encode_batch(cleaned, length, bool(truncation), self.pad_token_id,
                                                    True, return_lengths=True)
        return _batch_result(ids, mask, lengths, length, padding, return_tensors)


# ---- SentencePiece ----------------------------------------------------------------------------

SP_MODEL_FILES = ("spiece.model", "tokenizer.model")
SPIECE_UNDERLINE = "\u2581"
SIGLIP_CONTEXT_LENGTH = 64
# tokenizer_class values read with SentencePiece (HF "...Fast" variants load the same files), with
# the (add_bos, add_eos) defaults of the HF class.
_SP_TOKENIZER_CLASSES = {"SiglipTokenizer": (False, True), "LlamaTokenizer": (True, False),
                         "T5Tokenizer": (False, True)}


def _sp_model_path(path):
    """The SentencePiece model file of a directory (spiece.model, then tokenizer.model)."""
    for name in SP_MODEL_FILES:
        p = os.path.join(path, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(2, f"No SentencePiece model ({' or '.join(SP_MODEL_FILES)}) in", path)


def _load_sp_core(model_path):
    """The C core; its FormatError / UnsupportedError messages name the file."""
    return _C.SentencePiece.from_file(model_path)


class SentencePieceTokenizer(_CoreVocab):
    """SentencePiece tokenizer (Llama / Mistral BPE, T5 unigram, ...) in C
    (``mmsuite._C.SentencePiece``, csrc/sentencepiece.h): ids as the sentencepiece library's
    ``encode`` (HF ``legacy=True`` behaviour), optionally with BOS / EOS around them.

    ``add_bos`` / ``add_eos``: special tokens put around ``encode(..., add_special_tokens=True)``
    and batch rows (from ``tokenizer_config.json``: ``add_bos_token`` / ``add_eos_token``; T5
    appends EOS, Llama prepends BOS). ``pad_token_id`` fills padded positions. Thread safe.
    """

    def __init__(self, core, *, add_bos=False, add_eos=False, model_max_length=None, pad_token_id=None,
                 name_or_path=None):
        self.core = core
        self.add_bos, self.add_eos = bool(add_bos), bool(add_eos)
        if (self.add_bos and core.bos_id < 0) or (self.add_eos and core.eos_id < 0):
            missing = "BOS" if self.add_bos and core.bos_id < 0 else "EOS"
            raise FormatError(f"{name_or_path or 'SentencePieceTokenizer'}: the model has no {missing} control piece "
                              "to add")
        self.model_max_length = int(model_max_length) if model_max_length else _UNSET_MAX_LENGTH
        if pad_token_id is None:
            pad_token_id = core.pad_id if core.pad_id >= 0 else 0
        self.pad_token_id = int(pad_token_id)
        self.name_or_path = name_or_path

    # ---- loading -------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        """Load a directory (spiece.model or tokenizer.model, with tokenizer_config.json /
        special_tokens_map.json when present) or a ``.model`` file. Keyword arguments
        override what the files say."""
        path = os.fspath(path)
        if os.path.isdir(path):
            model_path, directory = _sp_model_path(path), path
        elif os.path.exists(path):
            model_path, directory = path, os.path.dirname(path) or "."
        else:
            raise FileNotFoundError(2, "No such tokenizer file or directory", path)
        core = _load_sp_core(model_path)
        config, special = {}, {}
        if os.path.isdir(path):
            config = _read_json(os.path.join(directory, "tokenizer_config.json")) or {}
            special = _read_json(os.path.join(directory, "special_tokens_map.json")) or {}
        args = cls._config_args(core, config, special, path)
        args.update(kwargs)
        return cls(core, name_or_path=path, **args)

    @classmethod
    def _config_args(cls, core, config, special, path):
        kind = str(config.get("tokenizer_class") or "")
        kind = kind[:-4] if kind.endswith("Fast") else kind
        add_bos, add_eos = _SP_TOKENIZER_CLASSES.get(kind, (False, False))
        args = {"add_bos": add_bos and core.bos_id >= 0, "add_eos": add_eos and core.eos_id >= 0}
        for key, name in (("add_bos_token", "add_bos"), ("add_eos_token", "add_eos")):
            if isinstance(config.get(key), bool):
                args[name] = config[key]
        max_len = config.get("model_max_length")
        if isinstance(max_len, int) and 0 < max_len < _UNSET_MAX_LENGTH:
            args["model_max_length"] = max_len
        pad = _token_content(special.get("pad_token")) or _token_content(config.get("pad_token"))
        if pad is not None:
            pad_id = core.piece_to_id(pad)
            if pad_id is None:
                raise FormatError(f"{path}: pad token {pad!r} is not a piece of the SentencePiece model")
            args["pad_token_id"] = pad_id
        return args

    # ---- properties ----------------------------------------------------------------------

    @property
    def bos_token_id(self):
        return self.core.bos_id if self.core.bos_id >= 0 else None

    @property
    def eos_token_id(self):
        return self.core.eos_id if self.core.eos_id >= 0 else None

    @property
    def unk_token_id(self):
        return self.core.unk_id if self.core.unk_id >= 0 else None

    def __repr__(self):
        return (f"{type(self).__name__}({self.name_or_path!r}, vocab_size={self.vocab_size}, "
                f"model_type={self.core.model_type!r}, model_max_length={self.model_max_length}, "
                f"pad_token_id={self.pad_token_id})")

    # ---- text ----------------------------------------------------------------------------

    def encode(self, text, add_special_tokens=True):
        """Token ids of text (sentencepiece ``encode``), with BOS / EOS as configured."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        return self.core.encode(text, add_bos=add_special_tokens and self.add_bos,
                                add_eos=add_special_tokens and self.add_eos)

    def decode(self, ids, skip_special_tokens=False):
        """sentencepiece ``decode`` (control pieces such as BOS / EOS never show)."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        return self.core.decode(ids)

    def _check_call(self, texts, context_length, padding, return_tensors):
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] must be str, not {type(t).__name__}")
        length = self.model_max_length if context_length is None else int(context_length)
        if length >= _UNSET_MAX_LENGTH:
            raise ValueError(f"{type(self).__name__}: no model_max_length is known; pass context_length")
        return texts, length, _check_batch_options(padding, return_tensors)

    def __call__(self, texts, context_length=None, padding="max_length", truncation=True, return_tensors="np"):
        """Batch encode to ``{"input_ids", "attention_mask"}``, int64 arrays (n, L): rows
        [BOS] ids [EOS] padded with ``pad_token_id``; a longer row is cut with EOS kept
        last, or raises ValueError if ``truncation`` is False. ``context_length`` defaults
        to ``model_max_length``; ``padding="longest"`` as CLIPTokenizer."""
        texts, length, padding = self._check_call(texts, context_length, padding, return_tensors)
        ids, mask, lengths = self.core.encode_batch(texts, length, bool(truncation), self.pad_token_id,
                                                    self.add_bos, self.add_eos, return_lengths=True)
        return _batch_result(ids, mask, lengths, length, padding, return_tensors)


class SiglipTokenizer(SentencePieceTokenizer):
    """transformers' ``SiglipTokenizer`` (v5) on the C SentencePiece core.

    Per text, as HF does: ``'▁' + text`` (a literal ``'▁'`` read as a space) is split at the
    special tokens (``</s>``, ``<unk>`` and any added ones, which strip the whitespace next
    to them); each other chunk is canonicalized (``str.lower()`` when ``do_lower_case``,
    ``string.punctuation`` removed, ``\\s+`` -> one space, stripped) and encoded as
    ``unk_token + chunk`` with the unk token's own pieces dropped; ``</s>`` is appended
    unless the ids already end with it. Rows are cut to ``model_max_length`` (64) ids, the
    last one EOS, and padded with the pad token (``</s>``). ``decode`` is sentencepiece's.
    """

    def __init__(self, core, *, model_max_length=SIGLIP_CONTEXT_LENGTH, do_lower_case=True, eos_token="</s>",
                 unk_token="<unk>", pad_token="</s>", added_tokens=None, name_or_path=None):
        def piece_id(tok, what):
            i = core.piece_to_id(tok)
            if i is None:
                raise FormatError(f"{name_or_path or 'SiglipTokenizer'}: {what} {tok!r} is not a piece of the "
                                  "SentencePiece model")
            return i

        self.eos_token, self.unk_token, self.pad_token = eos_token, unk_token, pad_token
        super().__init__(core, add_bos=False, add_eos=False, model_max_length=model_max_length,
                         pad_token_id=piece_id(pad_token, "pad_token"), name_or_path=name_or_path)
        self.add_eos = True
        self.do_lower_case = bool(do_lower_case)
        self._eos_id = piece_id(eos_token, "eos_token")
        # content -> (id, lstrip, rstrip); HF makes eos / unk / pad AddedTokens stripping both sides.
        self._special = {}
        for tok in (eos_token, unk_token, pad_token):
            self._special[tok] = (piece_id(tok, "special token"), True, True)
        for content, (i, lstrip, rstrip) in (added_tokens or {}).items():
            self._special[content] = (i, bool(lstrip), bool(rstrip))
        alternatives = sorted(self._special, key=len, reverse=True)  # longest first at a position
        self._special_re = re.compile("|".join(map(re.escape, alternatives)))
        self._unk_prefix_len = len(core.encode(unk_token))
        self._underline_id = core.piece_to_id(SPIECE_UNDERLINE)
        self._punct_table = str.maketrans("", "", string.punctuation)

    @classmethod
    def _config_args(cls, core, config, special, path):
        args = {}
        max_len = config.get("model_max_length")
        if isinstance(max_len, int) and 0 < max_len < _UNSET_MAX_LENGTH:
            args["model_max_length"] = max_len
        if isinstance(config.get("do_lower_case"), bool):
            args["do_lower_case"] = config["do_lower_case"]
        for key in ("eos_token", "unk_token", "pad_token"):
            tok = _token_content(special.get(key)) or _token_content(config.get(key))
            if tok is not None:
                args[key] = tok
        added = {}
        for idx, tok in (config.get("added_tokens_decoder") or {}).items():
            if isinstance(tok, dict) and isinstance(tok.get("content"), str):
                try:
                    added[tok["content"]] = (int(idx), tok.get("lstrip", False), tok.get("rstrip", False))
                except ValueError:
                    raise FormatError(f"{path}: added_tokens_decoder key {idx!r} is not an id") from None
        if added:
            args["added_tokens"] = added
        return args

    @property
    def eos_token_id(self):
        return self._eos_id

    def canonicalize_text(self, text):
        """HF's canonicalize_text (big_vision's): lowercase, no ASCII punctuation, one space."""
        if self.do_lower_case:
            text = text.lower()
        text = text.translate(self._punct_table)
        return re.sub(r"\s+", " ", text).strip()

    def _chunk_ids(self, chunk):
        """HF SiglipTokenizer._tokenize: encode unk_token + canonical chunk, drop the unk's pieces."""
        ids = self.core.encode(self.unk_token + self.canonicalize_text(chunk))
        return ids[self._unk_prefix_len:] if len(ids) >= self._unk_prefix_len else ids

    def _split(self, text):
        """HF PreTrainedTokenizer.tokenize: chunks and special tokens, stripped next to them."""
        parts, pos = [], 0
        for m in self._special_re.finditer(text):
            if m.start() > pos:
                parts.append(text[pos:m.start()])
            parts.append(m.group())
            pos = m.end()
        if pos < len(text):
            parts.append(text[pos:])
        is_special = [p in self._special for p in parts]
        for i, p in enumerate(parts):
            if not is_special[i]:
                continue
            _, lstrip, rstrip = self._special[p]
            if rstrip and i + 1 < len(parts) and parts[i + 1]:
                parts[i + 1] = parts[i + 1].lstrip()
            if lstrip and i > 0 and parts[i - 1]:
                parts[i - 1] = parts[i - 1].rstrip()
        return parts, is_special

    def _ids_without_eos(self, text):
        parts, is_special = self._split(SPIECE_UNDERLINE + text.replace(SPIECE_UNDERLINE, " "))
        ids, special_at = [], []
        for p, sp in zip(parts, is_special):
            if not p:
                continue
            if sp:
                special_at.append(len(ids))
                ids.append(self._special[p][0])
            else:
                ids.extend(self._chunk_ids(p))
        # HF drops a lone leading '▁' piece before a special token.
        if len(ids) > 1 and ids[0] == self._underline_id and 1 in special_at:
            ids = ids[1:]
        return ids

    def encode(self, text, add_special_tokens=True):
        """HF ``tokenizer(text)["input_ids"]``: ids, then ``</s>`` unless already last."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        ids = self._ids_without_eos(text)
        if add_special_tokens and not (ids and ids[-1] == self._eos_id):
            ids.append(self._eos_id)
        return ids

    def __call__(self, texts, context_length=None, padding="max_length", truncation=True, return_tensors="np"):
        """HF ``tokenizer(texts, padding="max_length", max_length=context_length,
        truncation=truncation)`` as int64 arrays (n, L) (``padding="longest"``: rows as
        long as the longest). A longer text is cut to L - 1 ids + ``</s>``; with
        ``truncation=False`` it raises ValueError (HF would return a longer row)."""
        texts, length, padding = self._check_call(texts, context_length, padding, return_tensors)
        n, k = len(texts), self._unk_prefix_len
        ids = np.full((n, length), self.pad_token_id, dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.int64)
        lengths = np.zeros(n, dtype=np.int64)
        # Texts without a special token are one chunk: encode "<unk>" + canonical text for all of
        # them in one C call (parallel, no GIL), rows of length + k, then drop the k unk ids.
        spaced = [SPIECE_UNDERLINE + t.replace(SPIECE_UNDERLINE, " ") for t in texts]
        fast = [i for i, s in enumerate(spaced) if not self._special_re.search(s)]
        slow = set(range(n)).difference(fast)
        if fast:
            rows, rmask, rlen = self.core.encode_batch(
                [self.unk_token + self.canonicalize_text(spaced[i]) for i in fast], length + k, True,
                self.pad_token_id, False, True, return_lengths=True)
            fast = np.asarray(fast, dtype=np.int64)
            ok = rlen - 1 >= k  # else fewer pieces than "<unk>" alone, which HF keeps all of
            ids[fast[ok]], mask[fast[ok]], lengths[fast[ok]] = rows[ok, k:], rmask[ok, k:], rlen[ok] - k
            slow.update(fast[~ok].tolist())
        for i in sorted(slow):
            raw = self._ids_without_eos(texts[i])
            if len(raw) + 1 > length and truncation:
                raw = raw[:length - 1]
            row = raw if raw and raw[-1] == self._eos_id else raw + [self._eos_id]
            lengths[i] = len(row)
            row = row[:length]
            ids[i, :len(row)], mask[i, :len(row)] = row, 1
        if not truncation:
            for i in range(n):
                if lengths[i] > length:
                    raise ValueError(f"text {i} has {int(lengths[i])} tokens, more than the context length "
                                     f"{length} (truncation is off)")
        return _batch_result(ids, mask, lengths, length, padding, return_tensors)


def _sp_class_for(kind):
    """The SentencePiece class for an HF tokenizer_class, or None."""
    kind = str(kind or "")
    if kind.endswith("Fast"):
        kind = kind[:-4]
    if kind not in _SP_TOKENIZER_CLASSES:
        return None
    return {"SiglipTokenizer": SiglipTokenizer, "T5Tokenizer": T5Tokenizer}.get(kind, SentencePieceTokenizer)


def _is_t5_config(model_cfg):
    """Does a config.json describe T5, or a model with a T5 text tower (BLIP-2 / InstructBLIP
    Flan-T5)?"""
    text_cfg = model_cfg.get("text_config")
    return model_cfg.get("model_type") in _T5_MODEL_TYPES or (
        isinstance(text_cfg, dict) and text_cfg.get("model_type") in _T5_MODEL_TYPES)


def _is_clip_vocab(path):
    """Does vocab.json hold CLIP's end-of-word tokens ("x</w>")? (GPT-2's has none.)"""
    try:
        with open(path, "rb") as f:
            return b'</w>"' in f.read()
    except OSError:
        return True  # let the CLIP loader report it


_GPT2_CLASSES = ("GPT2Tokenizer",)
_NOT_TOKENIZER_JSON = ("SiglipTokenizer", "T5Tokenizer", "CLIPTokenizer")  # read from their own files
_T5_MODEL_TYPES = ("t5",)


def load_tokenizer(path, **kwargs):
    """The tokenizer of a checkpoint directory or tokenizer file.

    * Hugging Face ``tokenizer.json`` (a directory holding one, unless its tokenizer_class is
      CLIP, SigLIP or T5, or the file itself): :class:`HFTokenizer` (BPE models; others raise
      UnsupportedError naming the file and feature).
    * GPT-2 / OPT: a directory with vocab.json + merges.txt whose vocabulary is not CLIP's (or
      whose tokenizer_class is GPT2Tokenizer), or with encoder.json + vocab.bpe:
      :class:`GPT2Tokenizer`.
    * CLIP BPE: an HF directory with vocab.json + merges.txt, OpenAI's
      ``bpe_simple_vocab_16e6.txt.gz``, or an OpenCLIP directory (open_clip_config.json), which
      gets OpenAI's vocabulary bundled in mmsuite/data, as open_clip does, with its text
      context_length.
    * SentencePiece: a directory with spiece.model or tokenizer.model, or a ``.model`` file.
      ``tokenizer_config.json``'s ``tokenizer_class`` picks the semantics: SiglipTokenizer ->
      :class:`SiglipTokenizer` (also for a SigLIP ``config.json`` without one); T5Tokenizer ->
      :class:`T5Tokenizer` (also for a ``config.json`` of T5 or with a T5 ``text_config``, as
      BLIP-2 Flan-T5; such a directory without spiece.model raises FileNotFoundError naming it,
      tokenizer.json or not); LlamaTokenizer and none -> :class:`SentencePieceTokenizer`.

    UnsupportedError names the file that shows another kind (another ``tokenizer_class``, a
    lone tokenizer.json); FileNotFoundError if there is no tokenizer file.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        config_path = os.path.join(path, "tokenizer_config.json")
        config = _read_json(config_path) or {}
        kind = config.get("tokenizer_class")
        base = str(kind or "")
        base = base[:-4] if base.endswith("Fast") else base
        model_cfg = _read_json(os.path.join(path, "config.json")) or {}
        siglip = model_cfg.get("model_type") == "siglip"
        if not base and _is_t5_config(model_cfg):  # e.g. BLIP-2 Flan-T5 without a class name
            return T5Tokenizer.from_pretrained(path, **kwargs)
        if (os.path.exists(os.path.join(path, "tokenizer.json")) and base not in _NOT_TOKENIZER_JSON
                and not (siglip and not base)):
            return HFTokenizer.from_pretrained(path, **kwargs)
        sp_cls = _sp_class_for(kind) if kind else None
        if sp_cls is not None:
            return sp_cls.from_pretrained(path, **kwargs)
        if base in _GPT2_CLASSES and _is_gpt2_dir(path):
            return GPT2Tokenizer.from_pretrained(path, **kwargs)
        if kind and base != "CLIPTokenizer":
            raise UnsupportedError(f"{config_path}: tokenizer_class {kind!r} is not supported without a tokenizer.json "
                                   "(mmsuite reads CLIP BPE, GPT-2 BPE and SentencePiece tokenizers: CLIPTokenizer, "
                                   f"GPT2Tokenizer, {', '.join(_SP_TOKENIZER_CLASSES)})")
        vocab_json = os.path.join(path, "vocab.json")
        if (not kind and os.path.exists(os.path.join(path, "merges.txt")) and os.path.exists(vocab_json)
                and not _is_clip_vocab(vocab_json)):
            return GPT2Tokenizer.from_pretrained(path, **kwargs)
        if os.path.exists(vocab_json) or os.path.exists(os.path.join(path, "merges.txt")):
            return CLIPTokenizer.from_pretrained(path, **kwargs)
        if _is_gpt2_dir(path):  # OpenAI's encoder.json + vocab.bpe
            return GPT2Tokenizer.from_pretrained(path, **kwargs)
        gz = os.path.join(path, "bpe_simple_vocab_16e6.txt.gz")
        if os.path.exists(gz):  # OpenAI's own vocabulary file shipped next to the weights
            tok = CLIPTokenizer.from_pretrained(gz, **kwargs)
            tok.name_or_path = path
            return tok
        open_clip_path = os.path.join(path, "open_clip_config.json")
        open_clip = _read_json(open_clip_path)
        if open_clip is not None:  # OpenCLIP ships no tokenizer files: it uses OpenAI's vocabulary
            text_cfg = (open_clip.get("model_cfg") or {}).get("text_cfg") or {}
            if text_cfg.get("hf_tokenizer_name"):
                raise UnsupportedError(f"{open_clip_path}: text_cfg.hf_tokenizer_name "
                                       f"{text_cfg['hf_tokenizer_name']!r} is not supported (mmsuite reads CLIP BPE)")
            tok = CLIPTokenizer.from_pretrained(BUNDLED_CLIP_VOCAB, **kwargs)
            tok.model_max_length = int(text_cfg.get("context_length", CLIP_CONTEXT_LENGTH))
            tok.name_or_path = path
            return tok
        if any(os.path.exists(os.path.join(path, name)) for name in SP_MODEL_FILES):
            model_cfg = _read_json(os.path.join(path, "config.json")) or {}
            if model_cfg.get("model_type") == "siglip":
                return SiglipTokenizer.from_pretrained(path, **kwargs)
            return SentencePieceTokenizer.from_pretrained(path, **kwargs)
        if os.path.exists(os.path.join(path, "tokenizer.json")):
            raise UnsupportedError(f"{os.path.join(path, 'tokenizer.json')}: a {base} tokenizer.json without "
                                   "its SentencePiece model or vocab.json + merges.txt is not supported")
        raise FileNotFoundError(2, "No tokenizer files (tokenizer.json, vocab.json + merges.txt, encoder.json + "
                                   "vocab.bpe, spiece.model or tokenizer.model) in", path)
    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such tokenizer file or directory", path)
    name = os.path.basename(path)
    if name == "tokenizer.json":
        return HFTokenizer.from_pretrained(path, **kwargs)
    if name in ("encoder.json", "vocab.bpe"):
        return GPT2Tokenizer.from_pretrained(os.path.dirname(path) or ".", **kwargs)
    if name.endswith(".gz") or name.startswith("bpe_simple_vocab") or name in ("vocab.json", "merges.txt"):
        return CLIPTokenizer.from_pretrained(path, **kwargs)
    if name.endswith(".model") or ".model." in name:  # spiece.model, tokenizer.model.v3
        return SentencePieceTokenizer.from_pretrained(path, **kwargs)
    raise UnsupportedError(f"{path}: this tokenizer file is not supported (mmsuite reads CLIP BPE: "
                           "bpe_simple_vocab_16e6.txt.gz or vocab.json + merges.txt; SentencePiece: *.model; "
                           "tokenizer.json; GPT-2: encoder.json + vocab.bpe)")


# The GPT-2 / tokenizer.json classes live in tokenizer_hf.py, T5's in tokenizer_t5.py (both use
# the helpers above).
from .tokenizer_hf import GPT2Tokenizer, HFTokenizer, StreamDecoder, _is_gpt2_dir  # noqa: E402
from .tokenizer_t5 import T5Tokenizer  # noqa: E402
