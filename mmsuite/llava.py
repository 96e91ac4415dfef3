"""LLaVA 1.5 / LLaVA-NeXT (1.6) and plain causal language models on the C engine.

``mmsuite.load(path)`` returns a ``Llava`` for ``llava`` / ``llava_next`` checkpoints and a
``CausalLM`` for ``llama`` / ``mistral`` / ``qwen2`` / ``opt`` ones. The C side computes the
vision features, the projector and the decoder with its KV cache; this module builds prompts
(chat template, image-token expansion), places the image rows and drives generation.

Semantics follow transformers v4.47 (see docs/families.md): image tokens in the prompt are
expanded to one token per feature row; each expanded token's embedding is replaced, in order, by
one feature row; positions are 0..L-1 (no padding is ever used: batches are packed).
"""

from __future__ import annotations

import collections
import hashlib
import os
import threading
from typing import Sequence

import numpy as np

from ._jsonio import read_json
from ._native import _C
from .errors import ConfigError
from .generation import GenerationConfig, GenerationOutput, Generator
from .hub import resolve_model_path
from .models import token_id_list

__all__ = ["CausalLM", "Llava", "load_language_model"]

_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16"}
_GEN_KEYS = {f for f in GenerationConfig.__dataclass_fields__}


def _gen_config(base: GenerationConfig, **kw) -> GenerationConfig:
    unknown = set(kw) - _GEN_KEYS
    if unknown:
        raise TypeError(f"unexpected generation argument(s): {', '.join(sorted(unknown))}")
    d = {k: getattr(base, k) for k in _GEN_KEYS}
    d.update({k: v for k, v in kw.items() if v is not None or k in ("temperature", "do_sample")})
    return GenerationConfig(**d)


def _read_json(path):
    return read_json(path)


def _generation_defaults(path, info):
    """generation_config.json's eos ids (a list or one id) and decoding defaults."""
    eos = [info["eos_token_id"]] if info.get("eos_token_id", -1) >= 0 else []
    cfg = GenerationConfig()
    gp = os.path.join(path, "generation_config.json")
    if os.path.isfile(gp):
        g = _read_json(gp)
        e = g.get("eos_token_id")
        if e is not None:
            eos = list(e) if isinstance(e, list) else [e]
        for k in ("max_new_tokens", "top_k", "top_p", "repetition_penalty", "num_beams", "length_penalty"):
            if g.get(k) is not None:
                setattr(cfg, k, g[k])
        if g.get("do_sample"):
            cfg.do_sample = True
            cfg.temperature = g.get("temperature", 1.0)
    return eos, cfg


def model_tokenizer(path):
    """The tokenizer shipped in a model directory, or a FileNotFoundError saying what to do."""
    from .tokenizer import load_tokenizer
    try:
        return load_tokenizer(path)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{path}: no tokenizer files (tokenizer.json / tokenizer.model / spiece.model): {e}; "
                                "pass token ids instead of text, or give a tokenizer") from None


