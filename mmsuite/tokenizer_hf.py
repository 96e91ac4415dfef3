"""Byte-level BPE tokenizers of GPT-2 / OPT checkpoints and Hugging Face ``tokenizer.json`` files
(Llama, Mistral, Qwen2, LLaVA, ...), and a streaming detokenizer for every tokenizer class.

Everything that produces ids runs in C (``mmsuite._C.HFTokenizer``, csrc/tokenizer_hf.h): added
tokens, normalizers, pre-tokenizers, BPE, post-processor, decoders, batch rows. This module reads
what ``tokenizer_config.json`` adds on top of the files, as transformers (v5) applies it:

* the named special tokens (bos / eos / unk / pad and the extra ones) become special added
  tokens when the tokenizer.json does not have them yet;
* ``add_bos_token`` / ``add_eos_token``, when the config sets either (or the file has no
  post-processor), replace the post-processor by ``[bos] $A [eos]``;
* ``model_max_length``, ``padding_side`` and ``chat_template`` (the string; rendering it is not
  this module's job).

transformers v5 also rebuilds the pipeline of some classes from code instead of reading the
tokenizer.json (e.g. ``LlamaTokenizer`` always uses Metaspace "first"). Files saved by v5 hold that
pipeline, so they agree; an older file is read as written, which is what HF tokenizers and
transformers v4 do.
"""
import os

import numpy as np

from . import _C
from .tokenizer import (_UNSET_MAX_LENGTH, _CoreVocab, _batch_result, _check_batch_options, _read_json,
                        _token_content)

__all__ = ["HFTokenizer", "GPT2Tokenizer", "StreamDecoder"]

_SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
GPT2_LAYOUTS = (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe"))


def _config_special(config, special, key, default=None):
    """A named special token's content: tokenizer_config.json first, then special_tokens_map.json."""
    for src in (config, special):
        if key in src:
            return _token_content(src[key])
    return default


def _extra_special(config, special):
    """additional_special_tokens (v4) / extra_special_tokens (v5) contents."""
    out = []
    for src in (config, special):
        for key in ("additional_special_tokens", "extra_special_tokens"):
            value = src.get(key)
            if isinstance(value, dict):
                value = list(value.values())
            for tok in value or []:
                content = _token_content(tok)
                if content and content not in out:
                    out.append(content)
    return out


def _chat_template(directory, config):
    """tokenizer_config.json's chat_template (a string, or the "default" of a named list), else
    chat_template.jinja (transformers v5 saves it there)."""
    tpl = config.get("chat_template")
    if isinstance(tpl, list):
        named = {t.get("name"): t.get("template") for t in tpl if isinstance(t, dict)}
        tpl = named.get("default") or next(iter(named.values()), None)
    if isinstance(tpl, str):
        return tpl
    path = os.path.join(directory, "chat_template.jinja")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return f.read()
    return None


class _HFBase(_CoreVocab):
    """Shared by HFTokenizer and GPT2Tokenizer: the C core plus what tokenizer_config.json says."""

    def __init__(self, core, *, bos_token=None, eos_token=None, unk_token=None, pad_token=None,
                 model_max_length=None, padding_side="right", chat_template=None, name_or_path=None):
        self.core = core
        self.bos_token, self.eos_token, self.unk_token, self.pad_token = bos_token, eos_token, unk_token, pad_token
        self.model_max_length = int(model_max_length) if model_max_length else _UNSET_MAX_LENGTH
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', not {padding_side!r}")
        self.padding_side = padding_side
        self.chat_template = chat_template
        self.name_or_path = name_or_path
        # Byte-fallback tokens ("<0xXX>") can split a character; StreamDecoder holds them back.
        self._byte_tokens = None

    # ---- properties ----------------------------------------------------------------------

    def _id_of(self, token):
        return None if token is None else self.core.token_to_id(token)

    @property
    def bos_token_id(self):
        return self._id_of(self.bos_token)

    @property
    def eos_token_id(self):
        return self._id_of(self.eos_token)

    @property
    def unk_token_id(self):
        return self._id_of(self.unk_token)

    @property
    def pad_token_id(self):
        return self._id_of(self.pad_token)

    @property
    def all_special_ids(self):
        return sorted(t["id"] for t in self.core.added_tokens if t["special"])

    def __repr__(self):
        return (f"{type(self).__name__}({self.name_or_path!r}, vocab_size={self.vocab_size}, "
                f"model_max_length={self.model_max_length}, bos={self.bos_token!r}, eos={self.eos_token!r})")

    # ---- ids <-> tokens --------------------------------------------------------------------

    def convert_ids_to_tokens(self, ids, skip_special_tokens=False):
        """Token strings of ids (one id gives one string); None for an id no token has."""
        if isinstance(ids, (int, np.integer)):
            return self.core.id_to_token(int(ids))
        return [self.core.id_to_token(int(i)) for i in ids
                if not (skip_special_tokens and self.core.is_special(int(i)))]

    def convert_tokens_to_ids(self, tokens):
        """Ids of token strings (one string gives one id); the unk id (or None) for unknown ones."""
        if isinstance(tokens, str):
            i = self.core.token_to_id(tokens)
            return i if i is not None else self.unk_token_id
        return [self.convert_tokens_to_ids(t) for t in tokens]

    # ---- text ----------------------------------------------------------------------------

    def encode(self, text, add_special_tokens=True, split_special_tokens=False):
        """Ids of text (transformers ``tok(text)["input_ids"]``); ``split_special_tokens``
        reads special-token strings in text as plain text."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        return self.core.encode(text, add_special_tokens, split_special_tokens)

    def decode(self, ids, skip_special_tokens=False):
        """Text of ids through the tokenizer's decoder (transformers ``decode``; its
        clean_up_tokenization_spaces is never applied to BPE tokenizers)."""
        if isinstance(ids, (int, np.integer)):
            ids = [int(ids)]
        elif hasattr(ids, "tolist"):
            ids = ids.tolist()
        return self.core.decode(ids, skip_special_tokens)

    def __call__(self, texts, context_length=None, padding="max_length", truncation=True, return_tensors="np",
                 add_special_tokens=True):
        """Batch encode to ``{"input_ids", "attention_mask"}``, int64 arrays (n, L).

        Rows are the template's ids around each text's (``add_special_tokens``). ``context_length``
        (default ``model_max_length``) is the row length for ``padding="max_length"`` and the most a
        row may hold for ``"longest"`` (rows then as long as the longest one; with no length known
        at all ``"longest"`` is still fine). A longer text keeps the template ids and as many of its
        own as fit, or raises ValueError if ``truncation`` is False. Padding uses ``pad_token_id``
        (0 without one) on ``padding_side``."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] must be str, not {type(t).__name__}")
        padding = _check_batch_options(padding, return_tensors)
        length = self.model_max_length if context_length is None else int(context_length)
        pad_id = self.pad_token_id if self.pad_token_id is not None else 0
        if length >= _UNSET_MAX_LENGTH:
            if padding != "longest":
                raise ValueError(f"{type(self).__name__}: no model_max_length is known; pass context_length "
                                 "or use padding='longest'")
            length = max([len(self.core.encode(t, add_special_tokens)) for t in texts] + [1])
        ids, mask, lengths = self.core.encode_batch(texts, length, bool(truncation), pad_id, add_special_tokens,
                                                    return_lengths=True)
        out = _batch_result(ids, mask, lengths, length, padding, "np")
        if self.padding_side == "left":  # move each row's padding in front of it
            for row in range(len(texts)):
                k = int(out["attention_mask"][row].sum())
                for key in ("input_ids", "attention_mask"):
                    out[key][row] = np.roll(out[key][row], out[key].shape[1] - k)
        if return_tensors is None:
            out = {k: v.tolist() for k, v in out.items()}
        return out


