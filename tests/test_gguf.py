"""GGUF reading, dequantization and conversion (mmsuite/gguf.py, mmsuite/gguf_convert.py).

Every GGUF here is written by the small writer below: metadata of every value type, tensors of
every supported ggml type (checked against per-block reference dequantizers written from
ggml-quants.c), the tiny Llama / Qwen2 fixtures of tests/data/lm turned into GGUF the way
llama.cpp's convert_hf_to_gguf.py does (Q/K rows permuted), and byte-level BPE vocabularies
from tests/data/tokenizers checked against their transformers reference ids."""
import json
import os
import struct

import numpy as np
import pytest

import mmsuite
from mmsuite import gguf_convert
from mmsuite.errors import ConfigError, FormatError, UnsupportedError
from mmsuite.gguf import GGML_TYPES, dequantize, read_gguf
from mmsuite.gguf_convert import unpermute_rows
from mmsuite.tokenizer import load_tokenizer

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q4_K, Q5_K, Q6_K, BF16 = 0, 1, 2, 3, 6, 7, 8, 10, 12, 13, 14, 30
U8, I8, U16, I16, U32, I32, F32V, BOOL, STR, ARR, U64, I64, F64V = range(13)
_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32V: "<f", BOOL: "<?", U64: "<Q",
        I64: "<q", F64V: "<d"}


# ==== a GGUF writer ===============================================================================

def _value(vtype, v):
    if vtype == STR:
        b = v.encode("utf-8")
        return struct.pack("<Q", len(b)) + b
    if vtype == ARR:
        etype, items = v
        return struct.pack("<IQ", etype, len(items)) + b"".join(_value(etype, x) for x in items)
    return struct.pack(_FMT[vtype], v)


def _str(s):
    return _value(STR, s)


def gguf_bytes(metadata, tensors=(), version=3, alignment=32):
    """metadata: [(key, value type, value)] (arrays: (element type, items)); tensors:
    [(name, ggml type, ne in ggml order, raw bytes)]."""
    out = [b"GGUF", struct.pack("<IQQ", version, len(tensors), len(metadata))]
    for key, vtype, v in metadata:
        out += [_str(key), struct.pack("<I", vtype), _value(vtype, v)]
    off, blobs = 0, []
    for name, gtype, ne, raw in tensors:
        out += [_str(name), struct.pack("<I", len(ne)), struct.pack(f"<{len(ne)}Q", *ne), struct.pack("<IQ", gtype, off)]
        pad = -len(raw) % alignment
        blobs.append(raw + b"\0" * pad)
        off += len(raw) + pad
    head = b"".join(out)
    return head + b"\0" * (-len(head) % alignment) + b"".join(blobs)


def write(path, *args, **kw):
    with open(path, "wb") as f:
        f.write(gguf_bytes(*args, **kw))
    return str(path)


# ==== per-block reference dequantizers (ggml-quants.c, one block at a time) =========================

def _h(b, at):
    return float(np.frombuffer(bytes(b[at:at + 2]), "<f2")[0])


def _ref_q4_0(b):
    d = _h(b, 0)
    return [((b[2 + j] & 15) - 8) * d for j in range(16)] + [((b[2 + j] >> 4) - 8) * d for j in range(16)]


def _ref_q4_1(b):
    d, m = _h(b, 0), _h(b, 2)
    return [(b[4 + j] & 15) * d + m for j in range(16)] + [(b[4 + j] >> 4) * d + m for j in range(16)]


def _ref_q5(b, with_min):
    d = _h(b, 0)
    m = _h(b, 2) if with_min else 0.0
    at = 4 if with_min else 2
    qh = struct.unpack("<I", bytes(b[at:at + 4]))[0]
    qs = b[at + 4:at + 20]
    lo = [(qs[j] & 15) | (((qh >> j) & 1) << 4) for j in range(16)]
    hi = [(qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4) for j in range(16)]
    if with_min:
        return [x * d + m for x in lo + hi]
    return [(x - 16) * d for x in lo + hi]


def _ref_q8_0(b):
    d = _h(b, 0)
    return [((b[2 + j] ^ 128) - 128) * d for j in range(32)]  # int8 from the byte


