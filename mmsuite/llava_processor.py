"""LLaVA-1.5 and LLaVA-NeXT (1.6) processor side, exact against transformers v4.47.1.

Images: LLaVA-1.5 uses the plain CLIP pipeline (`image_processor.ImageProcessor`); LLaVA-NeXT's
"anyres" split (best pinpoint, aspect-keeping resize, zero padding, tiles, base patch) is done here
on uint8 arrays with the Pillow-exact C resize, then every patch goes through the same C CLIP
pipeline. Prompts: per-image image-token counts (processor formulas) and their expansion in token ids
or text. Model side: the anyres grid / unpad geometry as plain ints for the C engine.

Where v4.47.1 differs from later transformers (padding an odd margin, token-count rounding) the
v4.47.1 behaviour is kept; see shared/conformance/README.md, "LLaVA-NeXT / 1.6".
"""
import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from ._jsonio import read_json
from . import _C
from .errors import ConfigError
from .image_processor import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ImageProcessor, _as_list, _as_source, _size_dict

__all__ = [
    "DEFAULT_IMAGE_GRID_PINPOINTS", "select_best_resolution", "patch_output_size", "pad_offsets",
    "anyres_patches_u8", "image_size_to_num_patches", "anyres_grid_shape", "unpad_extent", "AnyresGeometry",
    "anyres_geometry", "llava_num_image_tokens", "llava_next_num_image_tokens", "expand_image_tokens",
    "expand_image_placeholders", "LlavaNextImageProcessor", "LlavaProcessor",
]

# LlavaNextImageProcessor / LlavaNextConfig default (height, width) pinpoints.
DEFAULT_IMAGE_GRID_PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]


# ================================================================ anyres geometry (processor) ====

def _pinpoints(pinpoints):
    try:
        out = [(int(h), int(w)) for h, w in pinpoints]
    except (TypeError, ValueError):
        raise ConfigError(f"llava-next: image_grid_pinpoints must be a list of (height, width) pairs, "
                          f"got {pinpoints!r}") from None
    if not out or any(h <= 0 or w <= 0 for h, w in out):
        raise ConfigError(f"llava-next: image_grid_pinpoints must be non-empty positive (height, width) pairs, "
                          f"got {pinpoints!r}")
    return out


def select_best_resolution(orig_hw, pinpoints):
    """The (height, width) pinpoint HF picks for an image of `orig_hw` = (H, W): the largest
    effective (downscaled, capped at the original) area, then the least waste; first wins ties.
    Same float arithmetic as transformers' `select_best_resolution`."""
    H, W = int(orig_hw[0]), int(orig_hw[1])
    if H <= 0 or W <= 0:
        raise ValueError(f"llava-next: image size must be positive, got (H, W) = ({H}, {W})")
    best, max_eff, min_waste = None, 0, float("inf")
    for h, w in _pinpoints(pinpoints):
        scale = min(w / W, h / H)
        eff = min(int(W * scale) * int(H * scale), W * H)
        waste = h * w - eff
        if eff > max_eff or (eff == max_eff and waste < min_waste):
            best, max_eff, min_waste = (h, w), eff, waste
    if best is None:
        # HF returns None here and fails later; every pinpoint scales one side of the image to 0 px
        raise ValueError(f"llava-next: image of (H, W) = ({H}, {W}) fits no pinpoint of {pinpoints!r} "
                         "(one side would scale to 0 pixels)")
    return best


def patch_output_size(orig_hw, target_hw):
    """(new_h, new_w) of the aspect-keeping resize into `target_hw` (HF `_get_patch_output_size`:
    the scale is divided first, then multiplied, then ceil - the float order matters)."""
    H, W = int(orig_hw[0]), int(orig_hw[1])
    th, tw = int(target_hw[0]), int(target_hw[1])
    scale_w, scale_h = tw / W, th / H
    if scale_w < scale_h:
        return min(math.ceil(H * scale_w), th), tw
    return th, min(math.ceil(W * scale_h), tw)


