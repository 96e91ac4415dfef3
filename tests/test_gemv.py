"""The decode GEMV kernel (csrc/cpu/gemv.c) against a float64 NumPy reference, for every ISA variant.

y (M, N) = act(x (M, K) @ W (N, K)^T + b) [+ residual], M <= 8. Sizes are awkward on purpose:
K = 1, 7, 64, 100, 2051 (tails of every vector width), N = 1, 17, 1000, 5632 (remainder row blocks,
uneven thread splits). bf16 weights are checked twice: tightly against a reference that rounds W
to bf16 as stored (the kernel widens W and keeps x in fp32, so only fp32 accumulation error is
left), and against the unrounded fp32 product with tests/test_ops.py's bf16 linear tolerance."""
import functools
import math

import numpy as np
import pytest

import mmsuite
from mmsuite import _C

ISA_MAX = {"scalar": 0, "avx2": 1, "avx512": 2}[_C.cpu_info()["isa"]]
# scalar/generic, AVX2, AVX-512 (as available), and AVX-512 + AMX tiles (bf16 W, M >= 2) where present
ISAS = sorted({min(i, ISA_MAX) for i in (0, 1, 2)} | ({3} if ISA_MAX == 2 and _C.cpu_info()["amx_bf16"] else set()))
PATH_DISPATCH, PATH_GEMV, PATH_ONEDNN = 0, 1, 2

ACTS = {0: lambda x: x,
        1: lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2))),
        2: lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))),
        3: lambda x: x / (1 + np.exp(-1.702 * x)),
        4: lambda x: np.maximum(x, 0),
        5: lambda x: x / (1 + np.exp(-x))}


