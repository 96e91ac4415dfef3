"""Inputs the libFuzzer harnesses (tests/fuzz/, tools/fuzz.sh) found crashing or misbehaving, fed
through the Python API: each must now give a clean exception or the correct result.

The inputs live in tests/fuzz/regressions/<target>/ (tools/fuzz.sh replays them through the
harnesses too); a harness input starts with its option bytes (see tests/fuzz/<target>.c), which
the helpers below strip. test_every_regression_has_a_test keeps the two lists in step.
"""
import contextlib
import io
import json
import os
import re
import resource
import shutil
import struct

import pytest

from mmsuite import _C
from mmsuite.errors import ConfigError, FormatError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REG = os.path.join(ROOT, "tests", "fuzz", "regressions")
DATA = os.path.join(ROOT, "tests", "data")

def regression(target, name):
    with open(os.path.join(REG, target, name), "rb") as f:
        return f.read()


def _dir_with_config(tmp_path, config_bytes, weights_from=None):
    d = tmp_path / "ckpt"
    d.mkdir()
    (d / "config.json").write_bytes(config_bytes)
    if weights_from:
        shutil.copy(os.path.join(weights_from, "model.safetensors"), d / "model.safetensors")
    return str(d)


# ---- fuzz_config ------------------------------------------------------------------------------


def test_llava_pinpoint_float_overflow(tmp_path):
    """image_grid_pinpoints [67255...5, 336]: (int64_t)6.7e43 was undefined behaviour
    (csrc/llava.c parse_config); now a ConfigError naming the key."""
    cfg = regression("fuzz_config", "llava_pinpoint_float_overflow")
    with pytest.raises(ConfigError, match="image_grid_pinpoints"):
        _C.llava_load(_dir_with_config(tmp_path, cfg), "float32", "cpu", True)


@pytest.mark.parametrize("layer,ok", [(1e300, False), (-1e300, False), (2.5, False), (-2, True)])
def test_llava_feature_layer_range(tmp_path, layer, ok):
    """vision_feature_layer went through (int)valuedouble too (same fix): out-of-range and
    fractional values are a ConfigError; -2 passes the config and stops at the missing weights."""
    cfg = json.loads(regression("fuzz_config", "llava_pinpoint_float_overflow"))
    cfg["image_grid_pinpoints"] = [[336, 672]]
    cfg["vision_feature_layer"] = layer
    cfg["vision_config"] = {"num_hidden_layers": 2}
    cfg["text_config"] = {"model_type": "mistral"}
    d = _dir_with_config(tmp_path, json.dumps(cfg).encode())
    if ok:
        with pytest.raises(Exception, match="safetensors"):
            _C.llava_load(d, "float32", "cpu", True)
    else:
        with pytest.raises(ConfigError, match="vision_feature_layer"):
            _C.llava_load(d, "float32", "cpu", True)


def test_eos_list_float_overflow(tmp_path):
    """eos_token_id [1e67, 2]: (int64_t)1e67 was undefined behaviour (csrc/decoder_config.c);
    an id that is not an int64 now reads as "no eos" (-1), as a non-number always did."""
    cfg = json.loads(regression("fuzz_config", "eos_list_float_overflow"))
    assert cfg["eos_token_id"][0] > 1e60
    lm = os.path.join(DATA, "lm", "llama_llama3")
    with open(os.path.join(lm, "config.json")) as f:
        real = json.load(f)
    real["eos_token_id"] = cfg["eos_token_id"]
    h = _C.lm_load(_dir_with_config(tmp_path, json.dumps(real).encode(), weights_from=lm), "float32", "cpu", True)
    try:
        assert _C.lm_info(h)["eos_token_id"] == -1
    finally:
        _C.lm_unload(h)


# ---- fuzz_safetensors -------------------------------------------------------------------------