def pad_offsets(fit_hw, target_hw):
    """(top, left) zero padding v4.47.1 adds on BOTH sides: floor of half the difference, so an
    odd difference leaves the canvas one pixel smaller than `target_hw` (later versions pad the
    extra pixel; the fixtures are v4.47.1)."""
    return (int(target_hw[0]) - int(fit_hw[0])) // 2, (int(target_hw[1]) - int(fit_hw[1])) // 2


def _resize(img, w, h, resample):
    if img.shape[0] == h and img.shape[1] == w:
        return img  # Pillow returns a copy for an unchanged size: no filtering
    return _C.resize_image(np.ascontiguousarray(img), int(w), int(h), int(resample))


def anyres_patches_u8(image, pinpoints, tile_size, base_size=None, resample=3):
    """uint8 (H, W, 3) RGB -> list of uint8 patches [base, tile_0, tile_1, ...] before the CLIP
    step: base = the whole image resized to exactly base_size x base_size (aspect not kept);
    tiles = row-major `tile_size` cuts of the padded canvas (edge tiles may be smaller)."""
    img = np.ascontiguousarray(_as_source(image))
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"llava-next: expected a uint8 (H, W, 3) image, got {img.dtype} {img.shape}")
    S = int(tile_size)
    B = S if base_size is None else int(base_size)
    best = select_best_resolution(img.shape[:2], pinpoints)
    nh, nw = patch_output_size(img.shape[:2], best)
    fitted = _resize(img, nw, nh, resample)
    top, left = pad_offsets((nh, nw), best)
    canvas = np.zeros((nh + 2 * top, nw + 2 * left, 3), np.uint8)  # (H', W', 3), H' <= best_h
    canvas[top:top + nh, left:left + nw] = fitted
    tiles = [np.ascontiguousarray(canvas[i:i + S, j:j + S])
             for i in range(0, canvas.shape[0], S) for j in range(0, canvas.shape[1], S)]
    return [_resize(img, B, B, resample)] + tiles


