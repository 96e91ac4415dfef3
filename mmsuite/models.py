"""Model objects over the C core: CLIP / OpenCLIP and SigLIP (contrastive image-text models).

`load(path)` reads the checkpoint's config in C, memory-maps its safetensors and returns a
`CLIP` or `SigLIP`. Outputs are dicts of NumPy arrays that wrap C buffers (no copies), keyed
like the conformance fixtures (`image_embeds`, `vision_last_hidden_state`, ...)."""
import json
import operator
import os
import threading

import numpy as np

from ._native import _C
from .errors import ConfigError, FormatError
from .hub import resolve_model_path

_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16"}


def _as_array(x, dtype, name, ndim):
    """Zero-copy when x already has dtype and is C-contiguous; otherwise one conversion (any
    strides, other integer / float widths: same result as the contiguous array of dtype)."""
    if x is None:
        raise ValueError(f"{name} is required")
    a = np.asarray(x)
    if a.dtype == object:
        raise ValueError(f"{name}: expected a numeric array, got objects")
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name}: empty batch (shape {a.shape})")
    if dtype == np.int64:
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name}: expected integer token ids, got {a.dtype}")
        if a.dtype.kind == "u" and a.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{name}: id {a.max()} does not fit in int64 (outside any vocabulary)")
    elif not np.issubdtype(a.dtype, np.floating):  # uint8 / bool / complex here are a mistake, not pixels
        raise ValueError(f"{name}: expected floating-point preprocessed pixels, got {a.dtype} (pass raw images "
                         "with images=[...])")
    if a.dtype != dtype or not a.flags.c_contiguous:
        a = np.ascontiguousarray(a, dtype=dtype)
    return a


def token_id_list(x, name, vocab=None):
    """A prompt's token ids as a list of int: a sequence of Python / NumPy integers, or a 1-D
    integer array. Floats, strings and bytes are refused (TypeError naming `name`), never
    truncated or reinterpreted; with `vocab`, ids outside [0, vocab) are refused (ValueError)."""
    if isinstance(x, (str, bytes, bytearray, memoryview)):
        raise TypeError(f"{name}: expected a str prompt or a sequence of int token ids, got {type(x).__name__}")
    if isinstance(x, np.ndarray):
        if x.ndim != 1 or not np.issubdtype(x.dtype, np.integer):
            raise TypeError(f"{name}: expected a 1-D integer array of token ids, got {x.dtype} shape {x.shape}")
        out = [int(t) for t in x]
    else:
        out = []
        for i, t in enumerate(x):
            try:
                out.append(operator.index(t))
            except TypeError:
                raise TypeError(f"{name}: token id at position {i} must be an int, got {type(t).__name__} {t!r}") from None
    if vocab is not None:
        for i, t in enumerate(out):
            if not 0 <= t < vocab:
                raise ValueError(f"{name}: token id {t} at position {i} is outside the vocabulary [0, {vocab})")
    return out


class ContrastiveModel:
    """Shared behaviour of CLIP and SigLIP. Thread-safe: calls may run concurrently."""

    kind = None

    def __init__(self, handle, path, device, dtype):
        self._h = handle
        self.path = path
        self.device = device
        self.dtype = dtype
        self.config = _C.clip_info(handle)
        self._processor = None
        self._tokenizer = None
        self._lock = threading.Lock()

    def __repr__(self):
        c = self.config
        return (f"{type(self).__name__}(path={self.path!r}, dtype={self.dtype}, image_size={c['image_size']}, "
                f"projection_dim={c['projection_dim']}, kind={c['kind']})")

    # ---- preprocessing helpers (lazy) ----
    @property
    def image_processor(self):
        if self._processor is None:
            with self._lock:
                if self._processor is None:
                    from .image_processor import ImageProcessor
                    self._processor = ImageProcessor.for_model(self.path, self.config)
        return self._processor

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    from .tokenizer import load_tokenizer
                    self._tokenizer = load_tokenizer(self.path)
        return self._tokenizer

    @property
    def context_length(self):
        return int(self.config["max_position_embeddings"])

    def _handle(self):
        if self._h is None:
            raise RuntimeError(f"{type(self).__name__} at {self.path}: model was unloaded")
        return self._h

    # ---- encoders ----
    def encode_image(self, pixel_values=None, images=None):
        """pixel_values (B, 3, S, S) float32, or images (paths / bytes / uint8 arrays) -> dict of arrays."""
        if pixel_values is None:
            if images is None:
                raise ValueError("encode_image: pass pixel_values or images")
            pixel_values = self.image_processor(images)
        px = _as_array(pixel_values, np.float32, "pixel_values", 4)
        return _C.clip_encode_image(self._handle(), px)

    def encode_text(self, input_ids=None, attention_mask=None, texts=None, truncate=True):
        """input_ids (B, T) (+ attention_mask), or texts -> dict of arrays."""
        if input_ids is None:
            if texts is None:
                raise ValueError("encode_text: pass input_ids or texts")
            if isinstance(texts, str):
                texts = [texts]
            enc = self.tokenize(texts, truncate=truncate)
            input_ids, attention_mask = enc["input_ids"], enc.get("attention_mask")
        ids = _as_array(input_ids, np.int64, "input_ids", 2)
        mask = None
        if attention_mask is not None:
            mask = _as_array(attention_mask, np.int64, "attention_mask", 2)
            if mask.shape != ids.shape:
                raise ValueError(f"attention_mask: shape {mask.shape} differs from input_ids {ids.shape}")
        return _C.clip_encode_text(self._handle(), ids, mask)

    def tokenize(self, texts, truncate=True):
        raise NotImplementedError

    def logits(self, image_embeds, text_embeds):
        """(logits_per_image (N_img, N_txt), logits_per_text) from normalized embeddings."""
        img = np.asarray(image_embeds, dtype=np.float32)
        txt = np.asarray(text_embeds, dtype=np.float32)
        scale = np.float32(np.exp(np.float32(self.config["logit_scale"])))
        per_text = (txt @ img.T) * scale + np.float32(self.config["logit_bias"])
        return per_text.T.copy(), per_text

    def forward(self, pixel_values=None, input_ids=None, attention_mask=None, images=None, texts=None):
        """Both towers plus logits: every output the conformance fixtures name."""
        out = {}
        out.update(self.encode_image(pixel_values=pixel_values, images=images))
        out.update(self.encode_text(input_ids=input_ids, attention_mask=attention_mask, texts=texts))
        out["logits_per_image"], out["logits_per_text"] = self.logits(out["image_embeds"], out["text_embeds"])
        out["logit_scale"] = np.array([self.config["logit_scale"]], dtype=np.float32)
        if self.kind == "siglip":
            out["logit_scale_bias"] = np.array([self.config["logit_scale"], self.config["logit_bias"]], dtype=np.float32)
        return out

    __call__ = forward

    def unload(self):
        """Free the weights now (results already returned stay valid)."""
        if self._h is not None:
            _C.clip_unload(self._h)
            self._h = None

    @property
    def loaded(self):
        return self._h is not None


