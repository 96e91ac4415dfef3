"""MultimodalSuite: the task-level API over loaded models.

    suite = MultimodalSuite(device="cpu", models={"clip": "openai/clip-vit-base-patch32"})
    suite.embed(image_path="cat.jpg", text="a cat")      # {"image": (D,), "text": (D,)}
    suite.classify("cat.jpg", ["cat", "dog"])             # zero-shot, prompt ensembling
    suite.moderate("photo.png", ["violence", "nudity"])

Contrastive tasks use the model registered as "clip" (a CLIP, OpenCLIP or SigLIP checkpoint),
or the one named by `model=`. Models load on first use when lazy_load=True."""
import os
import threading

import numpy as np

from .models import ContrastiveModel, load

DEFAULT_TEMPLATES = (
    "a photo of a {}.",
    "a bad photo of a {}.",
    "a photo of the large {}.",
    "a photo of the small {}.",
    "a cropped photo of a {}.",
    "a close-up photo of a {}.",
    "a bright photo of a {}.",
    "a good photo of a {}.",
)

DEFAULT_NEUTRAL = ("an ordinary, harmless photo", "a safe everyday picture")


def _is_image_like(x):
    return isinstance(x, (str, bytes, bytearray, memoryview, os.PathLike, np.ndarray)) or hasattr(x, "convert")


