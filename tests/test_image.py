"""Image decoding, Pillow-exact resizing and the HF CLIP / SigLIP / BLIP processors against the
transformers v4.47.1 + Pillow 9.4.0 fixtures (tests/data/clip_preprocess, tests/data/
siglip_preprocess224, see tests/data/README.md "image fixtures"); every PNG colour type and bit
depth through a tiny in-test PNG writer; JPEG variants and random resizes against the installed
Pillow; bad inputs (exception type + message naming the file / argument) and leaks."""
import io
import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from mmsuite import _C
from mmsuite.errors import ConfigError, FormatError
from mmsuite.image_processor import ImageProcessor, decode_image, resize

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
CASE_DIRS = sorted(
    [os.path.join(DATA, "clip_preprocess", c) for c in os.listdir(os.path.join(DATA, "clip_preprocess"))]
    + [os.path.join(DATA, "siglip_preprocess224")])


def _stem(image_name):
    """chelsea.png -> chelsea, chelsea_q90.jpg -> chelsea_q90_jpg (the fixtures' naming)."""
    base, ext = os.path.splitext(image_name)
    return base if ext == ".png" else base + "_" + ext[1:]


def _cases():
    out = []
    for d in CASE_DIRS:
        with open(os.path.join(d, "case.json")) as f:
            case = json.load(f)
        for img in case["run"]["images"]:
            out.append(pytest.param(d, img, case, id=f"{os.path.basename(d)}-{img}"))
    return out


CASES = _cases()


def _processor(case_dir):
    return ImageProcessor.from_pretrained(os.path.join(case_dir, "processor"))


def _resize_target(proc, w, h):
    if "shortest_edge" in proc.size:
        s = proc.size["shortest_edge"]
        short, long_ = min(w, h), max(w, h)
        new_long = int(s * long_ / short)
        return (s, new_long) if w <= h else (new_long, s)
    return proc.size["width"], proc.size["height"]


# ================================================================ fixtures ====================

@pytest.mark.parametrize("case_dir,image,case", CASES)
def test_decode_matches_reference(case_dir, image, case):
    ref_file = os.path.join(case_dir, _stem(image) + ".decoded_rgb_u8.npy")
    got = decode_image(os.path.join(case_dir, image))
    w, h = case["files"][image]["size_wh"]
    assert got.shape == (h, w, 3) and got.dtype == np.uint8
    if os.path.exists(ref_file):  # PNG modes and the JPEGs: exact (libjpeg-turbo ISLOW + fancy upsampling)
        ref = np.load(ref_file)
        assert np.abs(ref.astype(int) - got).max() == 0


@pytest.mark.parametrize("case_dir,image,case", CASES)
def test_resized_u8_matches_reference(case_dir, image, case):
    proc = _processor(case_dir)
    img = decode_image(os.path.join(case_dir, image))
    h, w = img.shape[:2]
    rw, rh = _resize_target(proc, w, h)
    resized = resize(img, rw, rh, proc.resample)
    checked = 0
    for suffix in ("resized_cropped_u8", "resized_u8"):
        f = os.path.join(case_dir, f"{_stem(image)}.{suffix}.npy")
        if not os.path.exists(f):
            continue
        ref = np.load(f)
        ch, cw = ref.shape[:2]
        top, left = (rh - ch) // 2, (rw - cw) // 2
        if "crop_top_left" in case["files"].get(_stem(image) + ".pixel_values.npy", {}):
            assert [top, left] == case["files"][_stem(image) + ".pixel_values.npy"]["crop_top_left"]
        assert np.array_equal(resized[top:top + ch, left:left + cw], ref), f"{suffix}: resize is not bit-exact"
        checked += 1
    assert checked or case["run"].get("no_u8", False) or "llava" in case_dir


@pytest.mark.parametrize("case_dir,image,case", CASES)
def test_pixel_values(case_dir, image, case):
    proc = _processor(case_dir)
    ref = np.load(os.path.join(case_dir, _stem(image) + ".pixel_values.npy"))
    got = proc(os.path.join(case_dir, image))
    assert got.dtype == np.float32 and got.shape == ref.shape
    atol = case["files"][_stem(image) + ".pixel_values.npy"]["tolerance"]["atol"]
    assert np.abs(got - ref).max() <= atol