def _scale_min_k4(j, q):
    if j < 4:
        return q[j] & 63, q[j + 4] & 63
    return (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4)


def _ref_qk(b, five):
    d, dmin = _h(b, 0), _h(b, 2)
    scales = b[4:16]
    qh, ql = (b[16:48], b[48:176]) if five else (None, b[16:144])
    y, u1, u2 = [], 1, 2
    for c in range(4):
        sc1, m1 = _scale_min_k4(2 * c, scales)
        sc2, m2 = _scale_min_k4(2 * c + 1, scales)
        q = ql[32 * c:32 * c + 32]
        y += [d * sc1 * ((q[l] & 15) + (16 if five and qh[l] & u1 else 0)) - dmin * m1 for l in range(32)]
        y += [d * sc2 * ((q[l] >> 4) + (16 if five and qh[l] & u2 else 0)) - dmin * m2 for l in range(32)]
        u1, u2 = u1 << 2, u2 << 2
    return y


def _ref_q6_k(b):
    ql, qh, sc, d = b[0:128], b[128:192], np.frombuffer(bytes(b[192:208]), np.int8), _h(b, 208)
    y = [0.0] * 256
    for n in range(2):
        for l in range(32):
            s = n * 8 + l // 16
            q1 = ((ql[64 * n + l] & 15) | (((qh[32 * n + l] >> 0) & 3) << 4)) - 32
            q2 = ((ql[64 * n + l + 32] & 15) | (((qh[32 * n + l] >> 2) & 3) << 4)) - 32
            q3 = ((ql[64 * n + l] >> 4) | (((qh[32 * n + l] >> 4) & 3) << 4)) - 32
            q4 = ((ql[64 * n + l + 32] >> 4) | (((qh[32 * n + l] >> 6) & 3) << 4)) - 32
            for k, q in enumerate((q1, q2, q3, q4)):
                y[128 * n + 32 * k + l] = d * sc[s + 2 * k] * q
    return y


REFERENCE = {Q4_0: _ref_q4_0, Q4_1: _ref_q4_1, Q5_0: lambda b: _ref_q5(b, False), Q5_1: lambda b: _ref_q5(b, True),
             Q8_0: _ref_q8_0, Q4_K: lambda b: _ref_qk(b, False), Q5_K: lambda b: _ref_qk(b, True), Q6_K: _ref_q6_k}
# where each type keeps its fp16 scale fields
SCALE_FIELDS = {Q4_0: [0], Q4_1: [0, 2], Q5_0: [0], Q5_1: [0, 2], Q8_0: [0], Q4_K: [0, 2], Q5_K: [0, 2], Q6_K: [208]}


def random_blocks(rng, gtype, n_blocks):
    """Random quantized blocks whose fp16 scales are finite."""
    _, _, nb = GGML_TYPES[gtype]
    raw = rng.integers(0, 256, size=(n_blocks, nb), dtype=np.uint8)
    for at in SCALE_FIELDS[gtype]:
        raw[:, at:at + 2] = rng.normal(0, 0.05, (n_blocks, 1)).astype("<f2").view(np.uint8)
    return raw


def quantize_q8_0(x):
    """llama.cpp's quantize_row_q8_0_ref: d = amax / 127 (stored as fp16), q = round(x / d)."""
    b = x.reshape(-1, 32).astype(np.float32)
    d = np.abs(b).max(axis=1, keepdims=True) / 127
    q = np.round(np.divide(b, d, out=np.zeros_like(b), where=d > 0)).astype(np.int8)
    return np.concatenate([d.astype("<f2").view(np.uint8), q.view(np.uint8)], axis=1).tobytes()


# ==== the parser ==================================================================================

EVERY_TYPE = [
    ("u8", U8, 255), ("i8", I8, -128), ("u16", U16, 65535), ("i16", I16, -32768), ("u32", U32, 2**32 - 1),
    ("i32", I32, -2**31), ("f32", F32V, 1.5), ("bool", BOOL, True), ("str", STR, "héllo ✓"),
    ("u64", U64, 2**64 - 1), ("i64", I64, -2**63), ("f64", F64V, -2.25),
    ("arr.i32", ARR, (I32, [1, -2, 3])), ("arr.f64", ARR, (F64V, [0.5, 1e300])), ("arr.bool", ARR, (BOOL, [True, False])),
    ("arr.str", ARR, (STR, ["a", "", "ü b"])), ("arr.empty", ARR, (U8, [])),
    ("arr.nested", ARR, (ARR, [(U16, [1, 2]), (U16, [])])),
]


