"""The safetensors reader: valid files, sharded indexes, and every corruption it must refuse."""
import json
import os
import struct

import numpy as np
import pytest

import mmsuite
from mmsuite import FormatError, _C


def write_st(path, tensors, header_override=None, pad_to=8, truncate=0, raw_header=None):
    """Write a safetensors file; tensors: {name: np.ndarray}."""
    tags = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("int64"): "I64", np.dtype("uint8"): "U8"}
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        b = arr.tobytes()
        header[name] = {"dtype": tags[arr.dtype], "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    if header_override:
        for k, v in header_override.items():
            header[k] = v
    hb = raw_header if raw_header is not None else json.dumps(header).encode()
    if pad_to and raw_header is None:
        hb += b" " * (-len(hb) % pad_to)
    data = struct.pack("<Q", len(hb)) + hb + b"".join(blobs)
    if truncate:
        data = data[:-truncate]
    with open(path, "wb") as f:
        f.write(data)
    return path


def test_valid_file_roundtrip(tmp_path):
    p = write_st(tmp_path / "a.safetensors", {"w": np.arange(6, dtype=np.float32).reshape(2, 3),
                                              "ids": np.arange(4, dtype=np.int64)})
    info = _C.weights_info(str(p))
    assert info == {"ids": ("int64", (4,)), "w": ("float32", (2, 3))}


def test_sharded_index(tmp_path):
    write_st(tmp_path / "m-00001.safetensors", {"a": np.ones(3, np.float32)})
    write_st(tmp_path / "m-00002.safetensors", {"b": np.ones((2, 2), np.float16)})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {"a": "m-00001.safetensors", "b": "m-00002.safetensors"}}))
    info = _C.weights_info(str(tmp_path))
    assert info == {"a": ("float32", (3,)), "b": ("float16", (2, 2))}


def test_index_names_missing_tensor(tmp_path):
    write_st(tmp_path / "m-00001.safetensors", {"a": np.ones(3, np.float32)})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"zz": "m-00001.safetensors"}}))
    with pytest.raises(FormatError, match="'zz'.*missing"):
        _C.weights_info(str(tmp_path))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        _C.weights_info(str(tmp_path / "nope.safetensors"))


@pytest.mark.parametrize("case,match", [
    ("short", "truncated"),
    ("huge_header_len", "bad header length"),
    ("bad_json", "not valid JSON"),
    ("unknown_dtype", "unknown dtype 'F99'"),
    ("past_end", "past the end"),
    ("overlap", "overlapping"),
    ("shape_mismatch", "data_offsets span"),
    ("negative_shape", "non-negative"),
    ("offsets_reversed", "begin <= end"),
    ("truncated_data", "past the end"),
    ("not_object", "not an object"),
    ("trailing", "trailing garbage"),
])
def test_corrupt_files_raise_format_error(tmp_path, case, match):
    p = tmp_path / f"{case}.safetensors"
    t = {"a": np.ones(4, np.float32), "b": np.ones(2, np.float32)}
    if case == "short":
        p.write_bytes(b"\x01\x02")
    elif case == "huge_header_len":
        p.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    elif case == "bad_json":
        write_st(p, t, raw_header=b'{"a": {"dtype": "F32",')
    elif case == "unknown_dtype":
        write_st(p, t, header_override={"a": {"dtype": "F99", "shape": [4], "data_offsets": [0, 16]}})
    elif case == "past_end":
        write_st(p, t, header_override={"b": {"dtype": "F32", "shape": [2], "data_offsets": [16, 4000]}})
    elif case == "overlap":
        write_st(p, t, header_override={"b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})
    elif case == "shape_mismatch":
        write_st(p, t, header_override={"a": {"dtype": "F32", "shape": [5], "data_offsets": [0, 16]}})
    elif case == "negative_shape":
        write_st(p, t, header_override={"a": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}})
    elif case == "offsets_reversed":
        write_st(p, t, header_override={"a": {"dtype": "F32", "shape": [0], "data_offsets": [16, 0]}})
    elif case == "truncated_data":
        write_st(p, t, truncate=4)
    elif case == "not_object":
        write_st(p, t, raw_header=b"[1, 2, 3]")
    elif case == "trailing":
        write_st(p, t, raw_header=json.dumps({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode() + b" xx")
    with pytest.raises(FormatError, match=match) as ei:
        _C.weights_info(str(p))
    assert str(p) in str(ei.value)


def test_corrupt_checkpoint_leaves_nothing_allocated(tmp_path):
    p = write_st(tmp_path / "x.safetensors", {"a": np.ones(4, np.float32)}, truncate=4)
    before = _C.memory_stats()["live_blocks"]
    for _ in range(50):
        with pytest.raises(FormatError):
            _C.weights_info(str(p))
    assert _C.memory_stats()["live_blocks"] == before


def test_model_with_corrupt_weights(tmp_path):
    src = os.path.join(os.path.dirname(__file__), "data", "conformance", "clip", "tiny_quickgelu", "model")
    for f in ("config.json", "preprocessor_config.json"):
        (tmp_path / f).write_bytes(open(os.path.join(src, f), "rb").read())
    data = open(os.path.join(src, "model.safetensors"), "rb").read()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="model.safetensors"):
        mmsuite.load(str(tmp_path))