@pytest.mark.parametrize("case_dir", CASE_DIRS, ids=os.path.basename)
def test_batch_equals_one_by_one(case_dir):
    with open(os.path.join(case_dir, "case.json")) as f:
        images = [os.path.join(case_dir, i) for i in json.load(f)["run"]["images"]]
    proc = _processor(case_dir)
    batch = proc(images * 3)  # repeated: more images than threads
    assert batch.shape[0] == 3 * len(images)
    for i, path in enumerate(images * 3):
        one = proc(path)
        assert np.array_equal(batch[i:i + 1], one)


def test_bytes_path_array_pil_agree():
    from PIL import Image  # test-only reference

    case_dir = os.path.join(DATA, "clip_preprocess", "openai224_chelsea")
    proc = _processor(case_dir)
    for name in ("chelsea.png", "chelsea_q90.jpg"):
        path = os.path.join(case_dir, name)
        with open(path, "rb") as f:
            raw = f.read()
        from_path = decode_image(path)
        for src in (raw, bytearray(raw), memoryview(raw), np.frombuffer(raw, np.uint8)):
            assert np.array_equal(decode_image(src), from_path)
        ref = proc(path)
        arr = decode_image(path)
        with Image.open(path) as pil:
            outs = [proc(raw), proc(arr), proc([arr]), proc(pil), proc(np.asarray(pil.convert("RGB")))]
        for out in outs:
            assert np.array_equal(out, ref)
        mixed = proc([path, raw, arr])
        assert all(np.array_equal(mixed[i:i + 1], ref) for i in range(3))


def test_thread_count_does_not_change_results():
    case_dir = os.path.join(DATA, "clip_preprocess", "openai224_modes1")
    proc = _processor(case_dir)
    images = [os.path.join(case_dir, n) for n in ("coffee_37x113.png", "camera_gray.png", "chelsea_palette.png")]
    jpg = os.path.join(DATA, "clip_preprocess", "openai224_chelsea", "chelsea_q90.jpg")
    old = _C.get_num_threads()
    try:
        _C.set_num_threads(1)  # single images: serial band decode; batches: one image at a time
        one = proc(images * 2), [proc(i) for i in images + [jpg]]
        _C.set_num_threads(3)  # single images: decoder/filter pipeline; batches: images in parallel
        many = proc(images * 2), [proc(i) for i in images + [jpg]]
    finally:
        _C.set_num_threads(old)
    assert np.array_equal(one[0], many[0])
    assert all(np.array_equal(a, b) for a, b in zip(one[1], many[1]))


def test_concurrent_calls_from_python_threads():
    from concurrent.futures import ThreadPoolExecutor

    case_dir = os.path.join(DATA, "clip_preprocess", "openai224_chelsea")
    proc = _processor(case_dir)
    images = [os.path.join(case_dir, n) for n in ("chelsea.png", "chelsea_q90.jpg")]
    ref = proc(images)
    with ThreadPoolExecutor(4) as pool:  # the GIL is released: these really overlap
        outs = list(pool.map(lambda _: proc(images), range(8)))
    assert all(np.array_equal(o, ref) for o in outs)


def test_decode_wraps_c_buffer_without_copy():
    path = os.path.join(DATA, "clip_preprocess", "openai224_modes1", "camera_gray.png")
    start = _C.memory_stats()["live_blocks"]
    a = _C.decode_image(path)
    assert a.flags.owndata is False and a.base is not None and a.flags.c_contiguous
    assert _C.memory_stats()["live_blocks"] == start + 1  # the pixels, owned by a.base
    view = a[10:20]
    del a
    assert _C.memory_stats()["live_blocks"] == start + 1  # still referenced through `view`
    del view
    assert _C.memory_stats()["live_blocks"] == start


# ================================================================ resize vs Pillow =============