@pytest.mark.parametrize("version", [2, 3])
def test_metadata_round_trip_of_every_value_type(tmp_path, version):
    g = read_gguf(write(tmp_path / "m.gguf", [(k, t, v) for k, t, v in EVERY_TYPE], version=version))
    assert g.version == version and g.tensors == {}
    for key, vtype, v in EVERY_TYPE:
        got = g.metadata[key]
        if vtype != ARR:
            assert got == v and type(got) is type(v), key
            assert g.metadata_types[key] == vtype
            continue
        etype, items = v
        assert g.metadata_types[key] == (ARR, etype)
        if etype == ARR:
            assert [list(a) for a in got] == [list(i[1]) for i in items]
        elif etype == STR:
            assert got == items
        else:
            assert isinstance(got, np.ndarray) and got.tolist() == items, key


def test_tensor_table_alignment_and_shapes(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 5)).astype(np.float32)
    b = rng.normal(size=(7,)).astype(np.float16)
    p = write(tmp_path / "t.gguf", [("general.alignment", U32, 64)],
              [("a", F32, [5, 3], a.tobytes()), ("b", F16, [7], b.tobytes())], alignment=64)
    g = read_gguf(p)
    assert g.alignment == 64 and list(g.tensors) == ["a", "b"]
    assert g.tensors["a"].shape == (3, 5) and g.tensors["b"].shape == (7,)
    assert all(t.offset % 64 == 0 for t in g.tensors.values())
    assert np.array_equal(g.tensor("a"), a)
    assert np.array_equal(g.tensor("b"), b.astype(np.float32))


# ==== dequantization ==============================================================================

@pytest.mark.parametrize("gtype", sorted(REFERENCE), ids=lambda t: GGML_TYPES[t][0])
def test_dequantize_matches_per_block_reference(gtype):
    rng = np.random.default_rng(gtype)
    raw = random_blocks(rng, gtype, 3)
    block = GGML_TYPES[gtype][1]
    got = dequantize(raw, gtype, (3, block))
    ref = np.array([REFERENCE[gtype](r.tolist()) for r in raw], dtype=np.float64)
    # the reference computes in float64; ggml (and mmsuite) in float32
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7 * np.abs(ref).max())
    assert np.abs(got).max() > 0


def test_dequantize_plain_types():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 8)).astype(np.float32)
    assert np.array_equal(dequantize(x.view(np.uint8), F32, x.shape), x)
    assert np.array_equal(dequantize(x.astype(np.float16).view(np.uint8), F16, x.shape), x.astype(np.float16))
    bf = (x.view(np.uint32) >> 16).astype("<u2")
    assert np.array_equal(dequantize(bf.view(np.uint8), BF16, x.shape), (bf.astype(np.uint32) << 16).view(np.float32))


def test_q8_0_round_trip_error_is_within_half_a_step():
    x = np.random.default_rng(2).normal(size=(2, 64)).astype(np.float32)
    y = dequantize(np.frombuffer(quantize_q8_0(x), np.uint8), Q8_0, x.shape)
    step = np.abs(x.reshape(-1, 32)).max(axis=1) / 127
    assert np.all(np.abs(y - x).reshape(-1, 32) <= step[:, None] * 0.51)


def test_unsupported_and_unknown_types(tmp_path):
    p = write(tmp_path / "q2k.gguf", [], [("w", Q2_K, [256, 1], bytes(84))])
    with pytest.raises(UnsupportedError, match="Q2_K"):
        read_gguf(p).tensor("w")
    with pytest.raises(UnsupportedError, match="unknown ggml type 99"):
        read_gguf(write(tmp_path / "u.gguf", [], [("w", 99, [4], bytes(16))]))


# ==== malformed files =============================================================================