class MultimodalSuite:
    """Holds named models and runs tasks with them. Thread-safe."""

    def __init__(self, device="cpu", models=None, lazy_load=True, dtype="float32", num_threads=None):
        if not models:
            raise ValueError("models: give at least one, e.g. models={'clip': '/path/to/clip'}")
        self.device = device
        self.dtype = dtype
        self._specs = dict(models)
        self._models = {}
        self._lock = threading.Lock()
        if num_threads is not None:
            from . import set_num_threads
            set_num_threads(num_threads)
        if not lazy_load:
            for name in self._specs:
                self.model(name)

    # ---- model registry ----
    def model(self, name="clip"):
        """The loaded model called `name` (loading it now if needed)."""
        with self._lock:
            m = self._models.get(name)
            if m is None:
                if name not in self._specs:
                    raise KeyError(f"no model named {name!r}; registered: {sorted(self._specs)}")
                spec = self._specs[name]
                if not isinstance(spec, (str, os.PathLike)):
                    m = spec  # an already loaded model object
                else:
                    m = load(spec, device=self.device, dtype=self.dtype)
                self._models[name] = m
            return m

    def unload(self, name):
        """Free a model's weights; arrays it returned stay valid. It reloads on next use."""
        with self._lock:
            m = self._models.pop(name, None)
        if m is None:
            raise KeyError(f"model {name!r} is not loaded")
        m.unload()

    @property
    def loaded(self):
        with self._lock:
            return sorted(self._models)

    def _contrastive(self, model):
        m = self.model(model)
        if not isinstance(m, ContrastiveModel):
            raise TypeError(f"model {model!r} is not a contrastive (CLIP/SigLIP) model")
        return m

    # ---- embeddings ----
    def _embed_images(self, m, images, batch_size):
        if isinstance(images, np.ndarray) and images.ndim == 4 and images.dtype == np.float32:
            return m.encode_image(pixel_values=images)["image_embeds"]
        images = list(images)
        if not images:
            raise ValueError("images: empty batch")
        out = []
        for i in range(0, len(images), batch_size):
            out.append(m.encode_image(images=images[i:i + batch_size])["image_embeds"])
        return out[0] if len(out) == 1 else np.concatenate(out)

    def _embed_texts(self, m, texts, batch_size):
        if isinstance(texts, np.ndarray) and texts.ndim == 2 and np.issubdtype(texts.dtype, np.integer):
            return m.encode_text(input_ids=texts)["text_embeds"]
        texts = list(texts)
        if not texts:
            raise ValueError("texts: empty batch")
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("texts: every item must be a str")
        out = []
        for i in range(0, len(texts), batch_size):
            out.append(m.encode_text(texts=texts[i:i + batch_size])["text_embeds"])
        return out[0] if len(out) == 1 else np.concatenate(out)

    def embed(self, image_path=None, text=None, *, images=None, texts=None, pixel_values=None, input_ids=None,
              batch_size=32, model="clip"):
        """L2-normalized embeddings: {"image": ..., "text": ...} (keys present for what was given).

        Single `image_path` / `text` give 1-D vectors; `images` / `texts` lists give (N, D)."""
        m = self._contrastive(model)
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        res = {}
        if image_path is not None:
            res["image"] = self._embed_images(m, [image_path], 1)[0]
        if images is not None:
            res["image"] = self._embed_images(m, images, batch_size)
        if pixel_values is not None:
            res["image"] = m.encode_image(pixel_values=pixel_values)["image_embeds"]
        if text is not None:
            if not isinstance(text, str):
                raise TypeError("text: expected a str (use texts=[...] for a batch)")
            res["text"] = self._embed_texts(m, [text], 1)[0]
        if texts is not None:
            res["text"] = self._embed_texts(m, texts, batch_size)
        if input_ids is not None:
            res["text"] = m.encode_text(input_ids=input_ids)["text_embeds"]
        if not res:
            raise ValueError("embed: pass image_path/images/pixel_values and/or text/texts/input_ids")
        return res

    def similarity(self, images, texts, model="clip", batch_size=32):
        """Cosine similarities (N_images, N_texts); a single image and text give a float."""
        single_i = _is_image_like(images) and not (isinstance(images, np.ndarray) and images.ndim == 4)
        single_t = isinstance(texts, str)
        m = self._contrastive(model)
        img = self._embed_images(m, [images] if single_i else images, batch_size)
        txt = self._embed_texts(m, [texts] if single_t else texts, batch_size)
        sim = img @ txt.T
        if single_i and single_t:
            return float(sim[0, 0])
        return sim

    # ---- zero-shot classification ----
    def class_embeddings(self, labels, templates=None, model="clip", embed_texts=None):
        """(len(labels), D) normalized mean of each label's template embeddings (prompt ensembling).
        embed_texts: optional function prompts -> (N, D) normalized embeddings (e.g. a cached one)."""
        m = self._contrastive(model)
        labels = list(labels)
        if not labels:
            raise ValueError("labels: need at least one label")
        templates = list(templates) if templates else (list(DEFAULT_TEMPLATES) if m.kind == "clip" else ["{}"])
        prompts = [t.format(lab) if "{}" in t else f"{t} {lab}" for lab in labels for t in templates]
        emb = embed_texts(prompts) if embed_texts is not None else self._embed_texts(m, prompts, 256)
        emb = np.asarray(emb).reshape(len(labels), len(templates), -1).mean(axis=1)
        return emb / np.linalg.norm(emb, axis=1, keepdims=True)

    def classify(self, image, labels, templates=None, model="clip", top_k=None, batch_size=32):
        """Zero-shot classification. One image -> {"labels", "probs", "top"}; a list -> list of those.

        CLIP: softmax over labels of exp(logit_scale) * cosine; SigLIP: independent sigmoids."""
        m = self._contrastive(model)
        labels = list(labels)
        cls = self.class_embeddings(labels, templates, model)
        single = _is_image_like(image) and not (isinstance(image, np.ndarray) and image.ndim == 4)
        img = self._embed_images(m, [image] if single else image, batch_size)
        logits, _ = m.logits(img, cls)
        probs = m.probabilities(logits)
        k = len(labels) if top_k is None else int(top_k)
        results = []
        for p in probs:
            order = np.argsort(-p, kind="stable")[:k]
            results.append({"labels": labels, "probs": p, "top": [(labels[i], float(p[i])) for i in order]})
        return results[0] if single else results

    def moderate(self, image, categories, threshold=0.5, neutral=DEFAULT_NEUTRAL, templates=None, model="clip"):
        """Flag an image against unwanted categories.

        CLIP: softmax over the categories plus neutral prompts (so an ordinary image puts its mass on
        the neutral side); SigLIP: per-category sigmoid. A category is flagged when its score
        >= threshold. Returns {"flagged", "scores": {category: score}, "flagged_categories"}."""
        m = self._contrastive(model)
        categories = list(categories)
        if not categories:
            raise ValueError("categories: need at least one category")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError("threshold must be in [0, 1]")
        single = _is_image_like(image) and not (isinstance(image, np.ndarray) and image.ndim == 4)
        names = categories + ([] if m.kind == "siglip" else list(neutral))
        cls = self.class_embeddings(names, templates or ["a photo of {}.", "an image showing {}."], model)
        img = self._embed_images(m, [image] if single else image, 32)
        logits, _ = m.logits(img, cls)
        probs = m.probabilities(logits)[:, :len(categories)]
        out = []
        for p in probs:
            scores = {c: float(s) for c, s in zip(categories, p)}
            flagged = [c for c in categories if scores[c] >= threshold]
            out.append({"flagged": bool(flagged), "scores": scores, "flagged_categories": flagged})
        return out[0] if single else out

    # ---- visual instruction following (LLaVA) ----
    def _vlm(self, model, names=("llava", "vlm", "blip2"), what="ask"):
        if model is None:
            cands = [n for n in names if n in self._specs]
            if not cands:
                raise KeyError(f"no {'/'.join(names)} model registered (give models={{'{names[0]}': path}}); "
                               f"registered: {sorted(self._specs)}")
            model = cands[0]
        m = self.model(model)
        if not hasattr(m, what):
            raise TypeError(f"model {model!r} cannot {what} (a {type(m).__name__})")
        return m

    def caption(self, image, prompt=None, max_new_tokens=30, num_beams=1, model=None, **gen):
        """Caption an image (path, bytes, array, PIL) -> str, or a list of images -> list of str
        (batched), with the BLIP-2 model registered as "blip2" (or `model=`)."""
        return self._vlm(model, ("blip2", "caption"), "caption").caption(
            image, prompt=prompt, max_new_tokens=max_new_tokens, num_beams=num_beams, **gen)

    def ask(self, image, question, max_new_tokens=128, temperature=None, stream=False, model=None, **gen):
        """Answer a question about an image (path, bytes, array or PIL image) with the LLaVA model
        registered as "llava" (or `model=`, e.g. "blip2": BLIP-2's short "Question: ... Answer:"
        answers). stream=True returns a generator of text deltas (LLaVA)."""
        m = self._vlm(model)
        if hasattr(m, "caption"):  # BLIP-2
            if stream:
                raise ValueError("stream=True is available with LLaVA models, not BLIP-2")
            return m.ask(image, question, max_new_tokens=max_new_tokens, temperature=temperature, **gen)
        return m.ask(image, question, stream=stream, max_new_tokens=max_new_tokens, temperature=temperature, **gen)

    def chat(self, messages, max_new_tokens=256, temperature=None, stream=False, model=None, **gen):
        """Next assistant turn of a conversation; image parts: {"type": "image", "image": path}."""
        return self._vlm(model).chat(messages, stream=stream, max_new_tokens=max_new_tokens,
                                     temperature=temperature, **gen)
