"""Decoders and LLaVA on the CUDA backend, run by tools/gpu_check.sh on a GPU machine.

* Every decoder op (rmsnorm, rope, glu, store_rows, kv_attention, GQA / sliding-window
  attention) on awkward sizes: tests/test_decoder_ops.py run with DEVICE = "cuda", each result
  checked against a float64 reference AND against the CPU backend.
* The causal-LM suite tests/test_decoder.py (prefill, cached decode, packing, chunked prefill,
  greedy ids, bf16, fp32 + bf16 KV cache, truncate / copy, embeddings input, errors) with every
  model loaded on device='cuda', against the transformers fixtures in tests/data/lm/*: fp32
  within 1e-4 scaled (cuBLAS fp32 GEMMs, no TF32), greedy ids equal, bf16 within the documented
  0.08 bound.
* LLaVA (tests/data/conformance/llava*/) on CUDA vs the CPU backend; the conformance runner
  itself on device='cuda' is test_cuda.py::test_fixture_on_cuda (all cases, fp32 and bf16).
* The Python API (mmsuite.load(..., device='cuda')): greedy and beam search equal to the CPU.

Skipped only when the machine has no CUDA device; a build without the CUDA backend on a GPU
machine fails (the loaders raise UnsupportedError)."""
import glob
import importlib.util
import os
import sys

import numpy as np
import pytest

import mmsuite
from mmsuite import _C

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)  # test_decoder imports conftest (DATA)


def _gpu_present():
    if glob.glob("/dev/nvidia[0-9]*"):
        return True
    try:
        import torch
        return bool(torch.cuda.is_available())
    except Exception:
        return False


pytestmark = pytest.mark.skipif(not _gpu_present(), reason="no CUDA device on this machine")


def _clone(fname, name, **overrides):
    """A private copy of a CPU test module with some globals replaced (DEVICE, bounds)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(TESTS, fname))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    vars(mod).update(overrides)
    return mod


# ---- the op tests, on cuda (each also compared with the CPU backend) -------------------------------

_ops = _clone("test_decoder_ops.py", "cuda_test_decoder_ops", DEVICE="cuda")
for _name in [n for n in vars(_ops) if n.startswith("test_")]:
    globals()["test_ops_" + _name[5:]] = getattr(_ops, _name)

# ---- the causal-LM suite, models on cuda -----------------------------------------------------------

_dec = _clone("test_decoder.py", "cuda_test_decoder", DEVICE="cuda", BF16_RTOL=0.08)
_MODEL_TESTS = ["test_prefill_logits_all", "test_cached_decode", "test_dynamic_rope_packing_is_per_sequence",
                "test_dynamic_rope_cached_differs_from_one_shot", "test_packed_prefill", "test_packed_continuation",
                "test_chunked_prefill", "test_greedy", "test_bf16_compute", "test_fp32_compute_bf16_kv_cache",
                "test_bf16_stored_weights_fp32_compute", "test_truncate_and_copy", "test_embeds_input",
                "test_errors_forward"]
for _name in _MODEL_TESTS:
    globals()["test_lm_" + _name[5:]] = getattr(_dec, _name)


def test_lm_models_are_on_cuda():
    """The suite above really ran on the GPU: its models were loaded with device='cuda' (a CPU
    model maps fp32 weights without copies; a CUDA one owns device copies)."""
    h = _dec.model("llama_gqa")
    assert _dec.DEVICE == "cuda"
    cpu = _C.lm_info(_C.lm_load(_dec.data("llama_gqa")["dir"]))
    assert _C.lm_info(h)["weight_bytes_owned"] > cpu["weight_bytes_owned"]


@pytest.mark.parametrize("name", ["llama_gqa", "mistral_window", "opt_preln", "qwen2_tied_bf16"])
def test_lm_cuda_matches_cpu(name):
    """Same checkpoint on both backends: prefill + 20 cached decode steps agree to fp32 rounding."""
    D = _dec.data(name)
    p = D["prompts"][1]
    out = {}
    for dev in ("cpu", "cuda"):
        h = _C.lm_load(D["dir"], device=dev)
        st = _C.lm_state_new(h, 2, 192 if "opt" not in name else 64)
        lg = [_C.lm_forward(st, np.array([1]), np.array([len(p)]), ids=p, logits_all=True)]
        t = int(lg[0][-1].argmax())
        for _ in range(20 if "opt" not in name else 10):
            lg.append(_C.lm_forward(st, np.array([1]), np.array([1]), ids=np.array([t])))
            t = int(lg[-1][-1].argmax())
        out[dev] = np.concatenate(lg)
    e = _dec.scaled(out["cuda"], out["cpu"])
    assert e <= 1e-5, e
    np.testing.assert_array_equal(out["cuda"].argmax(1), out["cpu"].argmax(1))


def test_python_api_on_cuda():
    """mmsuite.load(..., device='cuda') for a language model: greedy = the fixture's ids, beam
    search (cache slots copied on the device) = the CPU's beams."""
    D = _dec.data("llama_gqa")
    m = mmsuite.load(D["dir"], device="cuda")
    assert m.device == "cuda"
    prompts = [list(map(int, p)) for p in D["prompts"]]
    out = m.generate_ids(prompts, max_new_tokens=D["greedy"].shape[1], do_sample=False, eos_token_id=[])
    assert out.sequences == D["greedy"].tolist()
    cpu = mmsuite.load(D["dir"], device="cpu")
    for p in prompts[:2]:
        a = m.generate_ids([p], max_new_tokens=6, num_beams=3, do_sample=False, eos_token_id=[])
        b = cpu.generate_ids([p], max_new_tokens=6, num_beams=3, do_sample=False, eos_token_id=[])
        assert a.sequences == b.sequences
    m.unload()


LLAVA_CASES = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(TESTS, "data", "conformance", "llava*", "*",
                                                                        "case.json")))


@pytest.mark.parametrize("case_dir", LLAVA_CASES, ids=os.path.basename)
def test_llava_cuda_matches_cpu(case_dir):
    """Vision tower + projector + packing + merged prefill, CUDA vs CPU backend (greedy ids:
    the conformance run on cuda in test_cuda.py)."""
    import json
    from mmsuite.llava import load_language_model
    case = json.load(open(os.path.join(case_dir, "case.json")))
    mdir = os.path.join(case_dir, case.get("model", {}).get("dir", "model"))
    px = np.load(os.path.join(case_dir, "pixel_values.npy"))
    sizes_p = os.path.join(case_dir, "image_sizes.npy")
    sizes = np.load(sizes_p) if os.path.exists(sizes_p) else None
    ids = np.load(os.path.join(case_dir, "input_ids.npy"))[0]
    res = {}
    for dev in ("cpu", "cuda"):
        m = load_language_model(mdir, device=dev)
        assert m.device == dev
        feats, _ = m.image_features(px, sizes, intermediates=True)
        emb = m._merge(ids, feats)
        logits = m.forward(inputs_embeds=emb)
        res[dev] = (np.concatenate([np.asarray(f).reshape(-1) for f in feats]), logits)
        m.unload()
    (fc, lc), (fg, lg) = res["cpu"], res["cuda"]
    assert _dec.scaled(fg, fc) <= 1e-4
    assert _dec.scaled(lg, lc) <= 1e-4
    np.testing.assert_array_equal(lg.argmax(-1), lc.argmax(-1))