class HFTokenizer(_HFBase):
    """A Hugging Face ``tokenizer.json`` BPE tokenizer (Llama / Mistral / Qwen2 / GPT-2 / LLaVA
    checkpoints); build it with :meth:`from_pretrained`. Thread safe: the C core is immutable."""

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        """Load a directory with tokenizer.json (+ tokenizer_config.json, special_tokens_map.json,
        chat_template.jinja when present) or a tokenizer.json file. Keyword arguments override
        the config: bos_token, eos_token, unk_token, pad_token, add_bos_token, add_eos_token,
        model_max_length, padding_side, chat_template."""
        path = os.fspath(path)
        if os.path.isdir(path):
            directory, json_path = path, os.path.join(path, "tokenizer.json")
        elif os.path.exists(path):
            directory, json_path = os.path.dirname(path) or ".", path
        else:
            raise FileNotFoundError(2, "No such tokenizer file or directory", path)
        if not os.path.exists(json_path):
            raise FileNotFoundError(2, "No tokenizer.json in", path)
        config = _read_json(os.path.join(directory, "tokenizer_config.json")) or {}
        special = _read_json(os.path.join(directory, "special_tokens_map.json")) or {}
        config = {**config, **kwargs}
        names = {key: _config_special(config, special, key) for key in _SPECIAL_KEYS}
        specials = [t for t in names.values() if t] + _extra_special(config, special)
        explicit = "add_bos_token" in config or "add_eos_token" in config
        core = _C.HFTokenizer.from_file(
            json_path, special_tokens=specials, override_post_processor=explicit,
            add_bos=bool(config.get("add_bos_token", False)), add_eos=bool(config.get("add_eos_token", False)),
            bos_token=names["bos_token"], eos_token=names["eos_token"])
        max_len = config.get("model_max_length")
        if not (isinstance(max_len, int) and 0 < max_len < _UNSET_MAX_LENGTH):
            max_len = None
        tpl = _chat_template(directory, config)
        return cls(core, bos_token=names["bos_token"], eos_token=names["eos_token"], unk_token=names["unk_token"],
                   pad_token=names["pad_token"], model_max_length=max_len,
                   padding_side=config.get("padding_side") or "right", chat_template=tpl, name_or_path=path)


class GPT2Tokenizer(_HFBase):
    """GPT-2 / OPT byte-level BPE from vocab.json + merges.txt (HF layout; OPT's vocab.json has
    fairseq ids) or encoder.json + vocab.bpe (OpenAI's), with openai/gpt-2 ``encoder.py``'s ids.

    As transformers' ``GPT2Tokenizer``, the special tokens (``<|endoftext|>`` by default; OPT's
    config names ``</s>``, ``<pad>``, ``<unk>``) are matched in text unless
    ``split_special_tokens=True`` (which gives the reference encoder.py's ids), and
    ``add_bos_token`` (OPT: true) puts BOS in front."""

    @classmethod
    def from_files(cls, vocab_path, merges_path, *, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                   unk_token="<|endoftext|>", pad_token=None, add_bos_token=False, add_eos_token=False,
                   add_prefix_space=False, extra_special_tokens=(), model_max_length=None, padding_side="right",
                   chat_template=None, name_or_path=None):
        specials = [t for t in (bos_token, eos_token, unk_token, pad_token) if t] + list(extra_special_tokens)
        core = _C.HFTokenizer.from_gpt2_files(
            vocab_path, merges_path, special_tokens=specials, add_bos=bool(add_bos_token),
            add_eos=bool(add_eos_token), bos_token=bos_token, eos_token=eos_token,
            add_prefix_space=bool(add_prefix_space))
        return cls(core, bos_token=bos_token, eos_token=eos_token, unk_token=unk_token, pad_token=pad_token,
                   model_max_length=model_max_length, padding_side=padding_side, chat_template=chat_template,
                   name_or_path=name_or_path or os.path.dirname(os.fspath(vocab_path)))

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        """Load a directory with vocab.json + merges.txt or encoder.json + vocab.bpe (and
        tokenizer_config.json / special_tokens_map.json when present). Keyword arguments
        override the config (see :meth:`from_files`)."""
        path = os.fspath(path)
        if not os.path.isdir(path):
            raise FileNotFoundError(2, "No such tokenizer directory", path)
        for vocab, merges in GPT2_LAYOUTS:
            v, m = os.path.join(path, vocab), os.path.join(path, merges)
            if os.path.exists(v) or os.path.exists(m):
                break
        config = _read_json(os.path.join(path, "tokenizer_config.json")) or {}
        special = _read_json(os.path.join(path, "special_tokens_map.json")) or {}
        args = {key: _config_special(config, special, key, "<|endoftext|>" if key != "pad_token" else None)
                for key in ("bos_token", "eos_token", "unk_token", "pad_token")}
        for key in ("add_bos_token", "add_eos_token", "add_prefix_space"):
            if isinstance(config.get(key), bool):
                args[key] = config[key]
        max_len = config.get("model_max_length")
        if isinstance(max_len, int) and 0 < max_len < _UNSET_MAX_LENGTH:
            args["model_max_length"] = max_len
        if config.get("padding_side"):
            args["padding_side"] = config["padding_side"]
        args["chat_template"] = _chat_template(path, config)
        args["extra_special_tokens"] = _extra_special(config, special)
        args.update(kwargs)
        return cls.from_files(v, m, name_or_path=path, **args)