def test_bad_files_raise_format_errors(tmp_path):
    good = gguf_bytes([("k", STR, "v"), ("a", ARR, (U32, [1, 2, 3]))], [("w", F32, [4], bytes(16))])

    def check(name, data, exc=FormatError, match=None):
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(exc, match=match) as e:
            read_gguf(p)
        assert name in str(e.value)

    check("magic.gguf", b"GGUX" + good[4:], match="not a GGUF file")
    check("empty.gguf", b"", match="empty")
    check("v1.gguf", good[:4] + struct.pack("<I", 1) + good[8:], UnsupportedError, "version 1")
    check("v9.gguf", good[:4] + struct.pack("<I", 9) + good[8:], match="unknown GGUF version 9")
    check("be.gguf", good[:4] + struct.pack(">I", 3) + good[8:], UnsupportedError, "big-endian")
    for cut in (3, 10, 30, 60, len(good) - 100, len(good) - 17):  # the last 16 bytes are the tensor's padding
        check(f"cut{cut}.gguf", good[:cut], match="truncated|past the end|not a GGUF")
    # counts far beyond what the file holds are refused before anything is allocated
    check("kv.gguf", good[:16] + struct.pack("<Q", 2**62) + good[24:], match="more than the file can hold")
    check("tensors.gguf", good[:8] + struct.pack("<Q", 2**60) + good[16:], match="more than the file can hold")
    huge = gguf_bytes([("a", ARR, (U64, []))])
    at = huge.index(struct.pack("<IQ", U64, 0))
    check("array.gguf", huge[:at] + struct.pack("<IQ", U64, 2**61) + huge[at + 12:], match="array declares")
    check("strlen.gguf", gguf_bytes([("k", STR, "v")]).replace(struct.pack("<Q", 1) + b"v", struct.pack("<Q", 2**63) + b"v"),
          match="truncated")
    check("vtype.gguf", good.replace(struct.pack("<I", STR) + _str("v"), struct.pack("<I", 77) + _str("v")),
          match="unknown metadata value type 77")
    check("dims.gguf", gguf_bytes([], [("w", F32, [1, 1, 1, 1, 4], bytes(16))]), match="5 dimensions")
    one = gguf_bytes([], [("w", F32, [4], bytes(16))])
    info = _str("w") + struct.pack("<IQIQ", 1, 4, F32, 0)
    assert one.count(info) == 1
    check("range.gguf", one.replace(info, info[:-8] + struct.pack("<Q", 1 << 20)), match="past the end")
    check("align.gguf", one.replace(info, info[:-8] + struct.pack("<Q", 4)), match="not aligned")
    check("block.gguf", gguf_bytes([], [("w", Q8_0, [16], bytes(34))]), match="multiple of the Q8_0 block")


# ==== tiny models: HF checkpoint -> GGUF (as llama.cpp) -> mmsuite.load ==============================

def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    return {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], np.float32).reshape(v["shape"])
            for k, v in hdr.items() if k != "__metadata__" and v["dtype"] == "F32"}


def permute(w, n_head, n_head_kv=None):
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


HF_TO_GGUF = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
              "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
              "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def gguf_name(hf):
    if hf.startswith("model.layers."):
        _, _, i, rest = hf.split(".", 3)
        mod, kind = rest.rsplit(".", 1)
        return f"blk.{i}.{HF_TO_GGUF[mod]}.{kind}"
    return {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
            "lm_head.weight": "output.weight"}[hf]


