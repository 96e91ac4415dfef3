"""CLIP tokenizer (openai/CLIP ``simple_tokenizer.py`` semantics, HF ``CLIPTokenizer`` files).

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

``load_tokenizer(path)`` picks the tokenizer class for a checkpoint; only CLIP BPE exists so far.
"""
import gzip
import html
import json
import os
import re
import zlib

from . import _C
from .errors import FormatError, UnsupportedError

try:
    import ftfy
except ImportError:  # optional at run time: the identity then, as the *_noftfy fixtures
    ftfy = None

__all__ = ["CLIPTokenizer", "load_tokenizer", "CLIP_CONTEXT_LENGTH"]

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
    try:
        with open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        return None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{path}: invalid JSON: {e}") from None


def _token_content(tok):
    """A special token as tokenizer_config.json writes it: a string or an AddedToken dict."""
    if isinstance(tok, dict):
        tok = tok.get("content")
    return tok if isinstance(tok, str) else None


class CLIPTokenizer:
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
    def vocab_size(self):
        return self.core.vocab_size

    def __len__(self):
        return self.core.vocab_size

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
        if padding is True:
            padding = "longest"
        if padding not in ("max_length", "longest"):
            raise ValueError(f"padding must be 'max_length' or 'longest', not {padding!r}")
        if return_tensors not in ("np", None):
            raise ValueError(f"return_tensors must be 'np' or None, not {return_tensors!r}")
        cleaned = [self.clean(t) for t in texts]
        ids, mask, lengths = self.core.encode_batch(cleaned, length, bool(truncation), self.pad_token_id,
                                                    True, return_lengths=True)
        if padding == "longest":
            longest = min(int(lengths.max()), length) if len(cleaned) else 0
            ids, mask = ids[:, :longest].copy(), mask[:, :longest].copy()
        if return_tensors is None:
            ids, mask = ids.tolist(), mask.tolist()
        return {"input_ids": ids, "attention_mask": mask}


def load_tokenizer(path, **kwargs):
    """The tokenizer of a checkpoint directory or tokenizer file (only CLIP BPE for now).

    An HF directory needs vocab.json + merges.txt; an OpenCLIP directory
    (open_clip_config.json) gets OpenAI's vocabulary bundled in mmsuite/data, as open_clip
    does, with its text context_length.

    UnsupportedError names the file that shows another kind (a SentencePiece
    ``tokenizer.model``, another ``tokenizer_class``); FileNotFoundError if there is none.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        config_path = os.path.join(path, "tokenizer_config.json")
        config = _read_json(config_path) or {}
        kind = config.get("tokenizer_class")
        if kind and not str(kind).startswith("CLIPTokenizer"):
            raise UnsupportedError(f"{config_path}: tokenizer_class {kind!r} is not supported "
                                   "(mmsuite reads CLIP BPE tokenizers)")
        if os.path.exists(os.path.join(path, "vocab.json")) or os.path.exists(os.path.join(path, "merges.txt")):
            return CLIPTokenizer.from_pretrained(path, **kwargs)
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
        for other in ("tokenizer.model", "spiece.model", "tokenizer.json"):
            if os.path.exists(os.path.join(path, other)):
                raise UnsupportedError(f"{os.path.join(path, other)}: this tokenizer kind is not supported "
                                       "(mmsuite reads CLIP BPE vocab.json + merges.txt)")
        raise FileNotFoundError(2, "No tokenizer files (vocab.json + merges.txt) in", path)
    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such tokenizer file or directory", path)
    name = os.path.basename(path)
    if name.endswith(".gz") or name.startswith("bpe_simple_vocab") or name in ("vocab.json", "merges.txt"):
        return CLIPTokenizer.from_pretrained(path, **kwargs)
    raise UnsupportedError(f"{path}: this tokenizer file is not supported "
                           "(mmsuite reads CLIP BPE: bpe_simple_vocab_16e6.txt.gz or vocab.json + merges.txt)")