def to_bf16(a):
    """float32 -> bfloat16 bits (uint16), round to nearest even (as mms_f32_to_bf16)."""
    u = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def from_bf16(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


@functools.lru_cache(maxsize=None)
def weights(N, K):
    rng = np.random.default_rng(N * 10007 + K)
    return rng.standard_normal((N, K), dtype=np.float32) / np.float32(math.sqrt(K))


@functools.lru_cache(maxsize=None)
def inputs(M, K):
    return np.random.default_rng(M * 131 + K).standard_normal((M, K), dtype=np.float32)


def reference(x, w, wdt, b=None, act=0, r=None):
    """float64 reference; for bf16 W, x and W are rounded to bf16 first, as the kernels do."""
    if wdt == "bfloat16":
        x, w = from_bf16(to_bf16(x)), from_bf16(to_bf16(w))
    ref = x.astype(np.float64) @ w.T.astype(np.float64)
    if b is not None:
        ref = ref + b
    ref = ACTS[act](ref)
    if r is not None:
        ref = ref + r
    return ref


def run(x, w, wdt, b=None, act=0, r=None, isa=-1, path=PATH_GEMV, out_bf16=False):
    M, N = x.shape[0], w.shape[0]
    out = np.full((M, N), 0xFFFF, np.uint16) if out_bf16 else np.full((M, N), np.nan, np.float32)
    _C.op_linear(x, w, b, act, r, out, wdt, isa, path)
    return from_bf16(out) if out_bf16 else out


def assert_close(out, ref, rel=1e-5, out_bf16=False):
    scale = max(1.0, float(np.abs(ref).max()))
    assert np.all(np.isfinite(out))
    if out_bf16:  # one bf16 rounding of the result: half an ulp = 2^-9 relative
        np.testing.assert_allclose(out, ref, rtol=2 ** -8, atol=rel * scale)
    else:
        np.testing.assert_allclose(out, ref, rtol=0, atol=rel * scale)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("wdt", ["float32", "bfloat16"])
@pytest.mark.parametrize("N", [1, 17, 1000, 5632])
@pytest.mark.parametrize("K", [1, 7, 64, 100, 2048 + 3])
def test_gemv_shapes(K, N, wdt, isa):
    w = weights(N, K)
    for M in (1, 2, 3, 5, 8):
        x = inputs(M, K)
        assert_close(run(x, w, wdt, isa=isa), reference(x, w, wdt), rel=2e-6 * math.sqrt(K) + 1e-6)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("wdt", ["float32", "bfloat16"])
@pytest.mark.parametrize("act", sorted(ACTS))
def test_gemv_epilogue(act, wdt, isa):
    """bias, every activation, residual (added after the activation), f32 and bf16 outputs."""
    M, K, N = 3, 100, 1000
    rng = np.random.default_rng(act)
    x, w = inputs(M, K), weights(N, K)
    b = rng.standard_normal(N, dtype=np.float32)
    r = rng.standard_normal((M, N), dtype=np.float32)
    for bias, res in ((None, None), (b, None), (None, r), (b, r)):
        ref = reference(x, w, wdt, bias, act, res)
        for out_bf16 in (False, True):
            out = run(x, w, wdt, bias, act, res, isa=isa, out_bf16=out_bf16)
            assert_close(out, ref, rel=2e-5, out_bf16=out_bf16)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("wdt", ["float32", "bfloat16"])
def test_gemv_bf16_input(wdt, isa):
    """x given as bf16 (what a bf16 model's activations are): the kernel widens or uses it as is."""
    M, K, N = 5, 2048 + 3, 17
    xb = to_bf16(inputs(M, K))
    w = weights(N, K)
    ref = reference(from_bf16(xb), w, wdt)
    out = np.full((M, N), np.nan, np.float32)
    _C.op_linear(xb, w, None, 0, None, out, wdt, isa, PATH_GEMV)
    assert_close(out, ref, rel=2e-6 * math.sqrt(K) + 1e-6)


@pytest.mark.parametrize("isa", ISAS)
def test_gemv_bf16_within_linear_tolerance(isa):
    """Against the unrounded fp32 product, with tests/test_ops.py's bf16 linear tolerance."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 256), dtype=np.float32)
    w = rng.standard_normal((128, 256), dtype=np.float32) / 16
    out = run(x, w, "bfloat16", isa=isa)
    ref = x.astype(np.float64) @ w.T
    cos = (out * ref).sum() / np.linalg.norm(out) / np.linalg.norm(ref)
    assert cos > 0.9999
    assert np.abs(out - ref).max() < 0.05 * np.abs(ref).max()


@pytest.mark.parametrize("wdt", ["float32", "bfloat16"])
def test_gemv_matches_onednn_and_dispatch(wdt):
    """The backend sends few rows here and more to oneDNN; both match the reference (oneDNN rounds
    x to bf16 for bf16 weights, hence the looser tolerance there)."""
    K, N = 2048 + 3, 1000
    w = weights(N, K)
    for M in (1, 4, 8, 9):
        x = inputs(M, K)
        ref = reference(x, w, wdt)
        dispatched = run(x, w, wdt, path=PATH_DISPATCH)
        onednn = run(x, w, wdt, path=PATH_ONEDNN)
        tol_onednn = 2e-6 * math.sqrt(K) if wdt == "float32" else 1e-2
        assert_close(onednn, ref, rel=tol_onednn)
        assert_close(dispatched, ref, rel=tol_onednn)
        if M <= 4:  # below the crossover, certainly the GEMV kernel
            np.testing.assert_array_equal(dispatched, run(x, w, wdt, path=PATH_GEMV))


@pytest.mark.parametrize("wdt", ["float32", "bfloat16"])
def test_gemv_same_result_for_any_thread_count(wdt):
    """Each output is one thread's dot product in a fixed order: bitwise equal for 1 or 2 threads."""
    x, w = inputs(4, 2048 + 3), weights(5632, 2048 + 3)
    n0 = mmsuite.get_num_threads()
    try:
        mmsuite.set_num_threads(1)
        one = run(x, w, wdt)
        mmsuite.set_num_threads(2)
        two = run(x, w, wdt)
    finally:
        mmsuite.set_num_threads(n0)
    np.testing.assert_array_equal(one, two)


def test_gemv_rejects_more_than_8_rows():
    x, w = inputs(9, 64), weights(17, 64)
    with pytest.raises(ValueError, match="rows"):
        run(x, w, "float32", path=PATH_GEMV)


def test_gemv_rotating_copies_and_timing():
    """The benchmark form: (copies, N, K) weights cycled by reps calls; returns seconds."""
    w3 = np.stack([weights(17, 64), -weights(17, 64)])
    x = inputs(2, 64)
    out = np.empty((2, 17), np.float32)
    t = _C.op_linear(x, w3, None, 0, None, out, "float32", -1, PATH_GEMV, 3)  # copies 0, 1, 0
    assert t > 0
    assert_close(out, reference(x, weights(17, 64), "float32"))


def test_measure_read_bandwidth_is_plausible():
    bw = _C.measure_read_bandwidth(bytes=64 << 20, threads=1, reps=2)
    assert 1e8 < bw < 1e13  # 0.1 GB/s .. 10 TB/s
    assert _C.measure_read_bandwidth(bytes=8 << 20, threads=2, reps=1) > 0
