"""CLIP / OpenCLIP / SigLIP against the reference fixtures, plus API contracts: zero-copy
results that outlive the model, thread safety, and precise errors."""
import glob
import json
import os
import shutil
import threading

import numpy as np
import pytest

import mmsuite
from mmsuite import ConfigError, UnsupportedError, _C
from mmsuite.conformance import main as conformance_main

DATA = os.path.join(os.path.dirname(__file__), "data")
MODEL_CASES = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(DATA, "conformance", "*", "*", "case.json")))
CLIP_CASE = os.path.join(DATA, "conformance", "clip", "tiny_quickgelu")


def case_inputs(case_dir):
    case = json.load(open(os.path.join(case_dir, "case.json")))
    px = np.load(os.path.join(case_dir, "pixel_values.npy"))
    ids = np.load(os.path.join(case_dir, "input_ids.npy"))
    mask_path = os.path.join(case_dir, "attention_mask.npy")
    mask = np.load(mask_path) if os.path.exists(mask_path) and case["run"].get("use_mask", True) else None
    return case, px, ids, mask


def test_there_are_model_cases():
    assert len(MODEL_CASES) >= 5
    assert {os.path.basename(os.path.dirname(c)) for c in MODEL_CASES} >= {"clip", "siglip", "openclip"}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("case_dir", MODEL_CASES, ids=lambda p: os.path.relpath(p, DATA))
def test_conformance_runner(case_dir, dtype, tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = conformance_main([case_dir, "--dtype", dtype, "--json", str(out)])
    report = json.load(open(out))[case_dir]
    printed = capsys.readouterr().out
    assert rc == 0, printed
    case = json.load(open(os.path.join(case_dir, "case.json")))
    expected = {f for f, v in case["files"].items()
                if v["role"] in ("output", "intermediate", "check") and f.endswith(".npy")}
    assert set(report) == expected          # every listed file was compared
    assert all(r["passed"] for r in report.values())
    if dtype == "bfloat16" and case["family"] in ("clip", "siglip", "openclip"):  # contrastive embeddings
        cos = [r["min_cosine"] for f, r in report.items() if f.endswith("_embeds.npy")]
        assert cos and min(cos) >= 0.999


def test_runner_reports_a_miss(tmp_path):
    case = tmp_path / "case"
    shutil.copytree(CLIP_CASE, case)
    ref = np.load(case / "image_embeds.npy")
    np.save(case / "image_embeds.npy", ref + 0.01)
    assert conformance_main([str(case), "--json", str(tmp_path / "r.json")]) == 1
    r = json.load(open(tmp_path / "r.json"))[str(case)]
    assert r["image_embeds.npy"]["passed"] is False
    assert r["image_embeds.npy"]["max_abs_error"] > 0.009


def test_results_are_zero_copy_and_outlive_the_model():
    _, px, ids, mask = case_inputs(CLIP_CASE)
    m = mmsuite.load(os.path.join(CLIP_CASE, "model"))
    out = m.encode_image(pixel_values=px)
    emb = out["image_embeds"]
    assert isinstance(emb.base, _C.Buffer)
    assert emb.ctypes.data == emb.base.ptr            # the array IS the C buffer
    copy = emb.copy()
    m.unload()
    assert not m.loaded
    np.testing.assert_array_equal(emb, copy)           # still valid after unload
    with pytest.raises(RuntimeError, match="unloaded"):
        m.encode_image(pixel_values=px)
    # DLPack export of result arrays
    cap = emb.__dlpack__()
    assert cap is not None


def test_input_is_read_without_copy_and_strided_input_works():
    _, px, ids, mask = case_inputs(CLIP_CASE)
    m = mmsuite.load(os.path.join(CLIP_CASE, "model"))
    ref = m.encode_image(pixel_values=px)["image_embeds"].copy()
    big = np.zeros((px.shape[0] * 2,) + px.shape[1:], np.float32)
    big[::2] = px
    strided = big[::2]                                  # non-contiguous view
    got = _C.clip_encode_image(m._h, strided)["image_embeds"]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)


def test_concurrent_calls_identical():
    _, px, ids, mask = case_inputs(CLIP_CASE)
    m = mmsuite.load(os.path.join(CLIP_CASE, "model"))
    ref_i = m.encode_image(pixel_values=px)["image_embeds"].copy()
    ref_t = m.encode_text(input_ids=ids, attention_mask=mask)["text_embeds"].copy()
    errors = []

    def work():
        try:
            for _ in range(20):
                np.testing.assert_array_equal(m.encode_image(pixel_values=px)["image_embeds"], ref_i)
                np.testing.assert_array_equal(m.encode_text(input_ids=ids, attention_mask=mask)["text_embeds"], ref_t)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors


