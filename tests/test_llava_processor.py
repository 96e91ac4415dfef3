"""LLaVA-1.5 / LLaVA-NeXT processor side (mmsuite.llava_processor) against the transformers v4.47.1
fixtures (tests/data/conformance/llava*, see tests/data/README.md) and against the installed
transformers' own functions: best resolution, anyres patches on random images, token counts, model
geometry, prompt expansion.

The installed transformers (5.x) differs from v4.47.1 in one anyres step: it pads an odd margin to
the full pinpoint, v4.47.1 leaves the canvas one pixel smaller (the fixtures). The reference
processor below restores the v4.47.1 padding. The installed Pillow (>= 12) may also resample the
vertical axis first; Pillow 9.4 (the fixtures) always goes horizontal first, so the reference runs
Pillow's resize as two single-axis passes (as tests/test_image.py does)."""
import json
import os

import numpy as np
import pytest

from mmsuite.errors import ConfigError
from mmsuite.llava_processor import (
    DEFAULT_IMAGE_GRID_PINPOINTS, LlavaNextImageProcessor, LlavaProcessor, anyres_geometry, anyres_grid_shape,
    anyres_patches_u8, expand_image_placeholders, expand_image_tokens, image_size_to_num_patches,
    llava_next_num_image_tokens, llava_num_image_tokens, pad_offsets, patch_output_size, select_best_resolution,
    unpad_extent)

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "conformance")
NEXT = os.path.join(DATA, "llava_next", "tiny_mistral_anyres")
L15 = os.path.join(DATA, "llava", "tiny_llava15")
TINY_PINS = [[28, 56], [56, 28], [56, 56], [84, 28], [28, 84]]  # the fixture's pinpoints


def _case(d):
    with open(os.path.join(d, "case.json")) as f:
        return json.load(f)


def _sizes(rng, n, lo=4, hi=200):
    # H avoids 1 and 3: HF guesses channels-first for an (H, W, 3) array with H in (1, 3)
    out = [(5, 5), (28, 27), (27, 28), (80, 50), (50, 80), (56, 56), (4, 200), (200, 4), (29, 84), (85, 28)]
    while len(out) < n:
        h, w = (int(v) for v in rng.integers(lo, hi, 2))
        if h not in (1, 3):
            out.append((h, w))
    return out


# ================================================================ fixtures ======================

def test_llava_next_fixture_pixel_values_and_sizes():
    case = _case(NEXT)
    proc = LlavaNextImageProcessor.from_pretrained(os.path.join(NEXT, "model"))
    out = proc([os.path.join(NEXT, im) for im in case["run"]["images"]])
    for name in ("pixel_values_recomputed.npy", "pixel_values.npy"):
        ref = np.load(os.path.join(NEXT, name))
        assert out["pixel_values"].shape == ref.shape and out["pixel_values"].dtype == np.float32
        assert np.abs(out["pixel_values"] - ref).max() <= case["files"][name]["tolerance"]["atol"]
    assert out["image_sizes"].dtype == np.int64
    assert np.array_equal(out["image_sizes"], np.load(os.path.join(NEXT, "image_sizes.npy")))
    npp = np.load(os.path.join(NEXT, "num_patches_per_image.npy"))
    assert [image_size_to_num_patches(hw, proc.image_grid_pinpoints, 28) for hw in out["image_sizes"]] == npp.tolist()
    # the patches actually cut (base + tiles of the 56 x 55 canvas) are as many
    assert [len(proc.patches_u8(os.path.join(NEXT, im))) for im in case["run"]["images"]] == npp.tolist()