class StreamDecoder:
    """Incremental detokenizer for any mmsuite tokenizer (``decode(ids, skip_special_tokens)``):
    ``push(id)`` returns the text the new id completes, ``flush()`` what is left; the pieces
    concatenated are exactly ``tokenizer.decode(all ids)``.

    A character can be split over tokens (byte-level BPE tokens, ``<0xXX>`` byte-fallback pieces),
    so text is held back while it may still change: a trailing run of U+FFFD (an incomplete UTF-8
    sequence reads as U+FFFD until its last byte arrives), a trailing run of byte-fallback tokens
    (HF's ByteFallback turns a whole invalid run into U+FFFDs) and, for CLIP, a trailing prefix of
    "</w>". Each push decodes the ids so far in C (microseconds for thousands of tokens).
    """

    def __init__(self, tokenizer, skip_special_tokens=False):
        self.tokenizer = tokenizer
        self.skip_special_tokens = bool(skip_special_tokens)
        self.ids = []
        self.text = ""  # emitted so far
        self._byte_ids = _byte_fallback_ids(tokenizer)
        self._clip = type(tokenizer).__name__ == "CLIPTokenizer"

    def _decode(self, ids):
        return self.tokenizer.decode(ids, skip_special_tokens=self.skip_special_tokens)

    def _stable(self, full):
        """Length of the start of full that no later id can change."""
        k = len(full)
        if self._byte_ids:
            t = 0
            while t < len(self.ids) and self.ids[-1 - t] in self._byte_ids:
                t += 1
            if t:
                k = min(k, len(self._decode(self.ids[:-t])))
        while k and full[k - 1] == "\ufffd":
            k -= 1
        if self._clip:
            for p in ("</w", "</", "<"):
                if full[:k].endswith(p):
                    k -= len(p)
                    break
        return k

    def push(self, token_id):
        """Add one id; returns the newly completed text ("" if none)."""
        self.ids.append(int(token_id))
        full = self._decode(self.ids)
        k = self._stable(full)
        if not full.startswith(self.text):  # would be a bug in the hold-back rules
            raise RuntimeError("StreamDecoder: decoded text changed before the emitted part")
        if k <= len(self.text):
            return ""
        delta = full[len(self.text):k]
        self.text += delta
        return delta

    def flush(self):
        """The rest of the text (call once at the end; the decoder can then be reused)."""
        full = self._decode(self.ids) if self.ids else ""
        delta = full[len(self.text):]
        self.ids, self.text = [], ""
        return delta


def _byte_fallback_ids(tokenizer):
    """Ids of "<0xXX>" tokens when the tokenizer decodes them as a run (HF ByteFallback)."""
    core = getattr(tokenizer, "core", None)
    if not isinstance(core, _C.HFTokenizer) or "ByteFallback" not in core.decoders:
        return frozenset()
    if tokenizer._byte_tokens is None:
        ids = (core.token_to_id(f"<0x{b:02X}>") for b in range(256))
        tokenizer._byte_tokens = frozenset(i for i in ids if i is not None)
    return tokenizer._byte_tokens


def _is_gpt2_dir(path):
    """Does the directory hold one of the GPT-2 layouts (both files)?"""
    return any(all(os.path.exists(os.path.join(path, f)) for f in layout) for layout in GPT2_LAYOUTS)