def _write_harness_checkpoint(data, d):
    """The files fuzz_safetensors writes for an input (see tests/fuzz/fuzz_safetensors.c): the
    path it opens and whether it reads into memory."""
    mode, data = data[0], data[1:]
    if not mode & 1:
        (d / "model.safetensors").write_bytes(data)
        return str(d if mode & 2 else d / "model.safetensors"), bool(mode & 4)
    idx_len = struct.unpack("<H", data[:2])[0] % (len(data) - 4 + 1)
    s1 = struct.unpack("<H", data[2:4])[0] % (len(data) - 4 - idx_len + 1)
    data = data[4:]
    (d / "model.safetensors.index.json").write_bytes(data[:idx_len])
    (d / "s1.safetensors").write_bytes(data[idx_len:idx_len + s1])
    (d / "s2.safetensors").write_bytes(data[idx_len + s1:])
    return str(d if mode & 2 else d / "model.safetensors.index.json"), bool(mode & 4)


def test_index_empty_weight_map(tmp_path):
    """An index whose weight_map is {}: no shard is read, the entry table stays NULL and went to
    qsort / bsearch (undefined behaviour for a NULL array, even of 0 elements; csrc/safetensors.c).
    It is an empty checkpoint: it opens, holds nothing, and lookups find nothing."""
    path, _ = _write_harness_checkpoint(regression("fuzz_safetensors", "index_empty_weight_map"), tmp_path)
    assert b'"weight_map": {}}' in (tmp_path / "model.safetensors.index.json").read_bytes()
    assert _C.weights_info(path) == {}
    assert _C.weights_info(str(tmp_path)) == {}


def test_zero_dim_stride_overflow(tmp_path):
    """Shape [0, 56666666666666, 66666]: 0 elements passed the 2^48-element bound, but the byte
    strides of the other dims overflowed int64 in mms_tensor_view (undefined behaviour; found by
    the 30-minute run). The bound now covers the product of the non-zero dims."""
    path, _ = _write_harness_checkpoint(regression("fuzz_safetensors", "zero_dim_stride_overflow"), tmp_path)
    assert b'"shape":[0,56666666666666,66666]' in (tmp_path / "model.safetensors").read_bytes()
    with pytest.raises(FormatError, match=r"tensor 'i': shape declares more than 2\^48 elements"):
        _C.weights_info(path)
    # the same in a clean file, and a legitimate zero-sized tensor still loads
    for shape, ok in (([0, 2**40, 2**40], False), ([0, 4096, 4096], True)):
        header = json.dumps({"t": {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]}}).encode()
        f = tmp_path / "clean.safetensors"
        f.write_bytes(struct.pack("<Q", len(header)) + header)
        if ok:
            assert _C.weights_info(str(f)) == {"t": ("float32", tuple(shape))}
        else:
            with pytest.raises(FormatError, match="more than 2\\^48 elements"):
                _C.weights_info(str(f))


# ---- fuzz_image -------------------------------------------------------------------------------


@contextlib.contextmanager
def _address_space_limit(extra):
    """RLIMIT_AS = the address space in use + extra for the duration (not under ASan, whose shadow
    memory needs the address space)."""
    with open("/proc/self/maps") as f:
        asan = "libasan" in f.read()
    if asan:
        yield
        return
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    old = resource.getrlimit(resource.RLIMIT_AS)
    limit = vm + extra if old[1] == resource.RLIM_INFINITY else min(vm + extra, old[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, old)


def test_png_huge_itxt_chunk():
    """A 44-byte PNG whose second chunk is an iTXt declaring 1.7 GB: libpng allocated the declared
    length before reading it (2 GB of RSS under ASan). Ancillary chunks are now skipped unread
    (csrc/image_decode.c): the file is simply truncated, with no allocation (256 MB of address
    space is plenty)."""
    png = regression("fuzz_image", "png_huge_itxt_chunk")[1:]  # byte 0: harness options
    assert png[37:41] == b"iTXt" and struct.unpack(">I", png[33:37])[0] > 1 << 30
    with _address_space_limit(256 << 20):
        with pytest.raises(FormatError, match="truncated"):
            _C.decode_image(png)


def test_png_ancillary_chunks_change_no_pixel():
    """Skipping ancillary chunks keeps the decode equal to Pillow's for files that carry them."""
    import numpy as np
    from PIL import Image, PngImagePlugin
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "x" * 5000)
    info.add_text("Title", "caf\u00e9", zip=True)
    info.add_itxt("Description", "\u4e2d\u6587" * 100, lang="zh", tkey="d")
    px = (np.arange(7 * 5 * 3) * 37 % 256).astype(np.uint8).reshape(5, 7, 3)
    for im, kw in [(Image.fromarray(px), {}), (Image.fromarray(px).convert("P", palette=Image.ADAPTIVE, colors=5),
                                               {"transparency": 2}), (Image.fromarray(px).convert("LA"), {})]:
        buf = io.BytesIO()
        im.save(buf, "PNG", pnginfo=info, gamma=0.3, dpi=(72, 72), **kw)
        data = buf.getvalue()
        ref = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        assert np.array_equal(np.asarray(_C.decode_image(data)), ref)