class CausalLM:
    """A decoder-only language model (Llama, Mistral, Qwen2, OPT) with generation.

    Thread-safe: each generate call gets its own KV cache; the weights are shared."""

    def __init__(self, handle, path, dtype, context_length=None, tokenizer=None, kv_dtype=None, device="cpu"):
        self._h = handle
        self.path = path
        self.dtype = dtype
        self.device = device
        self.info = _C.lm_info(handle)
        limit = self.info["max_position_embeddings"]
        self.context_length = int(min(limit, 4096) if context_length is None else context_length)
        if self.context_length < 1:
            raise ValueError(f"context_length must be positive, got {context_length}")
        if self.info["family"] == "opt" and self.context_length > limit:
            raise ValueError(f"context_length {self.context_length} exceeds OPT's {limit} learned positions")
        self.kv_dtype = kv_dtype or dtype
        self._tokenizer = tokenizer
        self._lock = threading.Lock()
        eos, self.generation_config = _generation_defaults(path, self.info)
        self.eos_token_ids = eos
        self._gen = Generator(handle, self.info["vocab_size"], eos, self.kv_dtype, self.context_length)

    def __repr__(self):
        i = self.info
        return (f"{type(self).__name__}(path={self.path!r}, family={i['family']}, layers={i['num_layers']}, "
                f"hidden={i['hidden_size']}, dtype={self.dtype}, context_length={self.context_length})")

    # -- tokenizer ------------------------------------------------------------------------
    @property
    def tokenizer(self):
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    self._tokenizer = model_tokenizer(self.path)
        return self._tokenizer

    def _handle(self):
        if self._h is None:
            raise RuntimeError(f"{type(self).__name__} at {self.path}: model was unloaded")
        return self._h

    def memory(self):
        """Bytes: weights mapped from the checkpoint, weights converted/owned."""
        return {"weights_mapped": self.info["weight_bytes_mapped"], "weights_owned": self.info["weight_bytes_owned"]}

    def unload(self):
        if self._h is not None:
            _C.lm_unload(self._h)
            self._h = None

    @property
    def loaded(self):
        return self._h is not None

    def stop(self):
        """Ask the generations running on this model (any thread) to stop: each raises
        KeyboardInterrupt before its next decoding step. Later calls run normally."""
        self._gen.stop()

    # -- forward / generate -----------------------------------------------------------------
    def forward(self, input_ids=None, inputs_embeds=None):
        """Teacher-forced logits (L, V) float32 for one sequence of ids (or embeddings)."""
        self._handle()
        if input_ids is not None:
            ids = np.asarray(input_ids)
            if ids.size == 0:
                raise ValueError(f"input_ids: empty (shape {ids.shape}), no tokens to run")
            if ids.ndim == 2 and ids.shape[0] == 1:  # (1, L), as a processor returns it
                ids = ids[0]
            ids = np.asarray(token_id_list(ids, "input_ids", self.info["vocab_size"]), dtype=np.int64)
            st = _C.lm_state_new(self._h, 1, len(ids), self.kv_dtype, 512)
            return _C.lm_forward(st, np.array([0]), np.array([len(ids)]), ids=ids, logits_all=True)
        st = _C.lm_state_new(self._h, 1, max(1, len(inputs_embeds)), self.kv_dtype, 512)
        emb = np.ascontiguousarray(inputs_embeds, dtype=np.float32)
        return _C.lm_forward(st, np.array([0]), np.array([len(emb)]), embeds=emb, logits_all=True)

    __call__ = forward

    def _encode(self, prompt):
        if isinstance(prompt, str):
            return list(self.tokenizer.encode(prompt))
        return token_id_list(prompt, "prompt", self.info["vocab_size"])

    def generate(self, prompts, stream=False, **gen):
        """prompts: a str, a list of ids, or a list of them (batched). Returns the new text (or a
        GenerationOutput with return_output=True semantics via generate_ids); stream=True yields
        text deltas for a single prompt."""
        cfg = _gen_config(self.generation_config, **gen)
        single = isinstance(prompts, str) or (len(prompts) > 0 and not isinstance(prompts[0], (list, tuple, str, np.ndarray)))
        items = [prompts] if single else list(prompts)
        tok = self._tokenizer if self._tokenizer is not None else None
        if any(isinstance(p, str) for p in items):
            tok = self.tokenizer
        encoded = [(self._encode(p), None) for p in items]
        self._handle()
        if stream:
            if len(encoded) != 1:
                raise ValueError("stream=True takes one prompt")
            return self._gen.stream(encoded[0], cfg, self.tokenizer)
        out = self._gen.generate(encoded, cfg, tok)
        if tok is None:
            return out
        return out.texts[0] if single else out.texts

    def generate_ids(self, prompts, **gen) -> GenerationOutput:
        """Token-level generation: prompts are id lists; returns sequences and finish reasons."""
        cfg = _gen_config(self.generation_config, **gen)
        self._handle()
        V = self.info["vocab_size"]
        return self._gen.generate([(token_id_list(p, f"prompts[{i}]", V), None) for i, p in enumerate(prompts)], cfg,
                                  self._tokenizer)


