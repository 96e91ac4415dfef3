"""Next-token sampler (mmsuite._C.sample / rng_new) against transformers' logits processors.

transformers' generate() applies RepetitionPenaltyLogitsProcessor, then (do_sample only)
TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper, softmax and a multinomial draw.
The references here are those classes when torch + transformers are importable (dev venv), else
a numpy transcription of them (checked against the classes by test_numpy_reference_matches_hf).
Draws use our own generator (xoshiro256**), so only the distribution can be compared: every
drawn id must lie in the set HF leaves finite, every id HF keeps with non-negligible probability
must be drawn, and on a small vocabulary the frequencies must match HF's probabilities.
"""

import numpy as np
import pytest

from mmsuite import _C


import torch  # test-only references, installed by tools/setup.sh
from transformers.generation import logits_process as lp

HF = (torch, lp)


# ---- references -------------------------------------------------------------------------------

def np_penalty(logits, hist, penalty):
    """RepetitionPenaltyLogitsProcessor on one row (history ids < 0 are padding)."""
    w = logits.astype(np.float32).copy()
    if penalty != 1.0:
        ids = np.unique(hist[hist >= 0])
        s = logits[ids]
        w[ids] = np.where(s < 0, s * np.float32(penalty), s / np.float32(penalty))
    return w


def np_warp(w, temperature=1.0, top_k=0, top_p=1.0):
    """Temperature, TopK, TopP warpers on one row -> scores with -inf for removed ids."""
    w = (w / np.float32(temperature)).astype(np.float32)
    if top_k and top_k < len(w):
        kth = np.sort(w)[-top_k]
        w = np.where(w < kth, -np.inf, w).astype(np.float32)
    if top_p < 1.0:
        order = np.argsort(w, kind="stable")
        sw = w[order].astype(np.float64)
        p = np.exp(sw - sw.max())
        cum = np.cumsum(p / p.sum())
        remove = cum <= 1 - top_p
        remove[-1] = False
        w = w.copy()
        w[order[remove]] = -np.inf
    return w


def hf_process(logits, hist, penalty=1.0, temperature=1.0, top_k=0, top_p=1.0, do_sample=True):
    """HF's processors (as generate() orders them) on one row."""
    ids = torch.from_numpy(hist[hist >= 0].astype(np.int64))[None]
    s = torch.from_numpy(logits.astype(np.float32).copy())[None]
    procs = []
    if penalty != 1.0:
        procs.append(lp.RepetitionPenaltyLogitsProcessor(float(penalty)))
    if do_sample:
        if temperature != 1.0:
            procs.append(lp.TemperatureLogitsWarper(float(temperature)))
        if top_k:
            procs.append(lp.TopKLogitsWarper(top_k=int(top_k)))
        if top_p < 1.0:
            procs.append(lp.TopPLogitsWarper(top_p=float(top_p)))
    for p in procs:
        s = p(ids, s)
    return s[0].numpy()


def probs(w):
    e = np.exp(w.astype(np.float64) - np.max(w))
    return e / e.sum()


def sample(logits, hist=None, seed=0, **kw):
    logits = np.ascontiguousarray(logits, np.float32)
    if logits.ndim == 1:
        logits = logits[None]
    if hist is None:
        hist = np.full((logits.shape[0], 1), -1, np.int64)
    return _C.sample(logits, np.ascontiguousarray(hist, np.int64), _C.rng_new(seed), **kw)


def random_case(seed, n=64, V=50, H=12):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((n, V)) * 3).astype(np.float32)  # plenty of negative values
    hist = rng.integers(0, V, size=(n, H))
    hist[:, 1::3] = hist[:, ::3][:, : hist[:, 1::3].shape[1]]  # repeated ids
    for i in range(n):  # right-padded with -1, different lengths
        hist[i, rng.integers(0, H + 1):] = -1
    return logits, hist


# ---- greedy + repetition penalty -------------------------------------------------------------

@pytest.mark.parametrize("penalty", [1.0, 1.3, 2.0, 0.7])
def test_greedy_is_argmax_after_repetition_penalty(penalty):
    logits, hist = random_case(1)
    got = sample(logits, hist, do_sample=False, repetition_penalty=penalty)
    want = np.array([np.argmax(hf_process(l, h, penalty, do_sample=False)) for l, h in zip(logits, hist)])
    np.testing.assert_array_equal(got, want)
    if penalty != 1.0:  # the penalty changes some choices on this data
        assert np.any(want != logits.argmax(1))
    assert np.array_equal(want, [np.argmax(np_penalty(l, h, penalty)) for l, h in zip(logits, hist)])