# ---- fuzz_sp_model ----------------------------------------------------------------------------


def test_bpe_normal_piece_repeats_control():
    """sp_bpe_small.model with piece 388 mutated into a NORMAL "<s>" (piece 1 is the CONTROL
    "<s>"): the sentencepiece library refuses it for BPE models (one map for all pieces), the C
    loader accepted it and piece_to_id("<s>") no longer gave 388 back."""
    model = regression("fuzz_sp_model", "bpe_normal_piece_repeats_control")
    with pytest.raises(FormatError, match=r"piece 388 '<s>' is already defined"):
        _C.SentencePiece(model, "mutated.model")
    # (sentencepiece 0.2.3 raises RuntimeError "... is already defined" on this file; the library
    # is not a test dependency, so the rule is pinned here by the C loader's behaviour alone)


def test_unigram_allows_control_and_normal_with_one_string():
    """The other side of the rule: unigram models keep control pieces apart, as the library."""
    from tests.test_sentencepiece import BASIC, _model, _piece
    m = _model(BASIC + [_piece("<s>", -3.0, 1)])  # unigram, a NORMAL "<s>" after the CONTROL one
    sp = _C.SentencePiece(m, "u.model")
    assert sp.piece_to_id("<s>") == 1  # as sentencepiece 0.2.3 gives


# ---- fuzz_tokenizer_json ----------------------------------------------------------------------


def test_non_utf8_tokenizer_json():
    """A tokenizer.json with stray non-UTF-8 bytes inside token strings loaded, and decoding such
    a token handed out invalid UTF-8 (no ByteLevel step to repair it). HF's reader refuses
    non-UTF-8 JSON; so does create_json now, naming the byte."""
    data = regression("fuzz_tokenizer_json", "non_utf8_token_json")[1:]  # byte 0: harness options
    bad = next(i for i in range(len(data)) if not _utf8_prefix_ok(data, i))
    with pytest.raises(FormatError, match=re.escape(f"fuzz.json: not UTF-8 (byte {bad})")):
        _C.HFTokenizer(data, name="fuzz.json")


def test_added_token_id_float_overflow():
    """added_tokens id 6.7e106: jint (csrc/tokenizer_hf_json.h) cast it to int64 before the range
    check (undefined behaviour; found by the 30-minute run). Now out of range, a FormatError."""
    data = regression("fuzz_tokenizer_json", "added_token_id_float_overflow")[1:]  # byte 0: options
    assert b'"id":66666666666666666666' in data
    with pytest.raises(FormatError, match=r"fuzz\.json: added_tokens: entry 2 needs \"id\""):
        _C.HFTokenizer(data, name="fuzz.json")


def _utf8_prefix_ok(data, i):
    try:
        data[: i + 1].decode("utf-8")
        return True
    except UnicodeDecodeError as e:
        return e.reason == "unexpected end of data"


# ---- bookkeeping ------------------------------------------------------------------------------


def test_every_regression_has_a_test():
    with open(__file__, encoding="utf-8") as f:
        src = f.read()
    for t in sorted(os.listdir(REG)):
        for name in sorted(os.listdir(os.path.join(REG, t))):
            assert f'regression("{t}", "{name}")' in src, f"tests/fuzz/regressions/{t}/{name} has no test here"