def test_llava_next_fixture_token_counts_and_expansion():
    case = _case(NEXT)
    ps = case["processor_settings"]
    proc = LlavaProcessor.from_pretrained(os.path.join(NEXT, "model"))
    got = (proc.model_type, proc.image_token_index, proc.patch_size, proc.vision_feature_select_strategy,
           proc.num_additional_image_tokens)
    assert got == ("llava_next", ps["image_token_index"], ps["patch_size"], ps["vision_feature_select_strategy"],
                   ps["num_additional_image_tokens"])
    sizes = np.load(os.path.join(NEXT, "image_sizes.npy"))
    ids = np.load(os.path.join(NEXT, "input_ids.npy"))
    counts = proc.num_image_tokens(sizes)
    assert counts == ps["num_image_tokens_per_image"] == [72]
    assert counts == np.load(os.path.join(NEXT, "packed_feature_lens.npy")).tolist()
    assert sum(counts) == int((ids == proc.image_token_index).sum())
    geo = proc.geometry(sizes)
    assert [g.num_tokens for g in geo] == counts
    assert [g.num_patches for g in geo] == np.load(os.path.join(NEXT, "num_patches_per_image.npy")).tolist()
    # README: grid 2 x 2 of n = 4 tokens, unpadded to 8 rows x 6 columns (+ newline) -> 16 + 8 * 7
    assert geo[0][1:] == (2, 2, 4, 0, 8, 1, 6, 16, 72)
    # collapsing the expanded run and expanding again gives the fixture ids back
    row = ids[0].tolist()
    first = row.index(proc.image_token_index)
    collapsed = row[:first + 1] + row[first + counts[0]:]
    assert proc.expand_input_ids(collapsed, sizes) == row
    assert proc.expand_input_ids([collapsed], sizes) == [row]


def test_llava15_fixture_pixel_values_and_counts():
    case = _case(L15)
    ps = case["processor_settings"]
    proc = LlavaProcessor.from_pretrained(os.path.join(L15, "model"))
    out = proc([os.path.join(L15, im) for im in case["run"]["images"]])
    ref = np.load(os.path.join(L15, "pixel_values_recomputed.npy"))
    assert out["pixel_values"].shape == ref.shape and np.abs(out["pixel_values"] - ref).max() <= 1e-5
    ids = np.load(os.path.join(L15, "input_ids.npy"))
    counts = proc.num_image_tokens([None] * len(case["run"]["images"]))
    assert counts == [ps["num_image_tokens_per_image"]] == [16]
    assert sum(counts) == int((ids == ps["image_token_index"]).sum())
    row = ids[0].tolist()
    first = row.index(ps["image_token_index"])
    assert proc.expand_input_ids(row[:first + 1] + row[first + 16:], [None]) == row
    with pytest.raises(ValueError, match="anyres geometry"):
        proc.geometry([(80, 64)])


def test_llava15_token_formula():
    assert llava_num_image_tokens(336, 336, 14) == 576
    assert llava_num_image_tokens(336, 336, 14, "full") == 577
    assert llava_num_image_tokens(28, 28, 7, "full", num_additional_image_tokens=0) == 16  # SigLIP tower
    with pytest.raises(ConfigError, match="vision_feature_select_strategy"):
        llava_num_image_tokens(28, 28, 7, "cls")


# ================================================================ geometry vs transformers ======

PINPOINT_SETS = [TINY_PINS, DEFAULT_IMAGE_GRID_PINPOINTS, [[60, 90], [90, 60], [45, 45]],
                 [[384, 384], [384, 768], [768, 384], [768, 768], [384, 1152], [1152, 384]]]


@pytest.mark.parametrize("pins", PINPOINT_SETS, ids=["tiny", "default", "odd", "siglip384"])
def test_select_best_resolution_and_fit_match_transformers(pins):
    import transformers.image_processing_utils as hf  # test-only reference (tools/setup.sh)
    from transformers.image_utils import ChannelDimension

    rng = np.random.default_rng(11)
    for hw in _sizes(rng, 300, 1, 2000) + [(1, 1), (1, 2000), (2000, 1), (336, 672), (672, 336), (1000, 1000)]:
        try:
            ref = hf.select_best_resolution(hw, pins)
        except Exception:  # HF fails later when no pinpoint has a positive effective area
            ref = None
        if ref is None:
            with pytest.raises(ValueError, match="fits no pinpoint"):
                select_best_resolution(hw, pins)
            continue
        best = select_best_resolution(hw, pins)
        assert best == tuple(ref), hw
        fake = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), hw + (3,))  # only its shape is read
        assert patch_output_size(hw, best) == tuple(hf.get_patch_output_size(fake, best, ChannelDimension.LAST)), hw