def test_penalty_sign_rule_and_once_per_id():
    # id 0 positive (divided), id 1 negative (multiplied), id 0 repeated in history: once only
    logits = np.array([[3.0, -1.0, 2.5, -1.2]], np.float32)
    hist = np.array([[0, 0, 0, 1]])
    assert sample(logits, hist, do_sample=False, repetition_penalty=2.0)[0] == 2  # 3 / 2 = 1.5 < 2.5
    logits = np.array([[3.0, -1.0, 1.4, -1.2]], np.float32)
    # once: 3/2 = 1.5 > 1.4 -> id 0 (three times would give 0.375 -> id 2)
    assert sample(logits, hist, do_sample=False, repetition_penalty=2.0)[0] == 0
    # negative scores are multiplied: -1 * 2 = -2 < -1.2
    logits = np.array([[-5.0, -1.0, -9.0, -1.2]], np.float32)
    assert sample(logits, np.array([[1]]), do_sample=False, repetition_penalty=2.0)[0] == 3
    # a penalty < 1 rewards: -1.2 * 0.5 = -0.6 > -1.0
    assert sample(logits, np.array([[3]]), do_sample=False, repetition_penalty=0.5)[0] == 3


def test_greedy_consumes_no_randomness():
    logits, hist = random_case(2)
    r = _C.rng_new(5)
    before = bytes(r)
    _C.sample(logits, hist, r, do_sample=False)
    assert bytes(r) == before
    _C.sample(logits, hist, r, do_sample=True)
    assert bytes(r) != before


# ---- sampling: support and frequencies -------------------------------------------------------

WARP_CASES = [
    dict(temperature=1.0, top_k=0, top_p=1.0),
    dict(temperature=0.7, top_k=5, top_p=1.0),
    dict(temperature=1.3, top_k=0, top_p=0.6),
    dict(temperature=0.8, top_k=8, top_p=0.7),
    dict(temperature=2.0, top_k=3, top_p=0.9, repetition_penalty=1.5),
    dict(temperature=1.0, top_k=1, top_p=1.0),
    dict(temperature=0.5, top_k=0, top_p=0.05),  # only the top id survives top-p
    dict(temperature=1.0, top_k=100, top_p=1.0),  # top_k > V: no-op
]


def _boundary_safe(w, top_p):
    """True when no cumulative mass lies within 1e-4 of 1 - top_p (float rounding could flip it)."""
    if top_p >= 1.0:
        return True
    sw = np.sort(w[np.isfinite(w)]).astype(np.float64)
    cum = np.cumsum(np.exp(sw - sw.max()) / np.exp(sw - sw.max()).sum())
    return np.min(np.abs(cum - (1 - top_p))) > 1e-4


@pytest.mark.parametrize("params", WARP_CASES, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_sampled_support_equals_hf_kept_set(params):
    params = dict(params)
    penalty = params.pop("repetition_penalty", 1.0)
    rng = np.random.default_rng(11)
    V, N = 40, 3000
    checked = 0
    for trial in range(6):
        logits = (rng.standard_normal(V) * 2.5).astype(np.float32)
        hist = rng.integers(0, V, size=6)
        w = hf_process(logits, hist, penalty, **params)
        if not _boundary_safe(np_warp(np_penalty(logits, hist, penalty), params["temperature"], params["top_k"]),
                              params["top_p"]):
            continue
        kept = set(np.flatnonzero(np.isfinite(w)).tolist())
        p = probs(w)
        drawn = set()
        for seed in (1, 2, 3):
            ids = sample(np.tile(logits, (N, 1)), np.tile(hist, (N, 1)), seed=seed, do_sample=True,
                         repetition_penalty=penalty, **params)
            drawn |= set(ids.tolist())
        assert drawn <= kept, f"drawn ids outside HF's kept set: {sorted(drawn - kept)}"
        likely = {i for i in kept if p[i] > 2e-3}
        assert likely <= drawn, f"ids HF keeps were never drawn: {sorted(likely - drawn)}"
        if params["top_k"] == 1 or params["top_p"] <= 0.05:
            assert len(kept) == 1 and drawn == kept
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("params", [dict(temperature=0.7, top_k=5, top_p=0.95),
                                    dict(temperature=1.5, top_k=0, top_p=0.8),
                                    dict(temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.8)])
def test_frequencies_match_hf_probabilities(params):
    params = dict(params)
    penalty = params.pop("repetition_penalty", 1.0)
    logits = np.array([1.2, -0.4, 0.3, 2.0, -1.5, 0.8, 1.0, -0.1], np.float32)
    hist = np.array([3, 0, 3, -1])
    p = probs(hf_process(logits, hist, penalty, **params))
    N = 40000
    counts = np.zeros(len(logits))
    for seed in (7, 8):
        ids = sample(np.tile(logits, (N, 1)), np.tile(hist, (N, 1)), seed=seed, do_sample=True,
                     repetition_penalty=penalty, **params)
        counts += np.bincount(ids, minlength=len(logits))
    n = counts.sum()
    assert np.all(counts[p == 0] == 0)
    k = p > 0
    chi2 = np.sum((counts[k] - n * p[k]) ** 2 / (n * p[k]))
    df = k.sum() - 1
    # chi-square 99.9% quantile is < df + 4.5 * sqrt(2 df) + 5 for df <= 7
    assert chi2 < df + 4.5 * np.sqrt(2 * df) + 5, (chi2, df, counts / n, p)
    # and each frequency within 5 standard errors
    se = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(counts / n - p) <= 5 * se + 1e-12), (counts / n, p)