def test_unload_while_busy_is_refused_or_safe():
    _, px, _, _ = case_inputs(CLIP_CASE)
    m = mmsuite.load(os.path.join(CLIP_CASE, "model"))
    big = np.repeat(px, 64, axis=0)
    res = {}

    def run():
        res["out"] = m.encode_image(pixel_values=big)

    t = threading.Thread(target=run)
    t.start()
    try:
        m.unload()
    except RuntimeError as e:
        assert "still running" in str(e)
    t.join()
    assert res["out"]["image_embeds"].shape[0] == big.shape[0]


def test_int32_ids_and_lists_accepted():
    _, _, ids, mask = case_inputs(CLIP_CASE)
    m = mmsuite.load(os.path.join(CLIP_CASE, "model"))
    a = m.encode_text(input_ids=ids, attention_mask=mask)["text_embeds"]
    b = m.encode_text(input_ids=ids.astype(np.int32).tolist(), attention_mask=mask.tolist())["text_embeds"]
    np.testing.assert_array_equal(a, b)


# ---- errors ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clip_model():
    return mmsuite.load(os.path.join(CLIP_CASE, "model"))


@pytest.mark.parametrize("px,match", [
    (np.zeros((2, 3, 32, 32), np.float64), None),             # converted by the wrapper: ok
    (np.zeros((2, 3, 31, 32), np.float32), "pixel_values"),
    (np.zeros((3, 32, 32), np.float32), "pixel_values"),
    (np.zeros((0, 3, 32, 32), np.float32), "empty"),
    (np.zeros((1, 4, 32, 32), np.float32), "pixel_values"),
])
def test_bad_pixel_values(clip_model, px, match):
    if match is None:
        assert clip_model.encode_image(pixel_values=px)["image_embeds"].shape == (2, 24)
        return
    with pytest.raises(ValueError, match=match):
        clip_model.encode_image(pixel_values=px)


def test_bad_dtype_in_c_binding(clip_model):
    with pytest.raises(ValueError, match="pixel_values"):
        _C.clip_encode_image(clip_model._h, np.zeros((1, 3, 32, 32), np.float64))
    with pytest.raises(ValueError, match="input_ids"):
        _C.clip_encode_text(clip_model._h, np.zeros((1, 4), np.float32))


@pytest.mark.parametrize("ids,match", [
    (np.zeros((1, 17), np.int64), "context length 16"),
    (np.full((1, 4), 320, np.int64), "outside the vocabulary"),
    (np.full((1, 4), -1, np.int64), "outside the vocabulary"),
    (np.zeros((0, 4), np.int64), "empty"),
    (np.zeros((4,), np.int64), "input_ids"),
    (np.zeros((1, 4), np.float32), "integer"),
])
def test_bad_input_ids(clip_model, ids, match):
    with pytest.raises(ValueError, match=match):
        clip_model.encode_text(input_ids=ids)


def test_bad_mask_shape(clip_model):
    with pytest.raises(ValueError, match="attention_mask"):
        clip_model.encode_text(input_ids=np.ones((2, 4), np.int64), attention_mask=np.ones((2, 5), np.int64))


def _copy_model(tmp_path, mutate):
    d = tmp_path / "m"
    shutil.copytree(os.path.join(CLIP_CASE, "model"), d)
    cfg = json.load(open(d / "config.json"))
    mutate(cfg)
    (d / "config.json").write_text(json.dumps(cfg))
    return str(d)


def test_unsupported_architecture(tmp_path):
    d = _copy_model(tmp_path, lambda c: c.update(model_type="bert"))
    with pytest.raises(UnsupportedError, match="model_type 'bert'"):
        mmsuite.load(d)


def test_missing_model_type(tmp_path):
    d = _copy_model(tmp_path, lambda c: c.pop("model_type"))
    with pytest.raises(ConfigError, match="model_type"):
        mmsuite.load(d)


def test_bad_config_value(tmp_path):
    d = _copy_model(tmp_path, lambda c: c["vision_config"].update(hidden_size="wide"))
    with pytest.raises(ConfigError, match="hidden_size"):
        mmsuite.load(d)


def test_config_disagrees_with_weights(tmp_path):
    d = _copy_model(tmp_path, lambda c: c["vision_config"].update(hidden_size=80, num_attention_heads=5))
    with pytest.raises(mmsuite.FormatError, match="expected"):
        mmsuite.load(d)


def test_unknown_activation(tmp_path):
    d = _copy_model(tmp_path, lambda c: c["text_config"].update(hidden_act="mish"))
    with pytest.raises(UnsupportedError, match="mish"):
        mmsuite.load(d)


def test_bad_json_config(tmp_path):
    d = tmp_path / "m"
    shutil.copytree(os.path.join(CLIP_CASE, "model"), d)
    (d / "config.json").write_text("{not json")
    with pytest.raises(mmsuite.FormatError, match="config.json"):
        mmsuite.load(str(d))


