"""Each CPU kernel against a float64 NumPy reference, at awkward sizes, for every ISA variant."""
import math

import numpy as np
import pytest

from mmsuite import _C

ISAS = [0, 1, 2]  # scalar/generic, AVX2, AVX-512 (clamped to what the CPU has)
ISA_MAX = {"scalar": 0, "avx2": 1, "avx512": 2}[_C.cpu_info()["isa"]]


def ref_attention(q, k, v, heads, causal, mask):
    B, Tq, A = q.shape
    Tk = k.shape[1]
    hd = A // heads
    out = np.zeros((B, Tq, A))
    for b in range(B):
        for h in range(heads):
            qs = q[b, :, h * hd:(h + 1) * hd].astype(np.float64)
            ks = k[b, :, h * hd:(h + 1) * hd].astype(np.float64)
            vs = v[b, :, h * hd:(h + 1) * hd].astype(np.float64)
            s = qs @ ks.T / math.sqrt(hd)
            allowed = np.ones((Tq, Tk), bool)
            if causal:
                allowed &= np.arange(Tk)[None, :] <= np.arange(Tq)[:, None] + (Tk - Tq)
            if mask is not None:
                allowed &= mask[b][None, :].astype(bool)
            s = np.where(allowed, s, -np.inf)
            mx = s.max(axis=1, keepdims=True)
            e = np.where(allowed, np.exp(s - np.where(np.isfinite(mx), mx, 0)), 0)
            den = e.sum(axis=1, keepdims=True)
            p = np.divide(e, den, out=np.zeros_like(e), where=den > 0)
            out[b, :, h * hd:(h + 1) * hd] = p @ vs
    return out


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("B,Tq,Tk,heads,hd,causal,use_mask", [
    (1, 1, 1, 1, 1, False, False),
    (2, 7, 7, 3, 5, True, True),
    (3, 17, 17, 2, 16, False, True),
    (2, 1, 33, 4, 12, False, False),
    (1, 50, 50, 12, 64, False, False),
    (2, 13, 29, 5, 7, True, False),
    (1, 77, 77, 8, 64, True, True),
])
def test_attention(isa, B, Tq, Tk, heads, hd, causal, use_mask):
    rng = np.random.default_rng(B * 100 + Tq + Tk + heads + hd)
    A = heads * hd
    q = rng.standard_normal((B, Tq, A), dtype=np.float32) * 2
    k = rng.standard_normal((B, Tk, A), dtype=np.float32) * 2
    v = rng.standard_normal((B, Tk, A), dtype=np.float32)
    mask = None
    if use_mask:
        mask = (rng.random((B, Tk)) > 0.3).astype(np.int64)
        mask[:, 0] = 1
    out = np.full((B, Tq, A), np.nan, np.float32)
    _C.op_attention(q, k, v, out, heads, int(causal), mask, min(isa, ISA_MAX))
    ref = ref_attention(q, k, v, heads, causal, mask)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, ref, rtol=0, atol=2e-5 * max(1.0, np.abs(ref).max()))


@pytest.mark.parametrize("isa", ISAS)
def test_attention_fully_masked_rows_are_zero_not_nan(isa):
    q = np.ones((1, 3, 4), np.float32)
    k = np.ones((1, 3, 4), np.float32)
    v = np.ones((1, 3, 4), np.float32)
    mask = np.zeros((1, 3), np.int64)
    out = np.full((1, 3, 4), np.nan, np.float32)
    _C.op_attention(q, k, v, out, 1, 0, mask, min(isa, ISA_MAX))
    assert np.all(out == 0)


@pytest.mark.parametrize("rows,dim", [(1, 1), (3, 7), (5, 33), (64, 768), (2, 1000)])
def test_layernorm(rows, dim):
    rng = np.random.default_rng(dim)
    x = (rng.standard_normal((rows, dim)) * 3 + 1).astype(np.float32)
    g = rng.standard_normal(dim).astype(np.float32)
    b = rng.standard_normal(dim).astype(np.float32)
    out = np.empty_like(x)
    _C.op_layernorm(x, g, b, 1e-5, out)
    xd = x.astype(np.float64)
    mu = xd.mean(1, keepdims=True)
    var = ((xd - mu) ** 2).mean(1, keepdims=True)
    ref = (xd - mu) / np.sqrt(var + 1e-5) * g + b
    np.testing.assert_allclose(out, ref, rtol=0, atol=2e-5 * np.abs(ref).max())