def image_size_to_num_patches(orig_hw, pinpoints, tile_size):
    """Real patches per image as the v4.47.1 model counts them (`image_size_to_num_patches`):
    1 base + ceil(best_h / S) * ceil(best_w / S)."""
    bh, bw = select_best_resolution(orig_hw, pinpoints)
    S = int(tile_size)
    return 1 + (-(-bh // S)) * (-(-bw // S))


# ================================================================ anyres geometry (model) ========

def anyres_grid_shape(orig_hw, pinpoints, tile_size):
    """(gh, gw): the tile grid the model reshapes the patch features into (best // vision image_size)."""
    bh, bw = select_best_resolution(orig_hw, pinpoints)
    return bh // int(tile_size), bw // int(tile_size)


def unpad_extent(orig_hw, cur_h, cur_w):
    """(row0, rows, col0, cols): the window of the (cur_h, cur_w) token grid that v4.47.1's
    `unpad_image` keeps, with its float order (scale divided first) and int(round(x, 7))."""
    H, W = int(orig_hw[0]), int(orig_hw[1])
    cur_h, cur_w = int(cur_h), int(cur_w)
    if W / H > cur_w / cur_h:
        new_h = int(round(H * (cur_w / W), 7))
        pad = (cur_h - new_h) // 2
        return pad, cur_h - 2 * pad, 0, cur_w
    new_w = int(round(W * (cur_h / H), 7))
    pad = (cur_w - new_w) // 2
    return 0, cur_h, pad, cur_w - 2 * pad


class AnyresGeometry(NamedTuple):
    """Per-image packing plan for LlavaNextForConditionalGeneration.pack_image_features."""
    num_patches: int   # real patches in pixel_values (1 base + grid tiles)
    grid_h: int        # tiles down (gh)
    grid_w: int        # tiles across (gw)
    n: int             # tokens per tile side (image_size // patch_size)
    row0: int          # first kept row of the (gh*n, gw*n) token grid
    rows: int          # kept rows
    col0: int          # first kept column
    cols: int          # kept columns (an image_newline is appended after each kept row)
    base_tokens: int   # rows taken from patch 0 (n*n, +1 with the "full" strategy)
    num_tokens: int    # base_tokens + rows * (cols + 1)


def anyres_geometry(orig_hw, pinpoints, image_size, patch_size, strategy="default"):
    """The model-side geometry of one image (config.json values: image_grid_pinpoints,
    vision_config.image_size / patch_size, vision_feature_select_strategy)."""
    S, p = int(image_size), int(patch_size)
    if S <= 0 or p <= 0 or S % p:
        raise ConfigError(f"llava-next: vision image_size {S} must be a positive multiple of patch_size {p}")
    n = S // p
    gh, gw = anyres_grid_shape(orig_hw, pinpoints, S)
    row0, rows, col0, cols = unpad_extent(orig_hw, gh * n, gw * n)
    base = n * n + (1 if strategy == "full" else 0)
    return AnyresGeometry(image_size_to_num_patches(orig_hw, pinpoints, S), gh, gw, n, row0, rows, col0, cols,
                          base, base + rows * (cols + 1))


# ================================================================ image-token counts =============

def _check_strategy(strategy):
    if strategy not in ("default", "full"):
        raise ConfigError(f"llava: vision_feature_select_strategy must be 'default' or 'full', got {strategy!r}")


def llava_num_image_tokens(height, width, patch_size, strategy="default", num_additional_image_tokens=1):
    """LlavaProcessor (v4.47.1): tokens per image from the processed pixel size:
    (H // p) * (W // p) + extra, minus extra with the "default" strategy (CLS dropped)."""
    _check_strategy(strategy)
    extra = int(num_additional_image_tokens)
    n = (int(height) // int(patch_size)) * (int(width) // int(patch_size)) + extra
    return n - extra if strategy == "default" else n


def _unpadded_features(H, W, patches_h, patches_w, scale_h, scale_w):
    # LlavaNextProcessor._get_unpadded_features, v4.47.1: exact integer floor divisions (the model's
    # float round(x, 7) gives the same numbers for any realistic size; tests check both).
    cur_h, cur_w = patches_h * scale_h, patches_w * scale_w
    if W / H > cur_w / cur_h:
        new_h = (H * cur_w) // W
        cur_h -= ((cur_h - new_h) // 2) * 2
    else:
        new_w = (W * cur_h) // H
        cur_w -= ((cur_w - new_w) // 2) * 2
    return cur_h * cur_w, cur_h


def llava_next_num_image_tokens(orig_hw, pinpoints, height, width, patch_size, strategy="default",
                                num_additional_image_tokens=1):
    """LlavaNextProcessor (v4.47.1) `_get_number_of_features` for an original image of `orig_hw`,
    with (height, width) the processed patch size: base (n*n + extra) + unpadded grid + one newline
    per kept row, minus extra with the "default" strategy."""
    _check_strategy(strategy)
    H, W = int(orig_hw[0]), int(orig_hw[1])
    height, width, p = int(height), int(width), int(patch_size)
    bh, bw = select_best_resolution((H, W), pinpoints)
    ph, pw = height // p, width // p
    unpadded, newlines = _unpadded_features(H, W, ph, pw, bh // height, bw // width)
    extra = int(num_additional_image_tokens)
    n = unpadded + newlines + ph * pw + extra
    return n - extra if strategy == "default" else n


def expand_image_tokens(input_ids, image_token_id, counts):
    """Replace the k-th `image_token_id` in `input_ids` by counts[k] copies of it (what the HF
    processors do to the prompt text before tokenizing). `input_ids`: a list of ints, or a batch
    (list of lists / 2-D array) whose images are numbered across rows in order. Returns the same
    nesting as lists. Raises ValueError when the placeholders and `counts` differ in number."""
    counts = [int(c) for c in counts]
    if isinstance(input_ids, np.ndarray):
        batched = input_ids.ndim == 2
    else:
        input_ids = list(input_ids)
        batched = bool(input_ids) and not isinstance(input_ids[0], (int, np.integer))
    rows = [list(map(int, r)) for r in input_ids] if batched else [list(map(int, input_ids))]
    tok = int(image_token_id)
    found = sum(r.count(tok) for r in rows)
    if found != len(counts):
        raise ValueError(f"llava: the prompt holds {found} image placeholder(s) (token id {tok}) but "
                         f"{len(counts)} image(s) were given")
    it = iter(counts)
    out = []
    for r in rows:
        new = []
        for t in r:
            new.extend([tok] * next(it) if t == tok else (t,))
        out.append(new)
    return out if batched else out[0]


def expand_image_placeholders(text, counts, image_token="<image>"):
    """Text version of `expand_image_tokens`: the k-th `image_token` becomes counts[k] copies.
    `text` is a string or a list of strings (images numbered across them in order)."""
    texts = [text] if isinstance(text, str) else list(text)
    counts = [int(c) for c in counts]
    found = sum(t.count(image_token) for t in texts)
    if found != len(counts):
        raise ValueError(f"llava: the prompt holds {found} {image_token!r} placeholder(s) but "
                         f"{len(counts)} image(s) were given")
    it = iter(counts)
    out = [image_token.join(p if i == 0 else image_token * (next(it) - 1) + p
                            for i, p in enumerate(t.split(image_token))) for t in texts]
    return out[0] if isinstance(text, str) else out


# ================================================================ LlavaNextImageProcessor ========

# LlavaNextImageProcessor.__init__ defaults (transformers v4.47.1).
_NEXT_DEFAULTS = dict(do_resize=True, size={"shortest_edge": 224}, image_grid_pinpoints=None, resample=3,
                      do_center_crop=True, crop_size={"height": 224, "width": 224}, do_rescale=True,
                      rescale_factor=1 / 255, do_normalize=True, image_mean=OPENAI_CLIP_MEAN,
                      image_std=OPENAI_CLIP_STD, do_pad=True, do_convert_rgb=True)
_NEXT_IGNORED = {"image_processor_type", "processor_class", "_processor_class", "feature_extractor_type",
                 "aspect_ratio_setting", "auto_map", "image_seq_length", "patch_size",
                 "vision_feature_select_strategy", "num_additional_image_tokens"}


def _read_json(path, what):
    return read_json(path, what, ConfigError, object_only=True)


class LlavaNextImageProcessor:
    """transformers v4.47.1 LlavaNextImageProcessor: anyres patches + the CLIP pipeline per patch.
    `__call__(images)` -> {"pixel_values": float32 (n, max_patches, 3, S, S) zero-padded along
    dim 1, "image_sizes": int64 (n, 2) original (H, W)}."""

    def __init__(self, **settings):
        unknown = sorted(k for k in settings if k not in _NEXT_DEFAULTS and k not in _NEXT_IGNORED)
        if unknown:
            raise ConfigError(f"llava-next image processor: unknown setting(s) {', '.join(unknown)}")
        m = dict(_NEXT_DEFAULTS)
        m.update({k: v for k, v in settings.items() if k in _NEXT_DEFAULTS and v is not None})
        self.image_grid_pinpoints = _pinpoints(m["image_grid_pinpoints"] or DEFAULT_IMAGE_GRID_PINPOINTS)
        self.size = _size_dict(m["size"], default_to_square=False, name="size")
        self.crop_size = _size_dict(m["crop_size"], default_to_square=True, name="crop_size")
        if "height" not in self.crop_size:
            raise ConfigError("llava-next image processor: crop_size must give height and width, "
                              f"got {m['crop_size']!r}")
        self.do_pad = bool(m["do_pad"])  # v4.47.1 fails with do_pad=False; patches are always padded here
        self.do_convert_rgb = m["do_convert_rgb"]
        # The per-patch stage is exactly CLIPImageProcessor with the same settings.
        self.clip = ImageProcessor("CLIPImageProcessor", do_resize=m["do_resize"], size=self.size,
                                   resample=m["resample"], do_center_crop=m["do_center_crop"],
                                   crop_size=self.crop_size, do_rescale=m["do_rescale"],
                                   rescale_factor=m["rescale_factor"], do_normalize=m["do_normalize"],
                                   image_mean=m["image_mean"], image_std=m["image_std"])
        self.resample = self.clip.resample
        self.unused_keys = ()

    @property
    def tile_size(self):
        """Tile side of the anyres grid (crop_size height, as HF's `patch_size` argument)."""
        return self.crop_size["height"]

    @property
    def base_size(self):
        """Side of patch 0 (the whole image squashed): shortest_edge, or min(height, width)."""
        s = self.size
        return s["shortest_edge"] if "shortest_edge" in s else min(s["height"], s["width"])

    @classmethod
    def from_dict(cls, d, image_grid_pinpoints=None):
        """From a preprocessor_config.json dict; `image_grid_pinpoints` (e.g. from config.json)
        fills in when the dict has none. Keys this processor does not use are recorded in
        `unused_keys` (a checkpoint may carry extras), unlike the constructor which rejects them."""
        d = dict(d)
        if d.get("image_grid_pinpoints") is None and image_grid_pinpoints is not None:
            d["image_grid_pinpoints"] = image_grid_pinpoints
        known = set(_NEXT_DEFAULTS) | _NEXT_IGNORED
        proc = cls(**{k: v for k, v in d.items() if k in known})
        proc.unused_keys = tuple(sorted(k for k in d if k not in known))
        return proc

    @classmethod
    def from_pretrained(cls, path):
        """From a model directory: preprocessor_config.json, with config.json's
        image_grid_pinpoints used when the preprocessor config has none."""
        path = os.fspath(path)
        pp = os.path.join(path, "preprocessor_config.json")
        if not os.path.isfile(pp):
            raise FileNotFoundError(f"llava-next image processor: no preprocessor config at '{pp}'")
        d = _read_json(pp, "llava-next image processor")
        cfg = os.path.join(path, "config.json")
        pins = _read_json(cfg, "llava-next config").get("image_grid_pinpoints") if os.path.isfile(cfg) else None
        return cls.from_dict(d, image_grid_pinpoints=pins)

    def _decode(self, x):
        if isinstance(x, (str, os.PathLike, bytes, bytearray, memoryview)):
            return _C.decode_image(x)
        return _as_source(x)

    def patches_u8(self, image):
        """One image -> its uint8 patches (base first) before the CLIP step."""
        return self._prepare(image)[1]

    def _prepare(self, image):
        img = self._decode(image)
        return img.shape[:2], anyres_patches_u8(img, self.image_grid_pinpoints, self.tile_size,
                                                self.base_size, self.resample)

    def __call__(self, images):
        items = _as_list(images)
        if not items:
            raise ValueError("llava-next image processor: empty batch (no images given)")
        # Decode + anyres resize per image (the C calls release the GIL), then one multithreaded
        # C pass over every patch of the batch.
        if len(items) > 1:
            workers = min(len(items), max(1, _C.get_num_threads() or os.cpu_count() or 1))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                prepared = list(pool.map(self._prepare, items))
        else:
            prepared = [self._prepare(items[0])]
        pv = self.clip([p for _, ps in prepared for p in ps])  # (total_patches, 3, S, S)
        counts = [len(ps) for _, ps in prepared]
        out = np.zeros((len(items), max(counts)) + pv.shape[1:], np.float32)  # (n, max_patches, 3, S, S)
        start = 0
        for i, c in enumerate(counts):
            out[i, :c] = pv[start:start + c]
            start += c
        image_sizes = np.array([hw for hw, _ in prepared], np.int64).reshape(len(items), 2)
        return {"pixel_values": out, "image_sizes": image_sizes}

    preprocess = __call__

    def num_image_tokens(self, image_sizes, patch_size, strategy="default", num_additional_image_tokens=1):
        """Per-image prompt token counts (LlavaNextProcessor) for `image_sizes` [(H, W), ...]."""
        S = self.crop_size["height"], self.crop_size["width"]
        return [llava_next_num_image_tokens(hw, self.image_grid_pinpoints, S[0], S[1], patch_size, strategy,
                                            num_additional_image_tokens) for hw in image_sizes]

    def __repr__(self):
        return (f"LlavaNextImageProcessor(size={self.size}, crop_size={self.crop_size}, "
                f"image_grid_pinpoints={self.image_grid_pinpoints}, resample={self.resample})")


# ================================================================ checkpoint-level processor =====

# Vision-tower defaults for keys a config.json may omit (transformers v4.47.1): (image_size,
# patch_size, extra tokens the tower prepends: CLIP's CLS, none for SigLIP).
_VISION_DEFAULTS = {"clip_vision_model": (224, 32, 1), "siglip_vision_model": (224, 16, 0)}


class LlavaProcessor:
    """Image and prompt side of a llava (1.5) or llava_next (1.6) checkpoint directory.

    Settings come from config.json (model_type, image_token_index, vision_config image/patch size,
    vision_feature_select_strategy, image_grid_pinpoints) overridden by processor_config.json
    (patch_size, vision_feature_select_strategy, num_additional_image_tokens) when present. Unlike
    v4.47.1, a checkpoint without processor_config.json still gets its prompts expanded (with the
    config's patch size): the in-model legacy expansion of v4.47.1 is not supported.
    """

    def __init__(self, model_type, image_processor, image_token_index, patch_size, image_size,
                 vision_feature_select_strategy="default", num_additional_image_tokens=1, image_grid_pinpoints=None,
                 vision_patch_size=None):
        if model_type not in ("llava", "llava_next"):
            raise ConfigError(f"llava: unsupported model_type {model_type!r} (supported: llava, llava_next)")
        _check_strategy(vision_feature_select_strategy)
        self.model_type = model_type
        self.image_processor = image_processor
        self.image_token_index = int(image_token_index)
        self.patch_size = int(patch_size)  # the processor's (token counts)
        self.vision_patch_size = int(patch_size if vision_patch_size is None else vision_patch_size)  # the model's
        self.image_size = int(image_size)  # vision tower input side (model-side tile size)
        self.vision_feature_select_strategy = vision_feature_select_strategy
        self.num_additional_image_tokens = int(num_additional_image_tokens)
        # The model's pinpoints (config.json) drive the geometry; the image processor has its own copy.
        self.image_grid_pinpoints = (_pinpoints(image_grid_pinpoints) if image_grid_pinpoints is not None
                                     else getattr(image_processor, "image_grid_pinpoints", None))

    @classmethod
    def from_pretrained(cls, path):
        """From a checkpoint directory (config.json, preprocessor_config.json, optional
        processor_config.json)."""
        path = os.fspath(path)
        cfg_file = os.path.join(path, "config.json")
        if not os.path.isfile(cfg_file):
            raise FileNotFoundError(f"llava: no config.json in '{path}'")
        cfg = _read_json(cfg_file, "llava config")
        model_type = cfg.get("model_type")
        vc = cfg.get("vision_config")
        if vc is None:  # LlavaConfig's own default tower: CLIP ViT-L/14 at 336
            vtype, size, patch = "clip_vision_model", 336, 14
        else:
            vtype = vc.get("model_type", "clip_vision_model")
            if vtype not in _VISION_DEFAULTS:
                raise ConfigError(f"llava: {cfg_file}: unsupported vision_config.model_type {vtype!r}")
            size = vc.get("image_size", _VISION_DEFAULTS[vtype][0])
            patch = vc.get("patch_size", _VISION_DEFAULTS[vtype][1])
        proc = {}
        pc_file = os.path.join(path, "processor_config.json")
        if os.path.isfile(pc_file):
            proc = _read_json(pc_file, "llava processor config")

        def pick(key, default):
            v = proc.get(key)
            return default if v is None else v

        strategy = pick("vision_feature_select_strategy", cfg.get("vision_feature_select_strategy", "default"))
        pins = cfg.get("image_grid_pinpoints", DEFAULT_IMAGE_GRID_PINPOINTS) if model_type == "llava_next" else None
        if model_type == "llava_next":
            improc = LlavaNextImageProcessor.from_pretrained(path)
        elif model_type == "llava":
            improc = ImageProcessor.from_pretrained(path)
        else:
            raise ConfigError(f"llava: {cfg_file}: unsupported model_type {model_type!r} "
                              "(supported: llava, llava_next)")
        token = cfg.get("image_token_index", cfg.get("image_token_id", 32000))  # renamed after v4.47
        return cls(model_type, improc, token, pick("patch_size", patch), size, strategy,
                   pick("num_additional_image_tokens", _VISION_DEFAULTS[vtype][2]), pins, vision_patch_size=patch)

    def __call__(self, images):
        """LLaVA-NeXT: {"pixel_values": (n, max_patches, 3, S, S), "image_sizes": int64 (n, 2)};
        LLaVA-1.5: {"pixel_values": (n, 3, S, S)} (HF's LlavaProcessor returns no sizes either)."""
        if self.model_type == "llava_next":
            return self.image_processor(images)
        return {"pixel_values": self.image_processor(images)}

    def num_image_tokens(self, image_sizes, processed_hw=None):
        """Image tokens per image, as the v4.47.1 processor expands them. `image_sizes`: original
        (H, W) per image (LLaVA-1.5 only uses how many there are); `processed_hw`: the
        pixel_values (H, W) (default: the processor's crop size)."""
        ip = self.image_processor
        if processed_hw is None:  # the size every processed image (patch) has
            if self.model_type == "llava_next" or ip.do_center_crop:
                processed_hw = (ip.crop_size["height"], ip.crop_size["width"])
            elif "height" in ip.size:
                processed_hw = (ip.size["height"], ip.size["width"])
            else:
                raise ValueError("llava: processed_hw is needed when the processor has no fixed output size")
        h, w = int(processed_hw[0]), int(processed_hw[1])
        if self.model_type == "llava":
            return [llava_num_image_tokens(h, w, self.patch_size, self.vision_feature_select_strategy,
                                           self.num_additional_image_tokens)] * len(image_sizes)
        return [llava_next_num_image_tokens(hw, self.image_processor.image_grid_pinpoints, h, w, self.patch_size,
                                            self.vision_feature_select_strategy, self.num_additional_image_tokens)
                for hw in image_sizes]

    def expand_input_ids(self, input_ids, image_sizes):
        """Expand each image token of `input_ids` (one list or a batch) to its per-image count."""
        return expand_image_tokens(input_ids, self.image_token_index, self.num_image_tokens(image_sizes))

    def geometry(self, image_sizes):
        """Model-side packing plan per image (llava_next only): a list of AnyresGeometry."""
        if self.model_type != "llava_next":
            raise ValueError("llava: anyres geometry exists only for llava_next checkpoints")
        return [anyres_geometry(hw, self.image_grid_pinpoints, self.image_size, self.vision_patch_size,
                                self.vision_feature_select_strategy) for hw in image_sizes]