def test_top_k_keeps_ties():
    # HF: scores < k-th largest are removed, so ties with the k-th value stay
    logits = np.array([5.0, 3.0, 3.0, 1.0, 3.0], np.float32)
    ids = sample(np.tile(logits, (4000, 1)), seed=3, do_sample=True, top_k=2)
    assert set(ids.tolist()) == {0, 1, 2, 4}
    if HF is not None:
        assert set(np.flatnonzero(np.isfinite(hf_process(logits, np.array([-1]), top_k=2))).tolist()) == {0, 1, 2, 4}


def test_infinite_logits():
    logits = np.array([-np.inf, 0.5, -np.inf, 0.2, -np.inf], np.float32)
    ids = sample(np.tile(logits, (2000, 1)), seed=4, do_sample=True, temperature=0.9)
    assert set(ids.tolist()) == {1, 3}
    assert sample(logits, do_sample=False)[0] == 1
    with pytest.raises(ValueError):
        sample(np.full(5, -np.inf, np.float32), do_sample=True)


# ---- determinism -----------------------------------------------------------------------------------

def test_determinism():
    logits, hist = random_case(3, n=200)
    kw = dict(do_sample=True, temperature=1.2, top_k=20, top_p=0.9, repetition_penalty=1.1)
    a = sample(logits, hist, seed=123, **kw)
    b = sample(logits, hist, seed=123, **kw)
    c = sample(logits, hist, seed=124, **kw)
    np.testing.assert_array_equal(a, b)
    assert np.mean(a != c) > 0.3
    # the generator advances: two calls on one rng differ, and equal one call over both halves
    r = _C.rng_new(9)
    x = _C.sample(logits[:100], hist[:100], r, **kw)
    y = _C.sample(logits[100:], hist[100:], r, **kw)
    z = _C.sample(logits, hist, _C.rng_new(9), **kw)
    np.testing.assert_array_equal(np.concatenate([x, y]), z)
    r1, r2 = _C.rng_new(0), _C.rng_new(0)
    assert bytes(r1) == bytes(r2) and bytes(_C.rng_new(1)) != bytes(r1)
    assert bytes(_C.rng_new(2**64 - 1)) != bytes(r1)


# ---- invalid parameters ----------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [
    dict(do_sample=True, temperature=0.0),
    dict(do_sample=True, temperature=-1.0),
    dict(do_sample=True, temperature=float("nan")),
    dict(do_sample=True, top_p=0.0),
    dict(do_sample=True, top_p=1.5),
    dict(do_sample=True, top_p=-0.1),
    dict(top_k=-1),
    dict(do_sample=True, top_k=-3),
    dict(repetition_penalty=0.0),
    dict(repetition_penalty=-1.2),
    dict(do_sample=True, repetition_penalty=float("nan")),
])
def test_invalid_params(kw):
    logits, hist = random_case(4, n=2)
    with pytest.raises(ValueError):
        _C.sample(logits, hist, _C.rng_new(0), **kw)


def test_invalid_arrays():
    logits, hist = random_case(5, n=3)
    r = _C.rng_new(0)
    with pytest.raises(ValueError):
        _C.sample(logits[0], hist, r)  # 1-D logits
    with pytest.raises(ValueError):
        _C.sample(logits, hist[:2], r)  # history rows != logits rows
    with pytest.raises(ValueError):
        _C.sample(logits, hist[:, 0], r)  # 1-D history
    with pytest.raises(TypeError):
        _C.sample(logits, hist, b"not an rng")
    with pytest.raises((TypeError, ValueError)):
        _C.sample(logits, hist, bytearray(8))
    # greedy ignores the sampling parameters, as generate() does
    assert _C.sample(logits, hist, r, do_sample=False, temperature=0.0, top_p=0.0).shape == (3,)


def test_numpy_reference_matches_hf():
    logits, hist = random_case(6, n=20)
    for params in WARP_CASES:
        params = dict(params)
        pen = params.pop("repetition_penalty", 1.0)
        for l, h in zip(logits, hist):
            a = hf_process(l, h, pen, **params)
            b = np_warp(np_penalty(l, h, pen), **params)
            assert np.array_equal(np.isfinite(a), np.isfinite(b))
            np.testing.assert_allclose(a[np.isfinite(a)], b[np.isfinite(b)], rtol=1e-6)
