"""Decoder ops through the device test hooks (mmsuite._C.dev_*: arrays copied to the backend,
the op run through ops.h, outputs copied back) against float64 NumPy references, on awkward
sizes: head_dim 12 / 80 / 200, grouped-query ratios 1..16, sliding windows, strided rows,
bf16 KV caches and outputs.

DEVICE is "cpu" here; tests_gpu/test_cuda_decoder.py runs these same tests with DEVICE = "cuda",
where every result is also compared with the CPU backend's."""
import numpy as np
import pytest

from mmsuite import _C

DEVICE = "cpu"
RTOL = 2e-5          # fp32 results vs the float64 reference, scaled by max|ref|
CROSS_RTOL = 2e-5    # another device vs the CPU backend
BF16_RTOL = 1.0 / 128  # one bf16 rounding of the output


def scaled(got, ref):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))


def to_bf16(x):
    """float32 -> bfloat16 bits (uint16), round to nearest even (as the engine)."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def from_bf16(b):
    return (np.asarray(b, np.uint16).astype(np.uint32) << 16).view(np.float32)


def as_f32(a):
    return from_bf16(a) if a.dtype == np.uint16 else a


def run(fn, *args, out_index):
    """Run hook fn on DEVICE (and, off the CPU, also on the CPU: results must agree)."""
    args = list(args)
    fresh = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    fn(DEVICE, *args)
    got = args[out_index]
    if DEVICE != "cpu":
        fn("cpu", *fresh)
        cpu = fresh[out_index]
        tol = BF16_RTOL if got.dtype == np.uint16 else CROSS_RTOL
        e = scaled(as_f32(got), as_f32(cpu))
        assert e <= tol, f"{DEVICE} vs cpu: {e:.3g} > {tol}"
    return got


# ---- RMSNorm ------------------------------------------------------------------------------------

@pytest.mark.parametrize("rows,dim", [(1, 32), (7, 100), (33, 2048), (3, 4097)])
@pytest.mark.parametrize("out_bf16", [False, True])
def test_rmsnorm(rows, dim, out_bf16):
    rng = np.random.default_rng(rows * dim)
    x = (rng.standard_normal((rows, dim)) * 3).astype(np.float32)
    g = (1 + 0.3 * rng.standard_normal(dim)).astype(np.float32)
    y = np.zeros((rows, dim), np.uint16 if out_bf16 else np.float32)
    got = as_f32(run(_C.dev_rmsnorm, x, g, 1e-6, y, out_index=3))
    x64 = x.astype(np.float64)
    ref = g * (x64 / np.sqrt((x64 ** 2).mean(1, keepdims=True) + 1e-6))
    assert scaled(got, ref) <= (BF16_RTOL if out_bf16 else RTOL)


# ---- RoPE ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("rows,heads,hd,rot,pad", [(1, 4, 12, 12, 0), (5, 3, 64, 32, 7), (300, 2, 128, 128, 5),
                                                    (130, 1, 256, 256, 0), (2, 5, 80, 80, 3)])
def test_rope(rows, heads, hd, rot, pad):
    rng = np.random.default_rng(rows + hd)
    stride = heads * hd + pad
    x = rng.standard_normal((rows, stride)).astype(np.float32)
    pos = rng.integers(0, 5000, rows).astype(np.int64)
    inv = (1.0 / 10000.0 ** (np.arange(0, rot, 2) / rot)).astype(np.float32)
    got = run(_C.dev_rope, x.copy(), heads, hd, rot, pos, inv, 0.75, out_index=0)
    ang = (pos.astype(np.float32)[:, None] * inv[None, :]).astype(np.float64)  # the fp32 product
    c, s = np.cos(ang) * 0.75, np.sin(ang) * 0.75
    ref = x.astype(np.float64)
    half = rot // 2
    for h in range(heads):
        x0, x1 = ref[:, h * hd:h * hd + half].copy(), ref[:, h * hd + half:h * hd + rot].copy()
        ref[:, h * hd:h * hd + half] = x0 * c - x1 * s
        ref[:, h * hd + half:h * hd + rot] = x1 * c + x0 * s
    assert scaled(got, ref) <= 1e-5  # cos/sin of angles up to 5000 rad: a few ulp apart between libms
    # untouched: the unrotated tail of each head and the row padding
    for h in range(heads):
        np.testing.assert_array_equal(got[:, h * hd + rot:(h + 1) * hd], x[:, h * hd + rot:(h + 1) * hd])
    np.testing.assert_array_equal(got[:, heads * hd:], x[:, heads * hd:])


# ---- gated MLP product ----------------------------------------------------------------------------

ACTS = {"silu": lambda v: v / (1 + np.exp(-v)), "relu": lambda v: np.maximum(v, 0),
        "gelu_pytorch_tanh": lambda v: 0.5 * v * (1 + np.tanh(0.7978845608028654 * (v + 0.044715 * v ** 3)))}


@pytest.mark.parametrize("rows,F,gpad,upad", [(1, 5, 0, 3), (9, 1000, 4, 0), (64, 5632, 0, 0)])
@pytest.mark.parametrize("act", sorted(ACTS))
@pytest.mark.parametrize("out_bf16", [False, True])
def test_glu(rows, F, gpad, upad, act, out_bf16):
    rng = np.random.default_rng(F)
    gate = (3 * rng.standard_normal((rows, F + gpad))).astype(np.float32)
    up = rng.standard_normal((rows, F + upad)).astype(np.float32)
    out = np.zeros((rows, F), np.uint16 if out_bf16 else np.float32)
    got = as_f32(run(_C.dev_glu, gate, up, F, act, out, out_index=4))
    ref = ACTS[act](gate[:, :F].astype(np.float64)) * up[:, :F]
    assert scaled(got, ref) <= (BF16_RTOL if out_bf16 else RTOL)


# ---- KV-cache row stores ------------------------------------------------------------------------------

@pytest.mark.parametrize("rows,cols,ds,ss", [(1, 8, 8, 24), (13, 96, 128, 300), (257, 512, 512, 1536)])
@pytest.mark.parametrize("bf16", [False, True])
def test_store_rows(rows, cols, ds, ss, bf16):
    rng = np.random.default_rng(rows)
    src = rng.standard_normal((rows, ss)).astype(np.float32)
    fill = rng.standard_normal((rows, ds)).astype(np.float32)
    dst = to_bf16(fill) if bf16 else fill.copy()
    got = run(_C.dev_store_rows, dst.copy(), src, cols, out_index=0)
    want = dst.copy()
    want[:, :cols] = to_bf16(src[:, :cols]) if bf16 else src[:, :cols]
    np.testing.assert_array_equal(got, want)  # exact: a copy (bf16: round to nearest even)


# ---- attention over a KV cache ---------------------------------------------------------------------

def kv_reference(q, k, v, H, KVH, hd, window, scale, n_q):
    n_kv = k.shape[0]
    G = H // KVH
    out = np.zeros((n_q, H * hd))
    for i in range(n_q):
        p = n_kv - n_q + i
        lo = max(0, p - window + 1) if window > 0 else 0
        for h in range(H):
            kvh = h // G
            qh = q[i, h * hd:(h + 1) * hd].astype(np.float64)
            kk = k[lo:p + 1, kvh * hd:(kvh + 1) * hd].astype(np.float64)
            vv = v[lo:p + 1, kvh * hd:(kvh + 1) * hd].astype(np.float64)
            s = kk @ qh * scale
            w = np.exp(s - s.max())
            out[i, h * hd:(h + 1) * hd] = (w / w.sum()) @ vv
    return out


KV_CASES = [  # n_q, n_kv, heads, kv_heads, head_dim, window
    (1, 1, 4, 2, 12, 0),
    (1, 37, 4, 1, 8, 0),
    (1, 700, 32, 4, 64, 0),        # TinyLlama decode: split over blocks
    (1, 3000, 14, 2, 64, 0),       # Qwen2-0.5B ratio 7, 64 splits
    (3, 50, 6, 6, 80, 0),
    (5, 400, 8, 1, 128, 100),      # sliding window, multi-query
    (2, 129, 18, 2, 96, 0),        # 9 heads per kv head: two head chunks
    (1, 64, 16, 1, 256, 0),        # 16 per kv head, head_dim 256
    (37, 60, 4, 2, 200, 7),        # many queries (chunked prefill over a cache), window < n_q
    (1, 6000, 4, 4, 32, 4096),
]


@pytest.mark.parametrize("case", KV_CASES, ids=lambda c: "q%d_kv%d_h%d_%d_hd%d_w%d" % c)
@pytest.mark.parametrize("kv_bf16", [False, True])
def test_kv_attention(case, kv_bf16):
    n_q, n_kv, H, KVH, hd, window = case
    rng = np.random.default_rng(n_kv * 7 + hd)
    qpad, kvpad, opad = 3, 5, 2
    q = (2 * rng.standard_normal((n_q, H * hd + qpad))).astype(np.float32)
    k = rng.standard_normal((n_kv, KVH * hd + kvpad)).astype(np.float32)
    v = rng.standard_normal((n_kv, KVH * hd + kvpad)).astype(np.float32)
    if kv_bf16:
        k, v = to_bf16(k), to_bf16(v)
    scale = 1.0 / np.sqrt(hd)
    for out_bf16 in (False, True):
        fill = np.full((n_q, H * hd + opad), 7.0, np.float32)
        out = to_bf16(fill) if out_bf16 else fill
        got = run(_C.dev_kv_attention, q, k, v, H, KVH, hd, window, scale, out.copy(), out_index=8)
        ref = kv_reference(q, as_f32(k), as_f32(v), H, KVH, hd, window, scale, n_q)
        e = scaled(as_f32(got)[:, :H * hd], ref)
        assert e <= (BF16_RTOL if out_bf16 else 1e-4), e
        np.testing.assert_array_equal(got[:, H * hd:], out[:, H * hd:])  # row padding untouched


# ---- attention over fresh keys: grouped-query heads, sliding window, masks -------------------------

def attn_reference(q, k, v, H, KVH, hd, causal, window, mask, scale):
    B, n_q, _ = q.shape
    n_kv = k.shape[1]
    G = H // KVH
    out = np.zeros((B, n_q, H * hd))
    for b in range(B):
        for i in range(n_q):
            off = i + n_kv - n_q
            ok = np.ones(n_kv, bool)
            if causal:
                ok &= np.arange(n_kv) <= off
            if window > 0:
                ok &= np.arange(n_kv) > off - window
            if mask is not None:
                ok &= mask[b] != 0
            if not ok.any():
                continue
            for h in range(H):
                kvh = h // G
                s = k[b][:, kvh * hd:(kvh + 1) * hd].astype(np.float64) @ q[b, i, h * hd:(h + 1) * hd] * scale
                s = np.where(ok, s, -np.inf)
                w = np.exp(s - s.max())
                out[b, i, h * hd:(h + 1) * hd] = (w / w.sum()) @ v[b][:, kvh * hd:(kvh + 1) * hd]
    return out


ATTN_CASES = [  # B, n_q, n_kv, heads, kv_heads, head_dim, causal, window, masked
    (1, 22, 22, 4, 2, 8, 1, 6, False),      # the Mistral fixture's shape
    (2, 70, 70, 4, 1, 12, 1, 0, False),
    (1, 130, 130, 8, 2, 64, 1, 33, False),  # windows across key tiles
    (1, 97, 97, 6, 3, 128, 1, 0, False),
    (2, 40, 40, 4, 2, 160, 1, 9, False),    # head_dim > 128: the untiled kernel
    (1, 1, 9, 4, 2, 64, 1, 4, False),       # one query
    (2, 33, 33, 4, 4, 32, 0, 0, True),      # key mask, no GQA (encoder style)
    (1, 17, 40, 8, 2, 64, 1, 10, False),    # queries at the end of a longer key set
]


@pytest.mark.parametrize("case", ATTN_CASES, ids=lambda c: "b%d_q%d_kv%d_h%d_%d_hd%d_c%d_w%d_m%d" % c)
def test_attention_gqa_window(case):
    B, n_q, n_kv, H, KVH, hd, causal, window, masked = case
    rng = np.random.default_rng(n_q * 31 + hd)
    q = (2 * rng.standard_normal((B, n_q, H * hd + 4))).astype(np.float32)
    k = rng.standard_normal((B, n_kv, KVH * hd + 2)).astype(np.float32)
    v = rng.standard_normal((B, n_kv, KVH * hd + 2)).astype(np.float32)
    mask = None
    if masked:
        mask = np.ones((B, n_kv), np.int64)
        mask[1, n_kv // 2:] = 0
    scale = 1.0 / np.sqrt(hd)
    ref = attn_reference(q, k, v, H, KVH, hd, causal, window, mask, scale)
    for out_bf16 in (False, True):
        out = np.zeros((B, n_q, H * hd), np.uint16 if out_bf16 else np.float32)
        got = run(_C.dev_attention, q, k, v, H, KVH, hd, causal, window, mask, scale, out, out_index=10)
        e = scaled(as_f32(got), ref)
        assert e <= (BF16_RTOL if out_bf16 else 1e-4), e


def test_hook_errors():
    x = np.zeros((2, 8), np.float32)
    with pytest.raises(ValueError, match="device"):
        _C.dev_rmsnorm("tpu", x, np.ones(8, np.float32), 1e-6, x.copy())
    with pytest.raises(ValueError):  # kv heads do not divide heads
        _C.dev_kv_attention(DEVICE, np.zeros((1, 24), np.float32), np.zeros((4, 16), np.float32),
                            np.zeros((4, 16), np.float32), 3, 2, 8, 0, 1.0, np.zeros((1, 24), np.float32))
