"""BLIP-2 (transformers' Blip2ForConditionalGeneration): captioning and short-answer VQA.

The C core runs the vision tower, the Q-Former, the language projection and the language model
(OPT, or Flan-T5's encoder and decoder); this module builds the model inputs exactly as
transformers v4.47 does and runs generation:

* ``image_token_index`` set (current checkpoints): the processor puts ``num_query_tokens`` image
  tokens BEFORE the tokenized prompt (OPT: before its BOS; T5: the prompt ends with ``</s>``) and
  the model writes the projected queries over exactly those embedding rows.
* ``image_token_index`` null (legacy configs): the projected queries are prepended to the text
  embeddings.
* OPT continues the merged sequence; T5 encodes it and decodes from ``decoder_start_token_id``.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from typing import Sequence

import numpy as np

from ._native import _C
from .generation import GenerationConfig, Generator
from .models import token_id_list

__all__ = ["Blip2"]

_QUESTION = "Question: {} Answer:"


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _is_single_image(x):
    if isinstance(x, (str, bytes, bytearray, memoryview, os.PathLike)):
        return True
    if isinstance(x, np.ndarray):
        return x.ndim == 3
    return hasattr(x, "mode") and hasattr(x, "size")  # PIL image


class Blip2:
    """A loaded BLIP-2 checkpoint.

    ``caption(images)`` and ``ask(image, question)`` return text; ``generate`` takes any prompt;
    ``forward`` gives teacher-forced logits; ``image_features`` returns every intermediate
    (vision tower, Q-Former, projection) as NumPy arrays. Thread-safe: each call gets its own
    decoder state; image features are cached by a hash of the processed pixels."""

    def __init__(self, handle, path, dtype, device="cpu", context_length=None, tokenizer=None, kv_dtype=None,
                 image_cache=16):
        self._h = handle
        self.path = path
        self.dtype = dtype
        self.device = device
        self.info = _C.lm_info(handle)
        self.config = self.info["blip2"]
        self.family = self.info["family"]
        self.encoder_decoder = bool(self.config["encoder_decoder"])
        self.num_query_tokens = int(self.config["num_query_tokens"])
        tid = int(self.config["image_token_id"])
        self.image_token_id = tid if tid >= 0 else None
        limit = self.info["max_position_embeddings"]
        self.context_length = int(min(limit, 2048) if context_length is None else context_length)
        if self.context_length < 1 or (self.family == "opt" and self.context_length > limit):
            raise ValueError(f"context_length must be in [1, {limit}], got {context_length}")
        self.kv_dtype = kv_dtype or dtype
        self._tokenizer = tokenizer
        self._image_processor = None
        self._lock = threading.Lock()
        self._cache = {}
        self._cache_order = []
        self._cache_size = int(image_cache)
        self.generation_config, self.eos_token_ids = self._generation_defaults()
        self._gen = Generator(handle, self.info["vocab_size"], self.eos_token_ids, self.kv_dtype, self.context_length)

    def __repr__(self):
        c = self.config
        return (f"Blip2(path={self.path!r}, language_model={self.family}, query_tokens={c['num_query_tokens']}, "
                f"dtype={self.dtype})")

    def _generation_defaults(self):
        eos = [int(self.info["eos_token_id"])] if self.info["eos_token_id"] >= 0 else []
        cfg = GenerationConfig(max_new_tokens=30)
        p = os.path.join(self.path, "generation_config.json")
        if os.path.isfile(p):
            g = _read_json(p)
            e = g.get("eos_token_id")
            if e is not None:
                eos = [int(x) for x in (e if isinstance(e, list) else [e])]
            for k in ("max_new_tokens", "num_beams", "length_penalty", "repetition_penalty"):
                if g.get(k) is not None:
                    setattr(cfg, k, g[k])
        return cfg, eos

    # -- parts --------------------------------------------------------------------------------
    def _handle(self):
        if self._h is None:
            raise RuntimeError(f"Blip2 at {self.path}: model was unloaded")
        return self._h

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

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    from .llava import model_tokenizer
                    self._tokenizer = model_tokenizer(self.path)
        return self._tokenizer

    @property
    def image_processor(self):
        if self._image_processor is None:
            from .image_processor import ImageProcessor
            p = os.path.join(self.path, "preprocessor_config.json")
            if os.path.isfile(p):
                self._image_processor = ImageProcessor.from_pretrained(self.path)
            else:  # BlipImageProcessor defaults at the model's resolution
                s = int(self.config["image_size"])
                self._image_processor = ImageProcessor("BlipImageProcessor", size={"height": s, "width": s})
        return self._image_processor

    def processor(self, images):
        """Images (paths, bytes, uint8 HxWx3 arrays, PIL images) -> {"pixel_values": (N, 3, S, S)}."""
        return {"pixel_values": self.image_processor(images)}

    def memory(self):
        return {"weights_mapped": self.info["weight_bytes_mapped"], "weights_owned": self.info["weight_bytes_owned"]}

    # -- images ---------------------------------------------------------------------------------
    def image_features(self, pixel_values, intermediates=True):
        """pixel_values (N, 3, S, S) float32 -> {"vision_last_hidden_state" (N, Tv, Dv),
        "qformer_last_hidden_state" (N, Q, Dq), "language_projection" (N, Q, Dt)} (only the
        projection, as an array, with intermediates=False)."""
        px = np.ascontiguousarray(pixel_values, dtype=np.float32)
        if px.ndim == 3:
            px = px[None]
        return _C.blip2_image_features(self._handle(), px, intermediates=bool(intermediates))

    def encode_images(self, images):
        """Projected query embeddings (Q, Dt) per image, cached by the processed pixels' hash."""
        px = self.image_processor(images)
        out, todo = [None] * len(px), []
        keys = [hashlib.sha256(np.ascontiguousarray(p).tobytes()).hexdigest() for p in px]
        with self._lock:
            for i, k in enumerate(keys):
                out[i] = self._cache.get(k)
                if out[i] is None:
                    todo.append(i)
        if todo:
            feats = self.image_features(px[todo], intermediates=False)
            with self._lock:
                for j, i in enumerate(todo):
                    out[i] = feats[j]
                    if self._cache_size > 0 and keys[i] not in self._cache:
                        self._cache[keys[i]] = feats[j]
                        self._cache_order.append(keys[i])
                        while len(self._cache_order) > self._cache_size:
                            self._cache.pop(self._cache_order.pop(0), None)
        return out

    # -- inputs ---------------------------------------------------------------------------------
    def _text_ids(self, prompt):
        if prompt is None:
            prompt = ""
        if isinstance(prompt, str):
            if not prompt and not self.encoder_decoder:
                bos = self.info["bos_token_id"]
                return [int(bos)] if bos >= 0 else []
            return [int(t) for t in self.tokenizer.encode(prompt)]
        return token_id_list(prompt, "prompt")

    def build_inputs(self, prompt, feats):
        """(ids, embeddings) of the language model input for one prompt (text without image
        tokens, or ids that may already hold the image tokens) and one image's projected queries."""
        ids = self._text_ids(prompt)
        feats = np.asarray(feats, dtype=np.float32)
        Q = self.num_query_tokens
        if self.image_token_id is not None:
            n_img = sum(1 for t in ids if t == self.image_token_id)
            if n_img == 0:
                ids = [self.image_token_id] * Q + ids
            elif n_img != Q:
                raise ValueError(f"the prompt holds {n_img} image tokens; BLIP-2 needs none (they are added) or "
                                 f"exactly num_query_tokens = {Q}")
            ids_arr = np.asarray(ids, dtype=np.int64)
            emb = _C.lm_embed(self._handle(), ids_arr)
            emb[ids_arr == self.image_token_id] = feats
            return ids, emb
        # legacy: queries prepended; their history ids are padding (no token stands for them)
        emb_text = _C.lm_embed(self._handle(), np.asarray(ids, dtype=np.int64)) if ids else np.zeros((0, feats.shape[1]), np.float32)
        pad = max(int(self.info["pad_token_id"]), 0)
        return [pad] * Q + ids, np.concatenate([feats, emb_text])

    def _prompts(self, images, prompts):
        feats = self.encode_images(images)
        if len(prompts) != len(feats):
            raise ValueError(f"{len(feats)} images for {len(prompts)} prompts")
        items = []
        for f, p in zip(feats, prompts):
            ids, emb = self.build_inputs(p, f)
            if self.encoder_decoder:
                enc = _C.t5_encode(self._handle(), emb)
                start = int(self.info["t5"]["decoder_start_token_id"])
                items.append(([start], None, enc))
            else:
                items.append((ids, emb))
        return items

    # -- public API -------------------------------------------------------------------------------
    def forward(self, input_ids=None, pixel_values=None, images=None, decoder_input_ids=None, attention_mask=None):
        """Teacher-forced logits of one example: OPT -> (L, V) over input_ids (image tokens
        included, as HF's processor emits them); T5 -> (L_dec, V) over decoder_input_ids
        (attention_mask: the encoder input's mask, 1 = real token)."""
        if pixel_values is not None:
            feats = self.image_features(pixel_values, intermediates=False)[0]
        elif images is not None:
            feats = self.encode_images([images] if _is_single_image(images) else images)[0]
        else:
            raise ValueError("forward: pass pixel_values or images")
        ids = np.asarray(token_id_list(np.asarray(input_ids).reshape(-1), "input_ids"), dtype=np.int64)
        ids, emb = self.build_inputs(ids, feats)
        h = self._handle()
        if not self.encoder_decoder:
            st = _C.lm_state_new(h, 1, len(ids), self.kv_dtype, 512)
            return _C.lm_forward(st, np.array([0]), np.array([len(ids)]), embeds=emb, logits_all=True)
        if decoder_input_ids is None:
            raise ValueError("forward: a T5 language model needs decoder_input_ids")
        mask = None if attention_mask is None else np.asarray(attention_mask, dtype=np.int64).reshape(-1)
        enc = _C.t5_encode(h, emb, mask)
        if mask is not None:  # cross-attention sees only the real rows
            enc = np.ascontiguousarray(enc[mask.astype(bool)])
        dec = np.asarray(decoder_input_ids, dtype=np.int64).reshape(-1)
        st = _C.lm_state_new(h, 1, len(dec), self.kv_dtype, 512, enc_ctx=len(enc))
        _C.lm_state_set_encoder(st, 0, enc)
        return _C.lm_forward(st, np.array([0]), np.array([len(dec)]), ids=dec, logits_all=True)

    __call__ = forward

    def generate(self, images, prompt=None, return_ids=False, **gen):
        """Continue prompt(s) about image(s): one image -> str; a list -> list of str (batched).
        prompt: None (plain captioning), a str, or one str per image. gen: GenerationConfig
        fields (max_new_tokens, min_new_tokens, num_beams, do_sample, temperature, ...)."""
        single = _is_single_image(images)
        imgs = [images] if single else list(images)
        if not imgs:
            raise ValueError("generate: no images")
        if isinstance(prompt, (bytes, bytearray, memoryview)):
            raise TypeError(f"prompt: expected a str, one str per image or token id lists, got {type(prompt).__name__}")
        if prompt is None or isinstance(prompt, str):
            prompts = [prompt] * len(imgs)
        else:
            prompts = list(prompt)
        cfg = self.generation_config
        cfg = GenerationConfig(**{**cfg.__dict__, **gen}) if gen else cfg
        items = self._prompts(imgs, prompts)
        out = self._gen.generate(items, cfg, self._tokenizer_or_none())
        if return_ids:
            return out
        texts = [t.strip() for t in out.texts] if out.texts is not None else out.sequences
        return texts[0] if single else texts

    def _tokenizer_or_none(self):
        try:
            return self.tokenizer
        except FileNotFoundError:
            return None

    def caption(self, images, prompt=None, max_new_tokens=30, num_beams=1, **gen):
        """Caption one image (path, bytes, array, PIL) -> str, or a list of them -> list of str,
        batched. prompt: optional text the caption continues (e.g. "a photo of")."""
        return self.generate(images, prompt, max_new_tokens=max_new_tokens, num_beams=num_beams, **gen)

    def ask(self, image, question, max_new_tokens=10, **gen):
        """Short answer to a question about an image, with BLIP-2's "Question: ... Answer:" prompt."""
        if not isinstance(question, str) or not question.strip():
            raise ValueError("ask: question must be a non-empty string")
        return self.generate(image, _QUESTION.format(question.strip()), max_new_tokens=max_new_tokens, **gen)

    def ask_many(self, images: Sequence, questions: Sequence[str], max_new_tokens=10, **gen):
        """Batched VQA: one question per image."""
        if len(images) != len(questions):
            raise ValueError(f"{len(images)} images for {len(questions)} questions")
        return self.generate(list(images), [_QUESTION.format(q.strip()) for q in questions],
                             max_new_tokens=max_new_tokens, **gen)


def load_blip2(path, dtype="float32", device="cpu", mmap=True, **kw):
    """Load a BLIP-2 checkpoint directory (OPT or Flan-T5 language model)."""
    return Blip2(_C.blip2_load(path, dtype, device, bool(mmap)), path, dtype, device, **kw)