def fixture_to_gguf(case, path, quant=F32):
    """tests/data/lm/<case> as llama.cpp would convert it: Q/K rows permuted for llama, 2-D
    weights in `quant` where their rows split into whole blocks (else F32, as llama.cpp falls
    back), norms and biases F32."""
    d = os.path.join(DATA, "lm", case)
    cfg = json.load(open(os.path.join(d, "config.json")))
    arch = cfg["model_type"]
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    a = arch + "."
    md = [("general.architecture", STR, arch), (a + "context_length", U32, cfg["max_position_embeddings"]),
          (a + "embedding_length", U32, cfg["hidden_size"]), (a + "block_count", U32, cfg["num_hidden_layers"]),
          (a + "feed_forward_length", U32, cfg["intermediate_size"]), (a + "attention.head_count", U32, heads),
          (a + "attention.head_count_kv", U32, kv), (a + "attention.key_length", U32, head_dim),
          (a + "attention.value_length", U32, head_dim), (a + "rope.dimension_count", U32, head_dim),
          (a + "rope.freq_base", F32V, cfg["rope_theta"]),
          (a + "attention.layer_norm_rms_epsilon", F32V, cfg["rms_norm_eps"]), (a + "vocab_size", U32, cfg["vocab_size"]),
          ("tokenizer.ggml.bos_token_id", U32, 1), ("tokenizer.ggml.eos_token_id", U32, 2)]
    tensors = []
    for name, w in sorted(read_safetensors(os.path.join(d, "model.safetensors")).items()):
        if arch == "llama" and "q_proj" in name:
            w = permute(w, heads, heads)
        elif arch == "llama" and "k_proj" in name:
            w = permute(w, heads, kv)
        ne = list(reversed(w.shape))
        if quant == Q8_0 and w.ndim == 2 and ne[0] % 32 == 0:
            tensors.append((gguf_name(name), Q8_0, ne, quantize_q8_0(w)))
        elif quant == BF16 and w.ndim == 2:
            tensors.append((gguf_name(name), BF16, ne, (w.view(np.uint32) >> 16).astype("<u2").tobytes()))
        else:
            tensors.append((gguf_name(name), F32, ne, np.ascontiguousarray(w, np.float32).tobytes()))
    return write(path, md, tensors)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMSUITE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "gguf"


IDS = [5, 17, 3, 88, 41, 0, 95, 12, 7, 60, 33]


def test_unpermute_inverts_llama_cpp_permute():
    w = np.arange(48 * 5, dtype=np.float32).reshape(48, 5)
    for heads in (1, 2, 4, 6):
        assert np.array_equal(unpermute_rows(permute(w, heads), heads), w)
        assert not np.array_equal(permute(w, heads), w)
    b = np.arange(24, dtype=np.float32)
    assert np.array_equal(unpermute_rows(permute(b, 4, 2), 2), b)


@pytest.mark.parametrize("case", ["llama_gqa", "qwen2_tied"])
def test_f32_gguf_gives_the_checkpoint_logits_exactly(tmp_path, cache, case):
    src = fixture_to_gguf(case, tmp_path / f"{case}.gguf")
    with pytest.warns(UserWarning, match="no tokenizer.ggml.model"):
        m = mmsuite.load(src)
    ref = mmsuite.load(os.path.join(DATA, "lm", case))
    assert isinstance(m, mmsuite.CausalLM) and m.info["family"] == ref.info["family"]
    assert np.array_equal(m.forward(IDS), ref.forward(IDS))
    cfg = json.load(open(os.path.join(m.path, "config.json")))
    assert cfg["tie_word_embeddings"] == (case == "qwen2_tied")
    conv = read_safetensors(os.path.join(m.path, "model.safetensors"))
    orig = read_safetensors(os.path.join(DATA, "lm", case, "model.safetensors"))
    assert conv.keys() == orig.keys() and all(np.array_equal(conv[k], orig[k]) for k in orig)


def test_q8_0_gguf_matches_within_quantization_error(tmp_path, cache):
    src = fixture_to_gguf("llama_gqa", tmp_path / "q8.gguf", quant=Q8_0)
    assert {t.type_name for t in read_gguf(src).tensors.values()} == {"Q8_0", "F32"}
    with pytest.warns(UserWarning):
        m = mmsuite.load(src)
    a, b = m.forward(IDS), mmsuite.load(os.path.join(DATA, "lm", "llama_gqa")).forward(IDS)
    err = np.abs(a - b).max() / np.abs(b).max()
    assert 0 < err < 0.02
    assert np.mean(a.argmax(-1) == b.argmax(-1)) > 0.8