class CLIP(ContrastiveModel):
    """HF CLIPModel or OpenCLIP checkpoint. Probabilities: softmax over labels."""

    kind = "clip"

    def tokenize(self, texts, truncate=True):
        return self.tokenizer(list(texts), context_length=self.context_length, padding="max_length",
                              truncation=truncate)

    def probabilities(self, logits_per_image):
        z = logits_per_image - logits_per_image.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)


class SigLIP(ContrastiveModel):
    """HF SiglipModel. Scores are independent sigmoids (logit_scale and logit_bias)."""

    kind = "siglip"

    def tokenize(self, texts, truncate=True):
        """input_ids only: SigLIP is trained and used with max_length padding and NO attention
        mask (HF SiglipTokenizer's model_input_names), so pad tokens are attended."""
        enc = self.tokenizer(list(texts), context_length=self.context_length, padding="max_length",
                             truncation=truncate)
        return {"input_ids": enc["input_ids"]}

    def probabilities(self, logits_per_image):
        return 1.0 / (1.0 + np.exp(-logits_per_image))


def load(path, device="cpu", dtype="float32", **lm_kwargs):
    """Load a checkpoint directory (or cached hub id): CLIP / OpenCLIP / SigLIP -> CLIP / SigLIP;
    LLaVA 1.5 / NeXT -> Llava; BLIP-2 (OPT or Flan-T5) -> Blip2; Llama / Mistral / Qwen2 / OPT ->
    CausalLM (lm_kwargs: context_length, kv_dtype, tokenizer, mmap). A .gguf file (or a directory
    holding exactly one and no config.json) is converted once into $MMSUITE_CACHE/gguf and
    loaded from there as a CausalLM (mmsuite/gguf_convert.py)."""
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'bfloat16', not {dtype!r}")
    dtype = _DTYPES[dtype]
    if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
        raise ValueError(f"device must be 'cpu' or 'cuda', not {device!r}")
    from .gguf_convert import converted_dir, gguf_source
    gguf = gguf_source(path)
    local = converted_dir(gguf) if gguf else resolve_model_path(path)
    cfg_path = os.path.join(local, "config.json")
    if os.path.isfile(cfg_path):
        try:
            with open(cfg_path, encoding="utf-8") as f:
                cfg = json.load(f)
        except ValueError as e:
            raise FormatError(f"{cfg_path}: not valid JSON: {e}") from None
        except OSError as e:
            raise ConfigError(f"{cfg_path}: cannot read config: {e}") from None
        if not isinstance(cfg, dict):
            raise ConfigError(f"{cfg_path}: expected a JSON object, got a {type(cfg).__name__}")
        model_type = cfg.get("model_type")
    else:
        model_type = "clip"  # open_clip_config.json (checked in C)
    if model_type == "blip-2":
        from .blip2 import load_blip2
        return load_blip2(local, dtype=dtype, device=str(device), **lm_kwargs)
    if model_type in ("llava", "llava_next", "llama", "mistral", "qwen2", "opt"):
        from .llava import load_language_model
        return load_language_model(local, dtype=dtype, device=str(device), **lm_kwargs)
    if lm_kwargs:
        raise TypeError(f"unexpected argument(s) for a {model_type} model: {', '.join(sorted(lm_kwargs))}")
    handle = _C.clip_load(local, dtype, "cuda" if str(device).startswith("cuda") else "cpu")
    cls = SigLIP if model_type == "siglip" else CLIP
    return cls(handle, local, device, dtype)