ACTS = {0: lambda x: x,
        1: lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2))),
        2: lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))),
        3: lambda x: x / (1 + np.exp(-1.702 * x)),
        4: lambda x: np.maximum(x, 0),
        5: lambda x: x / (1 + np.exp(-x))}


@pytest.mark.parametrize("act", sorted(ACTS))
@pytest.mark.parametrize("M,K,N,bias,residual", [(1, 1, 1, False, False), (7, 13, 5, True, True),
                                                 (33, 64, 17, True, False), (50, 768, 96, False, True)])
def test_linear_fp32(act, M, K, N, bias, residual):
    rng = np.random.default_rng(M * K + N + act)
    x = rng.standard_normal((M, K), dtype=np.float32)
    w = rng.standard_normal((N, K), dtype=np.float32) / math.sqrt(K)
    b = rng.standard_normal(N, dtype=np.float32) if bias else None
    r = rng.standard_normal((M, N), dtype=np.float32) if residual else None
    out = np.empty((M, N), np.float32)
    _C.op_linear(x, w, b, act, r, out, "float32")
    ref = x.astype(np.float64) @ w.T.astype(np.float64)
    if bias:
        ref = ref + b
    ref = ACTS[act](ref)
    if residual:
        ref = ref + r
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4 * max(1.0, np.abs(ref).max()))


def test_linear_bf16_close_to_fp32():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 256), dtype=np.float32)
    w = rng.standard_normal((128, 256), dtype=np.float32) / 16
    out = np.empty((40, 128), np.float32)
    _C.op_linear(x, w, None, 0, None, out, "bfloat16")
    ref = x.astype(np.float64) @ w.T
    cos = (out * ref).sum() / np.linalg.norm(out) / np.linalg.norm(ref)
    assert cos > 0.9999
    assert np.abs(out - ref).max() < 0.05 * np.abs(ref).max()


@pytest.mark.parametrize("B,T,heads,hd,causal,use_mask,lowp", [
    (1, 200, 4, 64, False, False, 0), (2, 130, 3, 32, True, True, 0), (1, 577, 16, 64, False, False, 0),
    (2, 150, 2, 64, True, False, 1)])
def test_attention_gemm_path(B, T, heads, hd, causal, use_mask, lowp):
    """Sequences >= 128 tokens take the oneDNN GEMM path (fp32, or bf16 fpmath for bf16 models)."""
    rng = np.random.default_rng(T + heads)
    A = heads * hd
    q = rng.standard_normal((B, T, A), dtype=np.float32)
    k = rng.standard_normal((B, T, A), dtype=np.float32)
    v = rng.standard_normal((B, T, A), dtype=np.float32)
    mask = None
    if use_mask:
        mask = np.ones((B, T), np.int64)
        mask[1, T // 2:] = 0
    out = np.full((B, T, A), np.nan, np.float32)
    _C.op_attention_backend(q, k, v, out, heads, int(causal), mask, lowp)
    ref = ref_attention(q, k, v, heads, causal, mask)
    tol = 2e-5 if not lowp else 2e-2
    np.testing.assert_allclose(out, ref, rtol=0, atol=tol * max(1.0, np.abs(ref).max()))


@pytest.mark.parametrize("rows,cols", [(1, 1), (3, 7), (5, 16), (4, 33), (2, 1000)])
def test_softmax(rows, cols):
    rng = np.random.default_rng(cols)
    x = (rng.standard_normal((rows, cols)) * 5).astype(np.float32)
    ref = np.exp(x.astype(np.float64) - x.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    _C.op_softmax(x)
    np.testing.assert_allclose(x, ref, rtol=0, atol=1e-6)