def test_bf16_gguf_keeps_bf16_weights(tmp_path, cache):
    src = fixture_to_gguf("llama_gqa", tmp_path / "bf16.gguf", quant=BF16)
    with pytest.warns(UserWarning):
        m = mmsuite.load(src)
    hdr_len = struct.unpack("<Q", open(os.path.join(m.path, "model.safetensors"), "rb").read(8))[0]
    with open(os.path.join(m.path, "model.safetensors"), "rb") as f:
        hdr = json.loads(f.read(8 + hdr_len)[8:])
    assert hdr["model.layers.0.self_attn.q_proj.weight"]["dtype"] == "BF16"
    assert hdr["model.norm.weight"]["dtype"] == "F32"
    # the same weights rounded to bf16 in an F32 checkpoint
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    src_dir = os.path.join(DATA, "lm", "llama_gqa")
    for f in ("config.json", "generation_config.json"):
        (ref_dir / f).write_bytes(open(os.path.join(src_dir, f), "rb").read())
    w = {k: ((v.view(np.uint32) >> 16) << 16).view(np.float32) if v.ndim == 2 else v
         for k, v in read_safetensors(os.path.join(src_dir, "model.safetensors")).items()}
    from mmsuite._demo import _write_safetensors
    _write_safetensors(str(ref_dir / "model.safetensors"), w)
    b = mmsuite.load(str(ref_dir)).forward(IDS)
    assert np.abs(m.forward(IDS) - b).max() <= 1e-5 * np.abs(b).max()


# ==== cache and dispatch ==========================================================================

def test_cache_converts_once_and_notices_changes(tmp_path, cache, monkeypatch):
    src = fixture_to_gguf("qwen2_tied", tmp_path / "m.gguf")
    calls = []
    real = gguf_convert.convert_gguf
    monkeypatch.setattr(gguf_convert, "convert_gguf", lambda *a: calls.append(a) or real(*a))
    with pytest.warns(UserWarning):
        first = mmsuite.load(src)
    second = mmsuite.load(str(tmp_path))  # the directory holding exactly one .gguf
    assert len(calls) == 1 and first.path == second.path
    assert sorted(os.listdir(cache)) == [os.path.basename(first.path)]  # no temporary directory left
    st = os.stat(src)
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.warns(UserWarning):
        third = mmsuite.load(src)
    assert len(calls) == 2 and third.path != first.path


def test_directory_dispatch(tmp_path, cache):
    assert gguf_convert.gguf_source(os.path.join(DATA, "lm", "llama_gqa")) is None
    assert gguf_convert.gguf_source(tmp_path) is None
    fixture_to_gguf("qwen2_tied", tmp_path / "a.gguf")
    assert gguf_convert.gguf_source(tmp_path) == str(tmp_path / "a.gguf")
    fixture_to_gguf("qwen2_tied", tmp_path / "b.gguf")
    with pytest.raises(ConfigError, match="2 GGUF files"):
        mmsuite.load(str(tmp_path))


def test_unsupported_models_name_the_problem(tmp_path, cache):
    p = write(tmp_path / "gpt.gguf", [("general.architecture", STR, "gptneox")])
    with pytest.raises(UnsupportedError, match="general.architecture 'gptneox'"):
        mmsuite.load(p)
    src = read_gguf(fixture_to_gguf("qwen2_tied", tmp_path / "q.gguf"))
    md = [(k, src.metadata_types[k], v) for k, v in src.metadata.items()]
    extra = [("blk.0.ffn_gate_exps.weight", F32, [4], bytes(16))]
    tensors = [(n, F32, list(reversed(t.shape)), bytes(t.data)) for n, t in src.tensors.items()] + extra
    with pytest.raises(UnsupportedError, match="ffn_gate_exps"):
        mmsuite.load(write(tmp_path / "moe.gguf", md, tensors))
    md_yarn = md + [("qwen2.rope.scaling.type", STR, "yarn")]
    with pytest.raises(UnsupportedError, match="yarn"):
        mmsuite.load(write(tmp_path / "yarn.gguf", md_yarn, tensors[:-1]))
    assert not any(e.startswith(".") for e in os.listdir(cache))  # failed conversions leave nothing


# ==== tokenizers ==================================================================================