def _pil_resize(a, w, h, f):
    """Pillow <= 11 resamples horizontally first; newer Pillow may do the vertical pass first when
    the height shrinks much more. Two single-axis resizes give the <= 11 (reference 9.4) result."""
    from PIL import Image

    im = Image.fromarray(a)
    if f == 0:
        return np.asarray(im.resize((w, h), 0))
    return np.asarray(im.resize((w, a.shape[0]), f).resize((w, h), f))


@pytest.mark.parametrize("simd", [2, 1, 0], ids=["avx512_if_available", "avx2_if_available", "scalar"])
def test_resize_random_against_pillow(simd):
    rng = np.random.default_rng(1234)
    prev = _C._image_set_simd(simd)
    try:
        for trial in range(60):
            h, w = (int(v) for v in rng.integers(1, 160, 2))
            a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            if trial % 2:  # smooth content exercises the rounding, noise the clipping
                a = np.clip(np.cumsum(rng.integers(-4, 5, (h, w, 3)), axis=1) + 128, 0, 255).astype(np.uint8)
            ow, oh = (int(v) for v in rng.integers(1, 200, 2))
            if trial % 5 == 0:
                ow = w
            if trial % 7 == 0:
                oh = h
            if trial % 3 == 0:
                ow, oh = max(1, w // int(rng.integers(1, 30))), max(1, h // int(rng.integers(1, 30)))
            for f in range(6):
                got = resize(a, ow, oh, f)
                assert np.array_equal(got, _pil_resize(a, ow, oh, f)), (trial, (w, h), (ow, oh), f)
    finally:
        _C._image_set_simd(prev)


def test_resize_large_downscale_simd_equals_scalar():
    rng = np.random.default_rng(7)
    a = np.clip(np.cumsum(rng.integers(-6, 7, (900, 1203, 3)), axis=0) + 128, 0, 255).astype(np.uint8)
    sizes = [(298, 224), (224, 224), (1203 // 3, 301), (5, 7)]
    results = {}
    prev = _C._image_set_simd(2)
    try:
        for level in (2, 1, 0):
            _C._image_set_simd(level)
            results[level] = [resize(a, w, h, f) for w, h in sizes for f in (1, 2, 3)]
    finally:
        _C._image_set_simd(prev)
    for x, y, z in zip(results[2], results[1], results[0]):
        assert np.array_equal(x, z) and np.array_equal(y, z)
    assert np.array_equal(results[2][2], _pil_resize(a, 298, 224, 3))


def test_resize_same_size_is_copy_and_rejects_bad_arguments():
    a = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    out = resize(a, 7, 5)
    assert np.array_equal(out, a) and out is not a
    with pytest.raises(ValueError, match="width and height"):
        _C.resize_image(a, 0, 5)
    with pytest.raises(ValueError, match="resample"):
        _C.resize_image(a, 3, 3, 9)
    with pytest.raises(ValueError, match="resize_image: image"):
        _C.resize_image(a.astype(np.float32), 3, 3)
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.resize_image(a[:, ::2], 3, 3)


# ================================================================ PNG colour types / depths ======

def _pack_rows(samples, depth):
    """(H, W*C) ints -> list of packed row bytes (MSB first for depth < 8, big endian for 16)."""
    rows = []
    for r in samples:
        if depth == 16:
            rows.append(r.astype(">u2").tobytes())
        elif depth == 8:
            rows.append(r.astype(np.uint8).tobytes())
        else:
            per = 8 // depth
            pad = (-len(r)) % per
            v = np.concatenate([r, np.zeros(pad, r.dtype)]).reshape(-1, per).astype(np.uint16)
            byte = np.zeros(len(v), np.uint16)
            for i in range(per):
                byte |= v[:, i] << (8 - depth * (i + 1))
            rows.append(byte.astype(np.uint8).tobytes())
    return rows


def _chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def make_png(pixels, depth, color_type, palette=None, trns=None, interlace=False):
    """pixels: (H, W, C) ints already in range for `depth`; returns the PNG file bytes."""
    h, w, c = pixels.shape
    raw = b""
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for x0, y0, dx, dy in passes:
        sub = pixels[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        for row in _pack_rows(sub.reshape(sub.shape[0], -1), depth):
            raw += b"\x00" + row
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, int(interlace)))
    if palette is not None:
        out += _chunk(b"PLTE", np.asarray(palette, np.uint8).tobytes())
    if trns is not None:
        out += _chunk(b"tRNS", trns)
    return out + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


PNG_MODES = [(0, d) for d in (1, 2, 4, 8, 16)] + [(2, 8), (2, 16), (3, 1), (3, 2), (3, 4), (3, 8),
                                                   (4, 8), (4, 16), (6, 8), (6, 16)]


@pytest.mark.filterwarnings("ignore:Palette images with Transparency")
@pytest.mark.parametrize("interlace", [False, True], ids=["plain", "adam7"])
@pytest.mark.parametrize("color_type,depth", PNG_MODES, ids=[f"ct{c}_d{d}" for c, d in PNG_MODES])
def test_png_modes_follow_pillow_convert_rgb(color_type, depth, interlace):
    rng = np.random.default_rng(color_type * 100 + depth)
    h, w = 13, 19  # odd sizes: partial bytes at low depths, partial Adam7 blocks
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    top = (1 << depth) - 1
    if color_type == 3:
        n_pal = 1 << depth
        palette = rng.integers(0, 256, (n_pal, 3))
        px = rng.integers(0, n_pal, (h, w, 1))
        data = make_png(px, depth, 3, palette=palette, trns=bytes([0, 128]), interlace=interlace)
        expect = palette[px[..., 0]]  # tRNS ignored
    else:
        px = rng.integers(0, top + 1, (h, w, channels))
        if color_type == 0 and depth == 16:
            px[0, :4, 0] = [0, 255, 256, 65535]  # the clamp boundary
        data = make_png(px, depth, color_type, interlace=interlace)
        if color_type in (0, 4):
            g = px[..., 0]
            if depth < 8:
                g = g * 255 // top  # Pillow's 1 / L;2 / L;4 unpackers scale
            elif depth == 16:
                g = np.minimum(g, 255) if color_type == 0 else g >> 8  # mode I clamps; LA;16B high byte
            expect = np.repeat(g[..., None], 3, axis=2)
        else:
            expect = px[..., :3] >> (8 if depth == 16 else 0)  # alpha dropped, high byte kept
    got = decode_image(data)
    assert np.array_equal(got, expect.astype(np.uint8))
    if not (color_type == 0 and depth == 16):  # Pillow >= 10 opens 16-bit gray as I;16, not I
        from PIL import Image

        assert np.array_equal(got, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))


@pytest.mark.parametrize("kind", ["rgb420", "rgb444", "progressive", "gray", "cmyk"])
def test_jpeg_variants_match_pillow(kind):
    from PIL import Image

    base = Image.open(os.path.join(DATA, "clip_preprocess", "openai224_astronaut", "astronaut_crop.png")).convert("RGB")
    im, kw = base, {"quality": 90}
    if kind == "rgb444":
        kw["subsampling"] = 0
    elif kind == "progressive":
        kw["progressive"] = True
    elif kind == "gray":
        im = base.convert("L")
    elif kind == "cmyk":
        im = base.convert("CMYK")
    buf = io.BytesIO()
    im.save(buf, "JPEG", **kw)
    data = buf.getvalue()
    got = decode_image(data)
    ref = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert got.shape == ref.shape
    assert np.abs(got.astype(int) - ref).max() == 0


def test_jpeg_draft_mode_is_close_and_keeps_geometry(tmp_path):
    from PIL import Image

    base = Image.open(os.path.join(DATA, "clip_preprocess", "openai224_chelsea", "chelsea.png")).convert("RGB")
    path = tmp_path / "big.jpg"
    base.resize((1804, 1200), Image.BICUBIC).save(path, quality=92)
    exact = ImageProcessor()(str(path))
    draft = ImageProcessor(jpeg_draft=True)(str(path))
    assert draft.shape == exact.shape == (1, 3, 224, 224)
    assert not np.array_equal(draft, exact)  # it really took the DCT-scaled path
    level = 1 / 255 / 0.2613  # one u8 level in normalized units (largest of the three)
    assert np.abs(draft - exact).mean() < 2 * level


# ================================================================ center crop / config ==========

def _hf_reference(img, rw, rh, ch, cw, mean, std, resample=3):
    """HF v4.47: PIL resize, center_crop with zero padding, float64 rescale -> f32, f32 normalize."""
    from PIL import Image

    r = np.asarray(Image.fromarray(img).resize((rw, rh), resample)) if (rw, rh) != img.shape[1::-1] else img
    top, left = (rh - ch) // 2, (rw - cw) // 2
    if top < 0 or left < 0 or top + ch > rh or left + cw > rw:
        nh, nw = max(ch, rh), max(cw, rw)
        padded = np.zeros((nh, nw, 3), np.uint8)
        tp, lp = -(-(nh - rh) // 2), -(-(nw - rw) // 2)
        padded[tp:tp + rh, lp:lp + rw] = r
        top, left = top + tp, left + lp
        r = padded[max(0, top):min(nh, top + ch), max(0, left):min(nw, left + cw)]
    else:
        r = r[top:top + ch, left:left + cw]
    x = (r.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.array(mean, np.float32)) / np.array(std, np.float32)
    return x.transpose(2, 0, 1)[None]


@pytest.mark.parametrize("crop", [(300, 260), (251, 199), (100, 400), (37, 1000)])
def test_center_crop_larger_than_image_pads_with_zeros(crop):
    img = decode_image(os.path.join(DATA, "clip_preprocess", "openai224_modes1", "camera_gray.png"))  # 200x250
    ch, cw = crop
    proc = ImageProcessor.from_dict({"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 150},
                                     "crop_size": {"height": ch, "width": cw}})
    rw, rh = 150, int(150 * 250 / 200)
    ref = _hf_reference(img, rw, rh, ch, cw, proc.image_mean, proc.image_std)
    assert np.abs(proc(img) - ref).max() <= 1e-6


def test_flag_combinations():
    img = decode_image(os.path.join(DATA, "clip_preprocess", "openai224_astronaut", "astronaut_crop.png"))  # 320x400
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    base = {"image_processor_type": "CLIPImageProcessor", "image_mean": mean, "image_std": std}
    # no resize, crop only
    p = ImageProcessor.from_dict({**base, "do_resize": False, "crop_size": 100})
    assert np.array_equal(p(img), _hf_reference(img, 320, 400, 100, 100, mean, std))
    # no crop: shortest edge output size follows the image
    p = ImageProcessor.from_dict({**base, "do_center_crop": False, "size": 64})
    assert p(img).shape == (1, 3, 80, 64)
    assert np.array_equal(p(img), _hf_reference(img, 64, 80, 80, 64, mean, std))
    # no rescale / no normalize
    p = ImageProcessor.from_dict({**base, "do_rescale": False, "do_normalize": False, "size": 64, "crop_size": 64})
    u8 = resize(img, 64, 80)[8:72]
    assert np.array_equal(p(img)[0], u8.transpose(2, 0, 1).astype(np.float32))
    p = ImageProcessor.from_dict({**base, "do_rescale": False, "size": 64, "crop_size": 64})
    ref = (u8.astype(np.float32) - np.array(mean, np.float32)) / np.array(std, np.float32)
    assert np.array_equal(p(img)[0], ref.transpose(2, 0, 1))
    # bilinear and exact resize through CLIP's {"height", "width"} size
    p = ImageProcessor.from_dict({**base, "size": {"height": 50, "width": 70}, "resample": 2, "do_center_crop": False})
    assert np.array_equal(p(img), _hf_reference(img, 70, 50, 50, 70, mean, std, resample=2))


def test_config_mapping_and_defaults():
    clip = ImageProcessor.from_dict({"image_processor_type": "CLIPImageProcessor", "size": 336, "crop_size": 336})
    assert clip.size == {"shortest_edge": 336} and clip.crop_size == {"height": 336, "width": 336}
    assert clip.c_config["resize_mode"] == "shortest_edge" and clip.c_config["crop_height"] == 336
    assert clip.image_mean == pytest.approx((0.48145466, 0.4578275, 0.40821073)) and clip.resample == 3
    legacy = ImageProcessor.from_dict({"feature_extractor_type": "CLIPFeatureExtractor", "size": 224, "crop_size": 224,
                                       "some_future_key": 1})
    assert legacy.kind == "clip" and legacy.unused_keys == ("some_future_key",)
    sig = ImageProcessor.from_dict({"image_processor_type": "SiglipImageProcessor"})
    assert sig.size == {"height": 224, "width": 224} and not sig.do_center_crop
    assert sig.image_mean == (0.5, 0.5, 0.5) and sig.c_config["resize_mode"] == "exact"
    blip = ImageProcessor.from_dict({"image_processor_type": "BlipImageProcessor"})
    assert blip.size == {"height": 384, "width": 384} and blip.image_std == pytest.approx((0.26862954, 0.26130258, 0.27577711))
    assert ImageProcessor.from_dict({"image_processor_type": "BlipImageProcessor", "size": 364}).size == {"height": 364, "width": 364}
    assert ImageProcessor(size=[100, 120]).size == {"height": 100, "width": 120}
    assert ImageProcessor(image_mean=0.5).image_mean == (0.5, 0.5, 0.5)
    with pytest.raises(ConfigError, match="image_processor_type"):
        ImageProcessor.from_dict({"image_processor_type": "LlavaNextImageProcessor"})
    with pytest.raises(ConfigError, match="size"):
        ImageProcessor.from_dict({"image_processor_type": "SiglipImageProcessor", "size": {"shortest_edge": 3}})
    with pytest.raises(ConfigError, match="resample"):
        ImageProcessor(resample=7)
    with pytest.raises(ConfigError, match="unknown setting"):
        ImageProcessor(do_resise=True)
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        ImageProcessor.from_pretrained("/no_such_dir")
    with pytest.raises(ValueError, match="std"):
        _C.preprocess([np.zeros((4, 4, 3), np.uint8)], {"image_std": [1.0, 0.0, 1.0]})
    with pytest.raises(ValueError, match="unknown config key 'bogus'"):
        _C.preprocess([np.zeros((4, 4, 3), np.uint8)], {"bogus": 1})


def test_import_does_not_pull_heavy_dependencies():
    code = ("import sys, mmsuite.image_processor; "
            "bad = [m for m in ('PIL', 'torch', 'transformers') if m in sys.modules]; "
            "assert not bad, bad")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


# ================================================================ bad inputs ====================

def _fixture_bytes(*parts):
    with open(os.path.join(DATA, *parts), "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_images")
    png = _fixture_bytes("clip_preprocess", "openai224_chelsea", "chelsea.png")
    jpg = _fixture_bytes("clip_preprocess", "openai224_chelsea", "chelsea_q90.jpg")
    corrupt_jpg = bytearray(jpg)
    corrupt_jpg[2:40] = b"\xff\xc0\x00\x02" + bytes(34)  # bogus SOF right after SOI
    files = {
        "truncated.png": png[: len(png) // 2],
        "header_only.png": png[:40],
        "corrupt.jpg": bytes(corrupt_jpg),
        "truncated.jpg": jpg[: len(jpg) // 3],
        "random.bin": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "empty.png": b"",
        "huge.png": b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 200000, 200000, 8, 2, 0, 0, 0))
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b""),
    }
    paths = {}
    for name, data in files.items():
        p = d / name
        p.write_bytes(data)
        paths[name] = str(p)
    return paths, files


BAD_EXPECT = {
    "truncated.png": "PNG", "header_only.png": "PNG", "corrupt.jpg": "JPEG", "truncated.jpg": "truncated",
    "random.bin": "unknown image format", "empty.png": "empty", "huge.png": "exceeds the limit",
}


@pytest.mark.parametrize("name", sorted(BAD_EXPECT))
def test_bad_files_raise_format_error_naming_the_file(bad_files, name):
    paths, files = bad_files
    with pytest.raises(FormatError, match=BAD_EXPECT[name]) as e:
        decode_image(paths[name])
    assert paths[name] in str(e.value)
    with pytest.raises(FormatError, match=BAD_EXPECT[name]):
        decode_image(files[name])
    good = os.path.join(DATA, "clip_preprocess", "openai224_chelsea", "chelsea.png")
    with pytest.raises(FormatError) as e:
        ImageProcessor()([good, good, paths[name]])
    assert "image 2" in str(e.value) and paths[name] in str(e.value)
    with pytest.raises(FormatError, match="image 1 \\(<bytes>\\)"):
        ImageProcessor()([good, files[name]])


def test_missing_file(tmp_path):
    missing = str(tmp_path / "nope.png")
    with pytest.raises(FileNotFoundError, match="nope.png"):
        decode_image(missing)
    good = os.path.join(DATA, "clip_preprocess", "openai224_chelsea", "chelsea.png")
    with pytest.raises(FileNotFoundError) as e:
        ImageProcessor()([good, missing])
    assert "image 1" in str(e.value) and missing in str(e.value)
    with pytest.raises(OSError, match=str(tmp_path)):  # a directory is not an image file
        decode_image(str(tmp_path))


def test_first_failing_image_is_reported(bad_files):
    paths, _ = bad_files
    good = os.path.join(DATA, "clip_preprocess", "openai224_chelsea", "chelsea.png")
    srcs = [good] * 5 + [paths["random.bin"]] + [good] * 3 + [paths["truncated.png"]]
    with pytest.raises(FormatError) as e:
        ImageProcessor()(srcs)
    assert str(e.value).startswith("image 5 (") and paths["random.bin"] in str(e.value)


def test_bad_arrays_and_arguments():
    good = np.zeros((8, 9, 3), np.uint8)
    cases = [
        (good.astype(np.float32), "sources\\[1\\].*uint8"),
        (np.zeros((8, 9), np.uint8), "sources\\[1\\].*dimensions"),
        (np.zeros((8, 9, 4), np.uint8), "sources\\[1\\].*shape"),
        (np.zeros((8, 18, 3), np.uint8)[:, ::2], "sources\\[1\\].*C-contiguous"),
        (np.zeros((0, 9, 3), np.uint8), "sources\\[1\\].*shape"),
    ]
    for arr, msg in cases:
        with pytest.raises(ValueError, match=msg):
            _C.preprocess([good, arr], {})
    with pytest.raises(TypeError, match="sources\\[0\\]"):
        _C.preprocess([12], {})
    with pytest.raises(ValueError, match="empty batch"):
        _C.preprocess([], {})
    with pytest.raises(ValueError, match="empty batch"):
        ImageProcessor()([])
    with pytest.raises(ValueError, match="without a center crop"):  # shapes differ, no crop to unify them
        _C.preprocess([good, np.zeros((9, 9, 3), np.uint8)], {"do_center_crop": False})
    with pytest.raises(TypeError):
        _C.decode_image(3.5)


def test_no_leaks_on_error_paths(bad_files):
    paths, files = bad_files
    good = os.path.join(DATA, "clip_preprocess", "openai224_modes1", "chelsea_palette.png")
    proc = ImageProcessor()

    def run_all():
        for name in BAD_EXPECT:
            for src in (paths[name], files[name]):
                with pytest.raises(FormatError):
                    decode_image(src)
            with pytest.raises(FormatError):
                proc([good, paths[name], good])
            with pytest.raises(FormatError):
                proc(files[name])  # a single image takes the pipelined decode
        with pytest.raises(FileNotFoundError):
            proc([good, paths["random.bin"] + ".missing"])
        with pytest.raises(ValueError):
            _C.preprocess([good, np.zeros((3, 3), np.uint8)], {})
        proc([good, _fixture_bytes("clip_preprocess", "openai224_modes1", "camera_gray.png")])

    run_all()  # warm-up (first-use allocations, if any)
    start = _C.memory_stats()
    for _ in range(20):
        run_all()
    end = _C.memory_stats()
    assert end["live_blocks"] == start["live_blocks"]
    assert end["current_bytes"] == start["current_bytes"]