def test_pad_offsets_leave_odd_canvas_one_pixel_smaller():
    # README: best 56 x 56, fitted 56 x 35 -> 10 columns each side -> canvas 56 x 55
    assert patch_output_size((80, 50), (56, 56)) == (56, 35)
    assert pad_offsets((56, 35), (56, 56)) == (0, 10)
    img = np.full((80, 50, 3), 200, np.uint8)
    patches = anyres_patches_u8(img, TINY_PINS, 28)
    assert [p.shape[:2] for p in patches] == [(28, 28), (28, 28), (28, 27), (28, 28), (28, 27)]
    assert (patches[1][:, :10] == 0).all() and (patches[1][:, 10:] != 0).all()  # left padding
    assert (patches[2][:, 17:] == 0).all() and (patches[2][:, :17] != 0).all()  # right padding, 1 px short
    # even difference: exact fit, square image
    assert [p.shape[:2] for p in anyres_patches_u8(np.zeros((30, 30, 3), np.uint8), TINY_PINS, 28)] == [(28, 28)] * 5
    # non-multiple pinpoints give narrow edge tiles (60 = 28 + 28 + 4)
    shapes = [p.shape[:2] for p in anyres_patches_u8(np.zeros((60, 90, 3), np.uint8), [[60, 90]], 28)]
    assert shapes == [(28, 28)] + [(h, w) for h in (28, 28, 4) for w in (28, 28, 28, 6)]


def test_model_geometry_and_token_counts_match_transformers():
    import torch  # test-only references (tools/setup.sh)
    from types import SimpleNamespace

    from transformers.models.llava_next import modeling_llava_next as M
    from transformers.models.llava_next.processing_llava_next import LlavaNextProcessor

    rng = np.random.default_rng(5)
    configs = [(TINY_PINS, 28, 7), (DEFAULT_IMAGE_GRID_PINPOINTS, 336, 14), (PINPOINT_SETS[3], 384, 16)]
    for pins, S, p in configs:
        stub = object.__new__(LlavaNextProcessor)  # only the attributes the formula reads
        stub.__dict__.update(image_processor=SimpleNamespace(image_grid_pinpoints=pins), patch_size=p,
                             num_additional_image_tokens=1)
        n = S // p
        for hw in _sizes(rng, 150, 2, 3 * S):
            g = anyres_geometry(hw, pins, S, p)
            assert (g.grid_h, g.grid_w) == tuple(M.get_anyres_image_grid_shape(list(hw), pins, S)) == \
                anyres_grid_shape(hw, pins, S)
            assert g.num_patches == M.image_size_to_num_patches(list(hw), pins, S)
            grid = torch.arange(g.grid_h * n * g.grid_w * n).reshape(1, g.grid_h * n, g.grid_w * n)
            kept = M.unpad_image(grid, list(hw))
            assert (g.rows, g.cols) == tuple(kept.shape[1:]), hw
            if kept.numel():  # a very thin image can keep no row at all (HF too)
                assert int(kept[0, 0, 0]) == g.row0 * g.grid_w * n + g.col0
            assert unpad_extent(hw, g.grid_h * n, g.grid_w * n) == (g.row0, g.rows, g.col0, g.cols)
            hf = LlavaNextProcessor._get_number_of_features(stub, hw[0], hw[1], S, S) - 1  # "default"
            ours = llava_next_num_image_tokens(hw, pins, S, S, p)
            assert ours == hf == g.num_tokens, hw
            assert llava_next_num_image_tokens(hw, pins, S, S, p, "full") == hf + 1


# ================================================================ pixels vs transformers ========

