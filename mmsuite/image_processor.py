"""Hugging Face image processors (CLIP / SigLIP / BLIP) on mmsuite's C core.

`ImageProcessor` reads a `preprocessor_config.json`, fills in the defaults of its processor type
(transformers v4.47), normalises `size` / `crop_size` the way HF's `get_size_dict` does, and runs
decode -> resize -> center crop -> rescale -> normalize in C (csrc/preprocess.c), images in
parallel, returning float32 (N, 3, H, W) equal to HF's `pixel_values` (bit-exact resize).

Inputs: file paths, encoded PNG/JPEG bytes, uint8 (H, W, 3) RGB arrays, or PIL images (converted
with `numpy.asarray(img.convert("RGB"))`; PIL is never imported here). Decoded images are always
RGB (Pillow's convert("RGB") rules), also for SigLIP whose HF default `do_convert_rgb=None` would
pass a grayscale image through as 1 channel.
"""
import json
import os

import numpy as np

from ._jsonio import read_json
from . import _C
from .errors import ConfigError

__all__ = ["ImageProcessor", "decode_image", "resize", "OPENAI_CLIP_MEAN", "OPENAI_CLIP_STD"]

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_STANDARD_MEAN = (0.5, 0.5, 0.5)
IMAGENET_STANDARD_STD = (0.5, 0.5, 0.5)

# Defaults of each processor class's __init__ in transformers v4.47, used for absent keys.
_DEFAULTS = {
    "clip": dict(do_resize=True, size={"shortest_edge": 224}, resample=3, do_center_crop=True,
                 crop_size={"height": 224, "width": 224}, do_rescale=True, rescale_factor=1 / 255,
                 do_normalize=True, image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD,
                 do_convert_rgb=True),
    "siglip": dict(do_resize=True, size={"height": 224, "width": 224}, resample=3, do_center_crop=False,
                   crop_size=None, do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                   image_mean=IMAGENET_STANDARD_MEAN, image_std=IMAGENET_STANDARD_STD, do_convert_rgb=None),
    "blip": dict(do_resize=True, size={"height": 384, "width": 384}, resample=3, do_center_crop=False,
                 crop_size=None, do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                 image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD, do_convert_rgb=True),
}

_TYPES = {
    "CLIPImageProcessor": "clip", "CLIPImageProcessorFast": "clip", "CLIPFeatureExtractor": "clip",
    "SiglipImageProcessor": "siglip", "SiglipImageProcessorFast": "siglip",
    "BlipImageProcessor": "blip", "BlipImageProcessorFast": "blip",
}

# Keys of preprocessor_config.json that carry no preprocessing setting for these processors.
_IGNORED_KEYS = {"image_processor_type", "feature_extractor_type", "processor_class", "_processor_class",
                 "auto_map", "use_square_size", "image_seq_length", "num_image_tokens", "patch_size",
                 "vision_feature_select_strategy", "image_grid_pinpoints", "return_tensors", "data_format",
                 "input_data_format", "device", "disable_grouping", "default_to_square", "crop_pct"}