class Llava(CausalLM):
    """LLaVA 1.5 (LlavaForConditionalGeneration) or LLaVA-NeXT (LlavaNextForConditionalGeneration).

    ``ask(image, question)`` answers from one image; ``chat(messages)`` takes a conversation
    whose messages hold text and images; ``generate`` / ``forward`` work on raw prompts. Image
    features are cached by content hash: a follow-up question about the same image skips the
    vision tower."""

    def __init__(self, handle, path, dtype, context_length=None, tokenizer=None, kv_dtype=None, image_cache=16,
                 device="cpu"):
        super().__init__(handle, path, dtype, context_length, tokenizer, kv_dtype, device)
        self.vision = self.info["llava"]
        self.image_token_id = int(self.vision["image_token_id"])
        self._processor = None
        self._template = None
        self._cache = collections.OrderedDict()
        self._cache_size = int(image_cache)
        self.cache_hits = 0
        self.cache_misses = 0

    @property
    def processor(self):
        if self._processor is None:
            with self._lock:
                if self._processor is None:
                    from .llava_processor import LlavaProcessor
                    self._processor = LlavaProcessor.from_pretrained(self.path)
        return self._processor

    @property
    def chat_template(self):
        if self._template is None:
            from .chat import load_chat_template
            self._template = load_chat_template(self.path)
        return self._template

    # -- images -----------------------------------------------------------------------------
    def image_features(self, pixel_values, image_sizes=None, intermediates=False):
        """Feature rows per image from processed pixel values: LLaVA-1.5 pixel_values
        (n, 3, S, S); LLaVA-NeXT (n, max_patches, 3, S, S) with image_sizes (n, 2). Returns a
        list of (n_tokens_i, hidden) arrays (and the raw outputs with intermediates=True)."""
        px = np.ascontiguousarray(pixel_values, dtype=np.float32)
        h = self._handle()
        if not self.vision["next"]:
            if px.ndim != 4:
                raise ValueError(f"pixel_values: expected (images, 3, S, S), got shape {px.shape}")
            out = _C.llava_image_features(h, px, intermediates=intermediates)
            proj = out["projected"] if intermediates else out
            feats = [proj[i] for i in range(proj.shape[0])]
            return (feats, out) if intermediates else feats
        if px.ndim != 5 or image_sizes is None:
            raise ValueError("LLaVA-NeXT: pixel_values must be (images, patches, 3, S, S) with image_sizes")
        sizes = np.asarray(image_sizes).reshape(-1, 2)
        if len(sizes) != px.shape[0]:
            raise ValueError(f"image_sizes has {len(sizes)} rows for {px.shape[0]} images")
        geo = self.processor.geometry([tuple(int(v) for v in s) for s in sizes])
        feats, raw = [], []
        for i, g in enumerate(geo):
            if g.num_patches > px.shape[1]:
                raise ValueError(f"image {i}: needs {g.num_patches} patches, pixel_values has {px.shape[1]}")
            out = _C.llava_image_features(h, np.ascontiguousarray(px[i, :g.num_patches]), intermediates=intermediates)
            proj = out["projected"] if intermediates else out
            feats.append(_C.llava_pack_next(h, proj, g.grid_h, g.grid_w, g.row0, g.rows, g.col0, g.cols))
            raw.append(out)
        return (feats, raw) if intermediates else feats

    def encode_images(self, images):
        """Images (paths, bytes, uint8 HxWx3 arrays, PIL images) -> feature rows per image,
        cached by a hash of the processed pixels."""
        proc = self.processor(images)
        px = proc["pixel_values"]
        sizes = proc.get("image_sizes")
        feats = []
        for i in range(px.shape[0]):
            key = hashlib.sha256(np.ascontiguousarray(px[i]).tobytes()
                                 + (b"" if sizes is None else np.asarray(sizes[i]).tobytes())).hexdigest()
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                    self.cache_hits += 1
            if hit is None:
                if sizes is None:
                    hit = self.image_features(px[i:i + 1])[0]
                else:
                    hit = self.image_features(px[i:i + 1], sizes[i:i + 1])[0]
                with self._lock:
                    self.cache_misses += 1
                    self._cache[key] = hit
                    while len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
            feats.append(hit)
        return feats

    # -- prompts ----------------------------------------------------------------------------
    def _merge(self, ids, feats):
        """Embeddings of ids with the image-token rows replaced by the feature rows, in order."""
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.flatnonzero(ids == self.image_token_id)
        rows = sum(len(f) for f in feats)
        if len(pos) != rows:
            raise ValueError(f"the prompt holds {len(pos)} image tokens but the {len(feats)} image(s) give {rows} "
                             "feature rows (expand each <image> to the processor's count, or pass the images the "
                             "prompt refers to)")
        emb = _C.lm_embed(self._handle(), ids)
        if rows:
            emb[pos] = np.concatenate(feats).astype(np.float32, copy=False)
        return emb

    def build_prompt(self, text_or_ids, images=()):
        """Prompt ids with each image placeholder expanded, and the merged embeddings."""
        images = list(images) if images is not None else []
        if isinstance(text_or_ids, str):
            ids = list(self.tokenizer.encode(text_or_ids))
        else:
            ids = token_id_list(text_or_ids, "prompt")
        n_placeholders = sum(1 for t in ids if t == self.image_token_id)
        feats = self.encode_images(images) if images else []
        if n_placeholders == len(feats) and feats:
            from .llava_processor import expand_image_tokens
            ids = expand_image_tokens(ids, self.image_token_id, [len(f) for f in feats])
        elif n_placeholders != sum(len(f) for f in feats):
            raise ValueError(f"the prompt holds {n_placeholders} <image> placeholder(s) but {len(images)} image(s) "
                             "were given")
        return ids, self._merge(ids, feats)

    def _render(self, messages, add_generation_prompt=True):
        from .chat import render, special_tokens_map
        extra = special_tokens_map(self.path) if os.path.isdir(self.path) else {}
        return render(messages, self.chat_template, add_generation_prompt=add_generation_prompt, **extra)

    def _messages_images(self, messages):
        """Images referenced by the messages' parts, in order ({"type": "image", "image": x},
        {"type": "image_url"/"image", "url"/"path": ...})."""
        imgs = []
        for m in messages:
            content = m.get("content")
            if isinstance(content, list):
                for part in content:
                    if isinstance(part, dict) and part.get("type") == "image":
                        src = part.get("image", part.get("path", part.get("url")))
                        if src is None:
                            raise ValueError("an image part needs 'image' (a path, bytes or array) or 'path'")
                        imgs.append(src)
        return imgs

    # -- public API ---------------------------------------------------------------------------
    def forward(self, input_ids=None, pixel_values=None, image_sizes=None, images=None, inputs_embeds=None):
        """Teacher-forced logits (L, V) of one prompt whose image tokens are already expanded
        (as HF's processor emits them), with pixel_values (+ image_sizes for NeXT) or images."""
        if inputs_embeds is not None:
            return super().forward(inputs_embeds=inputs_embeds)
        ids = np.asarray(token_id_list(np.asarray(input_ids).reshape(-1), "input_ids"), dtype=np.int64)
        if pixel_values is not None:
            feats = self.image_features(pixel_values, image_sizes)
        elif images is not None:
            feats = self.encode_images(images)
        else:
            feats = []
        return super().forward(inputs_embeds=self._merge(ids, feats))

    def generate(self, prompt, images=None, stream=False, **gen):
        """Continue a raw prompt (text with <image> placeholders, or ids) given its images."""
        cfg = _gen_config(self.generation_config, **gen)
        ids, emb = self.build_prompt(prompt, images or [])
        if stream:
            return self._gen.stream((ids, emb), cfg, self.tokenizer)
        tok = self.tokenizer if isinstance(prompt, str) else self._tokenizer
        out = self._gen.generate([(ids, emb)], cfg, tok)
        return out.texts[0] if tok is not None and isinstance(prompt, str) else out

    def chat(self, messages, stream=False, **gen):
        """Answer the next assistant turn of a conversation (HF-style messages; image parts
        {"type": "image", "image": path_or_array})."""
        if not messages:
            raise ValueError("chat: messages is empty")
        images = self._messages_images(messages)
        prompt = self._render(messages)
        cfg = _gen_config(self.generation_config, **gen)
        ids, emb = self.build_prompt(prompt, images)
        if stream:
            return self._gen.stream((ids, emb), cfg, self.tokenizer)
        return self._gen.generate([(ids, emb)], cfg, self.tokenizer).texts[0]

    def ask(self, image, question, stream=False, **gen):
        """One question about one image (a path, bytes, array or PIL image) -> answer text, or
        a generator of text deltas with stream=True."""
        if not isinstance(question, str) or not question.strip():
            raise ValueError("ask: question must be a non-empty string")
        messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": question}]}]
        return self.chat(messages, stream=stream, **gen)

    def ask_many(self, images: Sequence, questions: Sequence[str], **gen):
        """Batched answers: one question per image, prefilled and decoded together."""
        if len(images) != len(questions):
            raise ValueError(f"{len(images)} images for {len(questions)} questions")
        cfg = _gen_config(self.generation_config, **gen)
        prompts = []
        for img, q in zip(images, questions):
            msgs = [{"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": q}]}]
            prompts.append(self.build_prompt(self._render(msgs), [img]))
        return self._gen.generate(prompts, cfg, self.tokenizer).texts