@pytest.fixture
def hf_v4471(monkeypatch):
    """A transformers LlavaNextImageProcessor behaving like v4.47.1 + Pillow 9.4 (module docstring)."""
    from PIL import Image
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    orig = Image.Image.resize

    def horizontal_first(self, size, resample=None, box=None, reducing_gap=None):
        if resample in (None, 0) or box is not None or reducing_gap is not None or tuple(size) == self.size:
            return orig(self, size, resample, box, reducing_gap)
        return orig(orig(self, (size[0], self.height), resample), tuple(size), resample)

    monkeypatch.setattr(Image.Image, "resize", horizontal_first)

    class V4471(LlavaNextImageProcessorPil):
        def _get_padding_size(self, original_resolution, target_resolution):
            top = (target_resolution[0] - original_resolution[0]) // 2
            left = (target_resolution[1] - original_resolution[1]) // 2
            return (top, top), (left, left)

    def make(cfg):
        proc = V4471(**cfg)

        def run(arrays):
            out = proc([Image.fromarray(a) for a in arrays], return_tensors="np")
            return np.asarray(out["pixel_values"]), np.asarray(out["image_sizes"])
        return run
    return make


def _fixture_cfg():
    with open(os.path.join(NEXT, "model", "preprocessor_config.json")) as f:
        cfg = json.load(f)
    cfg.pop("image_processor_type")
    return cfg


def _random_image(rng, h, w, smooth):
    if smooth:  # smooth content exercises the resize rounding, noise the clipping
        return np.clip(np.cumsum(rng.integers(-5, 6, (h, w, 3)), axis=1) + 128, 0, 255).astype(np.uint8)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("pins", [TINY_PINS, [[60, 90], [90, 60], [45, 45]]], ids=["tiny", "odd_pinpoints"])
def test_pixel_values_match_transformers_random_images(hf_v4471, pins):
    cfg = dict(_fixture_cfg(), image_grid_pinpoints=pins)
    ref_proc, ours = hf_v4471(cfg), LlavaNextImageProcessor(**cfg)
    rng = np.random.default_rng(3)
    for i, (h, w) in enumerate(_sizes(rng, 40)):
        img = _random_image(rng, h, w, i % 2)
        ref_pv, ref_sizes = ref_proc([img])
        got = ours(img)
        assert got["pixel_values"].shape == ref_pv.shape, (h, w)
        assert np.abs(got["pixel_values"] - ref_pv).max() <= 1e-5, (h, w)
        assert np.array_equal(got["image_sizes"], ref_sizes)


def test_pixel_values_match_transformers_batch_and_llava_next_sizes(hf_v4471):
    rng = np.random.default_rng(8)
    imgs = [_random_image(rng, h, w, True) for h, w in [(80, 50), (30, 30), (20, 90), (61, 17)]]
    cfg = _fixture_cfg()
    ref_pv, ref_sizes = hf_v4471(cfg)(imgs)
    got = LlavaNextImageProcessor(**cfg)(imgs)  # different patch counts: zero-padded along dim 1
    assert got["pixel_values"].shape == ref_pv.shape == (4, 5, 3, 28, 28)
    assert np.abs(got["pixel_values"] - ref_pv).max() <= 1e-5
    assert np.array_equal(got["image_sizes"], ref_sizes)
    # real LLaVA-NeXT settings (336 tiles, default pinpoints) on two photo-sized images
    cfg = dict(cfg, size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336},
               image_grid_pinpoints=DEFAULT_IMAGE_GRID_PINPOINTS)
    imgs = [_random_image(rng, 375, 500, True), _random_image(rng, 700, 260, True)]
    ref_pv, _ = hf_v4471(cfg)(imgs)
    got = LlavaNextImageProcessor(**cfg)(imgs)
    assert got["pixel_values"].shape == ref_pv.shape and np.abs(got["pixel_values"] - ref_pv).max() <= 1e-5