def _size_dict(value, default_to_square, name):
    """HF get_size_dict: int / (h, w) / dict -> {"shortest_edge"} or {"height", "width"}."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"image processor: {name} must be an int, a (height, width) pair or a dict, got {value!r}")
    if isinstance(value, int):
        return {"height": value, "width": value} if default_to_square else {"shortest_edge": value}
    if isinstance(value, (list, tuple)):
        if len(value) == 2:
            return {"height": int(value[0]), "width": int(value[1])}
        if len(value) == 1:
            return _size_dict(int(value[0]), default_to_square, name)
    if isinstance(value, dict):
        if "height" in value and "width" in value:
            return {"height": int(value["height"]), "width": int(value["width"])}
        if "shortest_edge" in value:  # CLIP ignores a longest_edge next to it, and so do we
            return {"shortest_edge": int(value["shortest_edge"])}
    raise ConfigError(f"image processor: unsupported {name} {value!r} (expected an int, (height, width), "
                      "{'shortest_edge': n} or {'height': h, 'width': w})")


def _three(value, name):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (float(value),) * 3
    try:
        out = tuple(float(v) for v in value)
    except TypeError:
        out = ()
    if len(out) != 3:
        raise ConfigError(f"image processor: {name} must be a number or 3 numbers, got {value!r}")
    return out


_OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
_OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


class ImageProcessor:
    """CLIPImageProcessor / SiglipImageProcessor / BlipImageProcessor settings and a batched,
    multithreaded `__call__`. Settings are plain attributes (size, crop_size, resample, ...)."""

    def __init__(self, image_processor_type="CLIPImageProcessor", jpeg_draft=False, **settings):
        kind = _TYPES.get(image_processor_type)
        if kind is None:
            raise ConfigError(f"image processor: unsupported image_processor_type {image_processor_type!r} "
                              f"(supported: {', '.join(sorted(_TYPES))})")
        merged = dict(_DEFAULTS[kind])
        unknown = []
        for key, value in settings.items():
            if key in merged:
                if value is not None or key == "do_convert_rgb":
                    merged[key] = value
            elif key not in _IGNORED_KEYS:
                unknown.append(key)
        if unknown:
            raise ConfigError(f"image processor: unknown setting(s) {', '.join(sorted(unknown))}")

        self.image_processor_type = image_processor_type
        self.kind = kind
        self.do_resize = bool(merged["do_resize"])
        # CLIP keeps an int size as shortest edge; SigLIP/BLIP resize to an exact (square) size
        # (HF's SigLIP would fail on an int size; a square is what it means).
        self.size = _size_dict(merged["size"], default_to_square=kind != "clip", name="size")
        if kind == "clip" and settings.get("use_square_size") and "shortest_edge" in self.size:
            # KOSMOS-2 compatibility in CLIPImageProcessor.__init__
            self.size = {"height": self.size["shortest_edge"], "width": self.size["shortest_edge"]}
        if kind != "clip" and "shortest_edge" in self.size:
            raise ConfigError(f"image processor: {image_processor_type} needs size with height and width, "
                              f"got {merged['size']!r}")
        try:
            self.resample = int(merged["resample"])
        except (TypeError, ValueError):
            raise ConfigError(f"image processor: resample must be a PIL filter number, got {merged['resample']!r}")
        if not 0 <= self.resample <= 5:
            raise ConfigError(f"image processor: resample must be a PIL filter number 0..5, got {self.resample}")
        # Only CLIP has a center crop step; SigLIP and BLIP ignore crop keys.
        self.do_center_crop = bool(merged["do_center_crop"]) and kind == "clip"
        self.crop_size = _size_dict(merged["crop_size"], default_to_square=True, name="crop_size")
        if self.do_center_crop and (self.crop_size is None or "height" not in self.crop_size):
            raise ConfigError(f"image processor: crop_size must give height and width, got {merged['crop_size']!r}")
        self.do_rescale = bool(merged["do_rescale"])
        self.rescale_factor = float(merged["rescale_factor"])
        self.do_normalize = bool(merged["do_normalize"])
        self.image_mean = _three(merged["image_mean"], "image_mean")
        self.image_std = _three(merged["image_std"], "image_std")
        self.do_convert_rgb = merged["do_convert_rgb"]
        self.jpeg_draft = bool(jpeg_draft)
        self.unused_keys = ()
        self._c_config()  # fails now, not at the first call, on an unusable size dict

    # ---- construction ---------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, d, **overrides):
        """From a preprocessor_config.json dict; absent keys take the processor type's defaults,
        keys these processors do not use are recorded in `unused_keys` and ignored.
        `overrides` (e.g. jpeg_draft=True) replace keys of d."""
        d = dict(d)
        d.update(overrides)
        ptype = d.pop("image_processor_type", None) or d.pop("feature_extractor_type", None) or "CLIPImageProcessor"
        known = set(_DEFAULTS["clip"]) | _IGNORED_KEYS | {"jpeg_draft"}
        unused = tuple(sorted(k for k in d if k not in known))
        proc = cls(image_processor_type=ptype, **{k: v for k, v in d.items() if k in known})
        proc.unused_keys = unused
        return proc

    @classmethod
    def from_pretrained(cls, path, **overrides):
        """From a model directory holding preprocessor_config.json, or the path of that JSON file."""
        path = os.fspath(path)
        file = os.path.join(path, "preprocessor_config.json") if os.path.isdir(path) else path
        if not os.path.isfile(file):
            raise FileNotFoundError(f"image processor: no preprocessor config at '{file}'")
        d = read_json(file, "image processor", ConfigError, object_only=True)
        return cls.from_dict(d, **overrides)

    def to_dict(self):
        """The resolved settings, in preprocessor_config.json form."""
        return {
            "image_processor_type": self.image_processor_type, "do_resize": self.do_resize, "size": dict(self.size),
            "resample": self.resample, "do_center_crop": self.do_center_crop,
            "crop_size": dict(self.crop_size) if self.crop_size else None, "do_rescale": self.do_rescale,
            "rescale_factor": self.rescale_factor, "do_normalize": self.do_normalize,
            "image_mean": list(self.image_mean), "image_std": list(self.image_std),
            "do_convert_rgb": self.do_convert_rgb,
        }

    def _c_config(self):
        cfg = {
            "do_resize": self.do_resize, "resample": self.resample, "do_center_crop": self.do_center_crop,
            "do_rescale": self.do_rescale, "rescale_factor": self.rescale_factor,
            "do_normalize": self.do_normalize, "image_mean": list(self.image_mean),
            "image_std": list(self.image_std), "jpeg_draft": self.jpeg_draft,
        }
        if "shortest_edge" in self.size:
            cfg.update(resize_mode="shortest_edge", shortest_edge=self.size["shortest_edge"])
        else:
            cfg.update(resize_mode="exact", height=self.size["height"], width=self.size["width"])
        if self.do_center_crop:
            cfg.update(crop_height=self.crop_size["height"], crop_width=self.crop_size["width"])
        return cfg

    @property
    def c_config(self):
        """The dict handed to mmsuite._C.preprocess, built from the current attributes (so a
        changed attribute takes effect on the next call)."""
        return self._c_config()

    # ---- running --------------------------------------------------------------------------------

    # center-crop offset rule: "floor" = HF's (H - S) // 2; "half_even" = torchvision's
    # int(round((H - S) / 2)) used by OpenCLIP's eval transform.
    crop_rounding = "floor"

    def __call__(self, images):
        """images: one image or a list of them (path, bytes-like, uint8 (H, W, 3) array, PIL image;
        a uint8 (N, H, W, 3) array is N images) -> float32 (N, 3, H, W)."""
        items = _as_list(images)
        if not items:
            raise ValueError("image processor: empty batch (no images given)")
        if self.crop_rounding != "floor" and self.do_center_crop:
            # resize + crop composed here (exact u8 ops in C), then rescale/normalize in C
            u8 = [self.resized_u8(x) for x in items]
            cfg = dict(self._c_config(), do_resize=False, do_center_crop=False)
            cfg.pop("crop_height", None)
            cfg.pop("crop_width", None)
            return _C.preprocess(u8, cfg)
        return _C.preprocess([_as_source(x) for x in items], self._c_config())

    def resized_u8(self, image):
        """One image after decode + resize + center crop, before rescale/normalize: uint8 (H, W, 3)."""
        img = image
        if isinstance(img, (str, os.PathLike, bytes, bytearray, memoryview)):
            img = _C.decode_image(img)
        img = np.ascontiguousarray(_as_source(img))
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"image: expected uint8 (H, W, 3), got {img.dtype} {img.shape}")
        h, w = img.shape[:2]
        if self.do_resize:
            if "shortest_edge" in self.size:
                s = self.size["shortest_edge"]
                short, long = (w, h) if w <= h else (h, w)
                nl = int(s * long / short)
                nw, nh = (s, nl) if w <= h else (nl, s)
            else:
                nh, nw = self.size["height"], self.size["width"]
            if (nw, nh) != (w, h):
                img = _C.resize_image(img, nw, nh, self.resample)
            h, w = nh, nw
        if self.do_center_crop:
            ch, cw = self.crop_size["height"], self.crop_size["width"]
            if ch > h or cw > w:
                pad = np.zeros((max(h, ch), max(w, cw), 3), np.uint8)
                top, left = (max(h, ch) - h) // 2, (max(w, cw) - w) // 2
                pad[top:top + h, left:left + w] = img
                img, h, w = pad, max(h, ch), max(w, cw)
            if self.crop_rounding == "half_even":
                top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
            else:
                top, left = (h - ch) // 2, (w - cw) // 2
            img = np.ascontiguousarray(img[top:top + ch, left:left + cw])
        return img

    @classmethod
    def for_model(cls, path, config=None):
        """The processor a checkpoint directory implies: preprocessor_config.json (HF),
        open_clip_config.json's preprocess_cfg (OpenCLIP), else the family defaults sized from
        the model config dict (`image_size`, `kind`)."""
        pp = os.path.join(path, "preprocessor_config.json")
        if os.path.isfile(pp):
            return cls.from_pretrained(pp)
        oc = os.path.join(path, "open_clip_config.json")
        if os.path.isfile(oc):
            with open(oc, encoding="utf-8") as f:
                pc = json.load(f).get("preprocess_cfg", {})
            size = pc.get("size", (config or {}).get("image_size", 224))
            if isinstance(size, (list, tuple)):
                if len(size) != 2 or size[0] != size[1]:
                    raise ConfigError(f"{oc}: preprocess_cfg.size {size!r}: only square sizes are supported")
                size = size[0]
            interp = {"bicubic": 3, "bilinear": 2, "nearest": 0}.get(pc.get("interpolation", "bicubic"))
            if interp is None:
                raise ConfigError(f"{oc}: unsupported preprocess_cfg.interpolation {pc.get('interpolation')!r}")
            mode = pc.get("resize_mode", "shortest")
            common = dict(resample=interp, do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                          image_mean=pc.get("mean", _OPENAI_MEAN), image_std=pc.get("std", _OPENAI_STD))
            if mode == "shortest":
                p = cls("CLIPImageProcessor", size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                        do_center_crop=True, **common)
                p.crop_rounding = "half_even"
            elif mode == "squash":
                p = cls("SiglipImageProcessor", size={"height": size, "width": size}, **common)
            else:
                raise ConfigError(f"{oc}: preprocess_cfg.resize_mode {mode!r} is not supported")
            return p
        config = config or {}
        S = int(config.get("image_size", 224))
        if config.get("kind") == "siglip":
            return cls("SiglipImageProcessor", size={"height": S, "width": S})
        return cls("CLIPImageProcessor", size={"shortest_edge": S}, crop_size={"height": S, "width": S})

    preprocess = __call__

    def __repr__(self):
        return f"ImageProcessor({self.to_dict()!r})"


def _is_pil(x):
    # Duck-typed so that PIL is never imported by mmsuite.
    return hasattr(x, "convert") and hasattr(x, "mode") and hasattr(x, "size") and not isinstance(x, np.ndarray)


def _as_list(images):
    if isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview)) or _is_pil(images):
        return [images]
    if isinstance(images, np.ndarray):
        return list(images) if images.ndim == 4 else [images]
    return list(images)


def _as_source(x):
    if _is_pil(x):
        return np.asarray(x.convert("RGB"))
    if isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 3 and not x.flags.c_contiguous:
        return np.ascontiguousarray(x)  # the C side reads C-contiguous arrays in place
    return x


def decode_image(src):
    """PNG/JPEG file path or encoded bytes -> uint8 (H, W, 3) RGB array, equal to
    numpy.asarray(PIL.Image.open(src).convert("RGB")) (EXIF orientation and ICC ignored)."""
    return _C.decode_image(src)


def resize(image, width, height, resample=3):
    """uint8 (H, W, 3) array -> uint8 (height, width, 3), bit-exact with PIL
    Image.fromarray(image).resize((width, height), resample) as of Pillow 9.4 (PIL filter numbers:
    0 NEAREST, 1 LANCZOS, 2 BILINEAR, 3 BICUBIC, 4 BOX, 5 HAMMING)."""
    image = _as_source(image)
    return _C.resize_image(image, int(width), int(height), int(resample))