def load_language_model(path, dtype="float32", context_length=None, kv_dtype=None, tokenizer=None, device="cpu",
                        mmap=True):
    """Load a llava / llava_next checkpoint (-> Llava) or a llama / mistral / qwen2 / opt one
    (-> CausalLM). dtype: compute dtype ('float32' or 'bfloat16'; bf16 weights stay in bf16).
    device: 'cpu' or 'cuda' (weights, KV cache and every layer on the GPU; token embeddings for
    merged LLaVA inputs and the sampler stay on the host).
    mmap: True (default) uses the weights from the memory-mapped checkpoint; False reads them
    into huge-page memory at load (same resident size, a load-time copy; CPU decoding measured
    1-9 % faster, see docs/performance.md)."""
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'bfloat16', not {dtype!r}")
    dtype = _DTYPES[dtype]
    device = str(device)
    if device != "cpu" and device != "cuda" and not device.startswith("cuda:"):
        raise ValueError(f"device must be 'cpu' or 'cuda', not {device!r}")
    if kv_dtype is not None and kv_dtype not in _DTYPES:
        raise ValueError(f"kv_dtype must be 'float32' or 'bfloat16', not {kv_dtype!r}")
    local = resolve_model_path(path)
    cfg_path = os.path.join(local, "config.json")
    if not os.path.isfile(cfg_path):
        raise FileNotFoundError(f"{local}: no config.json (is this a checkpoint directory?)")
    model_type = read_json(cfg_path, object_only=True).get("model_type")
    kvd = _DTYPES[kv_dtype] if kv_dtype else None
    if model_type in ("llava", "llava_next"):
        return Llava(_C.llava_load(local, dtype, device, bool(mmap)), local, dtype, context_length, tokenizer, kvd, device=device)
    if model_type in ("llama", "mistral", "qwen2", "opt"):
        return CausalLM(_C.lm_load(local, dtype, device, bool(mmap)), local, dtype, context_length, tokenizer, kvd, device=device)
    raise ConfigError(f"{cfg_path}: model_type {model_type!r} is not a language model mmsuite supports")