def test_processor_inputs_and_errors():
    from PIL import Image

    proc = LlavaNextImageProcessor(**_fixture_cfg())
    path = os.path.join(NEXT, "astronaut_50x80.png")
    arr = np.asarray(Image.open(path).convert("RGB"))
    ref = proc(path)["pixel_values"]
    with open(path, "rb") as f:
        data = f.read()
    for src in (arr, data, Image.open(path), [path], np.stack([arr, arr])):
        got = proc(src)["pixel_values"]
        assert np.array_equal(got[:1], ref) and (len(got) == 1 or np.array_equal(got[1:], ref))
    with pytest.raises(ValueError, match="empty batch"):
        proc([])
    with pytest.raises(ValueError, match=r"uint8 \(H, W, 3\)"):
        proc(arr.astype(np.float32))
    with pytest.raises(ConfigError, match="unknown setting"):
        LlavaNextImageProcessor(size=28, bogus=1)
    with pytest.raises(ConfigError, match="image_grid_pinpoints"):
        LlavaNextImageProcessor(image_grid_pinpoints=[[28]])
    with pytest.raises(FileNotFoundError, match="preprocessor config"):
        LlavaNextImageProcessor.from_pretrained(DATA)
    # defaults: HF's LlavaNextImageProcessor() (224 crops, 336-based pinpoints)
    d = LlavaNextImageProcessor()
    assert (d.size, d.crop_size, d.image_grid_pinpoints) == (
        {"shortest_edge": 224}, {"height": 224, "width": 224}, [tuple(p) for p in DEFAULT_IMAGE_GRID_PINPOINTS])


def test_pinpoints_from_config_json(tmp_path):
    cfg = _fixture_cfg()
    del cfg["image_grid_pinpoints"]
    cfg["image_processor_type"] = "LlavaNextImageProcessor"
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(cfg))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava_next", "image_grid_pinpoints": [[56, 28]]}))
    assert LlavaNextImageProcessor.from_pretrained(tmp_path).image_grid_pinpoints == [(56, 28)]
    proc = LlavaNextImageProcessor.from_dict(dict(cfg, some_future_key=1))  # tolerated, recorded
    assert proc.unused_keys == ("some_future_key",)
    p = LlavaProcessor.from_pretrained(tmp_path)  # no vision_config: LlavaNextConfig's CLIP-L/14 at 336
    assert (p.image_size, p.patch_size, p.image_token_index, p.num_additional_image_tokens) == (336, 14, 32000, 1)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava_next", "image_grid_pinpoints": [[56, 28]],
                                                      "vision_config": {"model_type": "siglip_vision_model"}}))
    p = LlavaProcessor.from_pretrained(tmp_path)  # SiglipVisionConfig defaults, no CLS token
    assert (p.image_size, p.patch_size, p.num_additional_image_tokens) == (224, 16, 0)
    (tmp_path / "processor_config.json").write_text(json.dumps({"patch_size": 7, "num_additional_image_tokens": 0}))
    p = LlavaProcessor.from_pretrained(tmp_path)
    assert (p.patch_size, p.num_additional_image_tokens) == (7, 0)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava_onevision"}))
    with pytest.raises(ConfigError, match="unsupported model_type"):
        LlavaProcessor.from_pretrained(tmp_path)


# ================================================================ prompt expansion ==============

def test_expand_image_tokens():
    assert expand_image_tokens([1, 9, 2, 9, 3], 9, [2, 3]) == [1, 9, 9, 2, 9, 9, 9, 3]
    assert expand_image_tokens(np.array([[9, 1], [2, 9]]), 9, [1, 2]) == [[9, 1], [2, 9, 9]]  # across rows
    assert expand_image_tokens([[9], [5, 9]], 9, [3, 1]) == [[9, 9, 9], [5, 9]]
    assert expand_image_tokens([1, 2], 9, []) == [1, 2]
    with pytest.raises(ValueError, match=r"holds 2 image placeholder\(s\) \(token id 9\) but 1 image"):
        expand_image_tokens([9, 9], 9, [4])
    with pytest.raises(ValueError, match=r"holds 0 image placeholder\(s\) \(token id 9\) but 1 image"):
        expand_image_tokens([1, 2], 9, [4])


def test_expand_image_placeholders():
    assert expand_image_placeholders("a <image>\nb <image>", [2, 1]) == "a <image><image>\nb <image>"
    assert expand_image_placeholders(["<image>x", "y<image>"], [1, 3]) == ["<image>x", "y<image><image><image>"]
    assert expand_image_placeholders("[IMG]", [2], image_token="[IMG]") == "[IMG][IMG]"
    with pytest.raises(ValueError, match=r"holds 1 '<image>' placeholder\(s\) but 2 image"):
        expand_image_placeholders("<image>", [1, 1])