def test_missing_tensor(tmp_path):
    import struct
    d = tmp_path / "m"
    shutil.copytree(os.path.join(CLIP_CASE, "model"), d)
    raw = open(d / "model.safetensors", "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header.pop("text_projection.weight")
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    (d / "model.safetensors").write_bytes(struct.pack("<Q", len(hb)) + hb + raw[8 + n:])
    with pytest.raises(FileNotFoundError, match="text_projection.weight"):
        mmsuite.load(str(d))


def test_failed_loads_do_not_leak(tmp_path):
    d = _copy_model(tmp_path, lambda c: c["text_config"].update(hidden_act="mish"))
    before = _C.memory_stats()["live_blocks"]
    for _ in range(20):
        with pytest.raises(UnsupportedError):
            mmsuite.load(d)
    assert _C.memory_stats()["live_blocks"] == before


def test_load_unload_cycles_do_not_leak():
    _, px, ids, mask = case_inputs(CLIP_CASE)
    m = mmsuite.load(os.path.join(CLIP_CASE, "model"))
    m.encode_image(pixel_values=px)
    m.unload()
    before = _C.memory_stats()["current_bytes"]
    for _ in range(10):
        m = mmsuite.load(os.path.join(CLIP_CASE, "model"), dtype="bfloat16")
        out = m.forward(pixel_values=px, input_ids=ids, attention_mask=mask)
        del out
        m.unload()
    assert _C.memory_stats()["current_bytes"] == before


def test_missing_dir_and_hub_id(monkeypatch, tmp_path):
    with pytest.raises(mmsuite.ModelNotFoundError, match="no such checkpoint"):
        mmsuite.load(str(tmp_path / "nothing"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(mmsuite.ModelNotFoundError, match="not in the Hugging Face cache"):
        mmsuite.load("openai/clip-vit-base-patch32")


def test_hub_id_resolves_from_cache(monkeypatch, tmp_path):
    snap = tmp_path / "hub" / "models--tiny--clip" / "snapshots" / "abc123"
    shutil.copytree(os.path.join(CLIP_CASE, "model"), snap)
    (tmp_path / "hub" / "models--tiny--clip" / "refs").mkdir()
    (tmp_path / "hub" / "models--tiny--clip" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    m = mmsuite.load("tiny/clip")
    assert m.path == str(snap)


def test_bad_dtype_and_device():
    with pytest.raises(ValueError, match="dtype"):
        mmsuite.load(os.path.join(CLIP_CASE, "model"), dtype="int8")
    with pytest.raises(ValueError, match="device"):
        mmsuite.load(os.path.join(CLIP_CASE, "model"), device="tpu")


def test_threads_setting():
    old = mmsuite.get_num_threads()
    mmsuite.set_num_threads(1)
    assert mmsuite.get_num_threads() == 1
    mmsuite.set_num_threads(0)
    assert mmsuite.get_num_threads() == old or mmsuite.get_num_threads() >= 1
    with pytest.raises(ValueError):
        mmsuite.set_num_threads(-1)


def _read_st(path):
    import struct
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    dt = {"F32": np.float32, "F16": np.float16}
    return {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], dt[v["dtype"]])
            .reshape(v["shape"]) for k, v in header.items() if k != "__metadata__"}


def _write_st(path, tensors):
    import struct
    tags = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16"}
    header, blobs, off = {}, [], 0
    for k, a in tensors.items():
        b = np.ascontiguousarray(a).tobytes()
        header[k] = {"dtype": tags[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    open(path, "wb").write(struct.pack("<Q", len(hb)) + hb + b"".join(blobs))


@pytest.mark.parametrize("case", ["clip/tiny_quickgelu", "siglip/tiny_model"])
def test_fp16_checkpoint_equals_its_fp32_upcast(case, tmp_path):
    """An F16-stored checkpoint computes exactly what the same weights stored as F32 compute."""
    src = os.path.join(DATA, "conformance", case, "model")
    w = _read_st(os.path.join(src, "model.safetensors"))
    half = {k: v.astype(np.float16) for k, v in w.items()}
    for name, tensors in (("f16", half), ("f32", {k: v.astype(np.float32) for k, v in half.items()})):
        d = tmp_path / name
        d.mkdir()
        for f in ("config.json", "preprocessor_config.json"):
            shutil.copy(os.path.join(src, f), d)
        _write_st(str(d / "model.safetensors"), tensors)
    _, px, ids, mask = case_inputs(os.path.dirname(src))
    a = mmsuite.load(str(tmp_path / "f16")).forward(pixel_values=px, input_ids=ids, attention_mask=mask)
    b = mmsuite.load(str(tmp_path / "f32")).forward(pixel_values=px, input_ids=ids, attention_mask=mask)
    for k in ("vision_last_hidden_state", "image_embeds", "text_embeds", "logits_per_image"):
        np.testing.assert_array_equal(a[k], b[k])
    ref = np.load(os.path.join(os.path.dirname(src), "image_embeds.npy"))
    assert np.min(np.sum(a["image_embeds"] * ref, axis=1)) > 0.999   # fp16 rounding stays close to the fixture