def tokenizer_metadata(case, pre, add_bos):
    """tests/data/tokenizers/<case>/tokenizer.json as llama.cpp stores it in a GGUF."""
    t = json.load(open(os.path.join(DATA, "tokenizers", case, "tokenizer.json"), encoding="utf-8"))
    vocab = dict(t["model"]["vocab"])
    special = {a["id"] for a in t["added_tokens"] if a["special"]}
    user_defined = {a["id"] for a in t["added_tokens"] if not a["special"]}
    vocab.update({a["content"]: a["id"] for a in t["added_tokens"]})
    tokens = [None] * len(vocab)
    for tok, i in vocab.items():
        tokens[i] = tok
    merges = [" ".join(m) if isinstance(m, list) else m for m in t["model"]["merges"]]
    conf = json.load(open(os.path.join(DATA, "tokenizers", case, "tokenizer_config.json")))
    eos = vocab[conf["eos_token"]]
    return [("tokenizer.ggml.model", STR, "gpt2"), ("tokenizer.ggml.pre", STR, pre),
            ("tokenizer.ggml.tokens", ARR, (STR, tokens)),
            ("tokenizer.ggml.token_type", ARR, (I32, [3 if i in special else 4 if i in user_defined else 1 for i in range(len(tokens))])),
            ("tokenizer.ggml.merges", ARR, (STR, merges)), ("tokenizer.ggml.eos_token_id", U32, eos),
            ("tokenizer.ggml.add_bos_token", BOOL, add_bos),
            ("tokenizer.chat_template", STR, "{% for m in messages %}<|im_start|>{{ m.content }}{% endfor %}")] + (
            [("tokenizer.ggml.bos_token_id", U32, vocab[conf["bos_token"]])] if conf.get("bos_token") else [])


def model_with_tokenizer(tmp_path, tok_md):
    src = read_gguf(fixture_to_gguf("qwen2_tied", tmp_path / "base.gguf"))
    md = [(k, src.metadata_types[k], v) for k, v in src.metadata.items() if not k.startswith("tokenizer.")]
    md = [(k, t, v) for k, t, v in md if k != "qwen2.vocab_size"] + tok_md
    tensors = [(n, F32, list(reversed(t.shape)), bytes(t.data)) for n, t in src.tensors.items()]
    return write(tmp_path / "tok.gguf", md, tensors)


@pytest.mark.parametrize("case,pre,add_bos", [("hf_llama3", "llama-bpe", True), ("hf_qwen2", "qwen2", False)])
def test_byte_level_tokenizer_matches_transformers_ids(tmp_path, cache, case, pre, add_bos):
    src = model_with_tokenizer(tmp_path, tokenizer_metadata(case, pre, add_bos))
    out = gguf_convert.converted_dir(src)
    tok = load_tokenizer(out)
    cases = [json.loads(line) for line in open(os.path.join(DATA, "tokenizers", f"{case}.jsonl"), encoding="utf-8")]
    cases = [c for c in cases if "text" in c and "ids" in c]
    assert len(cases) > 400
    bad = [c["case"] for c in cases if list(tok.encode(c["text"])) != c["ids"]]
    assert bad == []
    assert tok.chat_template.startswith("{% for m in messages %}")
    cfg = json.load(open(os.path.join(out, "tokenizer_config.json")))
    conf = json.load(open(os.path.join(DATA, "tokenizers", case, "tokenizer_config.json")))
    assert cfg["eos_token"] == conf["eos_token"] and cfg.get("bos_token") == conf.get("bos_token")


def test_smollm_pre_tokenizer_splits_digits(tmp_path, cache):
    md = tokenizer_metadata("hf_qwen2", "smollm", False)
    tok = load_tokenizer(gguf_convert.converted_dir(model_with_tokenizer(tmp_path, md)))
    ids = list(tok.encode("x 2024"))
    assert [tok.decode([i]) for i in ids][-4:] == ["2", "0", "2", "4"]
    assert tok.decode(ids) == "x 2024"
    im = tok.convert_tokens_to_ids(["<|im_start|>"])[0]
    assert list(tok.encode("<|im_start|>hi"))[0] == im  # control tokens stay whole


def test_unknown_pre_tokenizer_warns_and_loads_without_tokenizer(tmp_path, cache):
    md = tokenizer_metadata("hf_qwen2", "some-new-pre", False)
    with pytest.warns(UserWarning, match="tokenizer.ggml.pre 'some-new-pre' is not supported"):
        m = mmsuite.load(model_with_tokenizer(tmp_path, md))
    assert not os.path.exists(os.path.join(m.path, "tokenizer.json"))
    with pytest.raises(FileNotFoundError):
        m.tokenizer
