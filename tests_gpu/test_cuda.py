"""CUDA backend checks, run by tools/gpu_check.sh on a GPU machine (not part of CPU CI):
every model fixture on device='cuda' within the fixture tolerance (fp32) / bf16 bound, and
GPU vs CPU agreement on a larger random model."""
import glob
import json
import os

import numpy as np
import pytest

import mmsuite
from mmsuite.conformance import main as conformance_main

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "data")
CASES = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(DATA, "conformance", "*", "*", "case.json")))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("case_dir", CASES, ids=os.path.basename)
def test_fixture_on_cuda(case_dir, dtype, tmp_path):
    out = tmp_path / "r.json"
    rc = conformance_main([case_dir, "--dtype", dtype, "--device", "cuda", "--json", str(out)])
    report = json.load(open(out))[case_dir]
    bad = {k: v for k, v in report.items() if not v["passed"]}
    assert rc == 0 and not bad, bad


def test_cuda_matches_cpu_on_demo_model():
    from mmsuite._demo import demo_checkpoint
    path = demo_checkpoint()
    rng = np.random.default_rng(0)
    px = rng.standard_normal((5, 3, 224, 224), dtype=np.float32)
    ids = rng.integers(1, 49000, (4, 77)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, 40:] = 0
    cpu = mmsuite.load(path, device="cpu").forward(pixel_values=px, input_ids=ids, attention_mask=mask)
    gpu = mmsuite.load(path, device="cuda").forward(pixel_values=px, input_ids=ids, attention_mask=mask)
    for k in ("image_embeds", "text_embeds", "vision_last_hidden_state", "logits_per_image"):
        ref = cpu[k]
        assert np.abs(gpu[k] - ref).max() <= 1e-4 * np.abs(ref).max(), k


@pytest.mark.parametrize("shape,n_img", [("b32", 2), ("l14-336", 1)])
def test_cuda_matches_cpu_on_real_shapes(shape, n_img):
    """Real CLIP shapes (head_dim 64; 50 and 577 tokens; causal 77-token text) vs the CPU path."""
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(DATA), "..", "benchmarks"))
    from bench_clip import SHAPES, make_checkpoint
    path = make_checkpoint(shape, os.environ.get("BENCH_CACHE", "/tmp/mmsuite-bench"))
    S = SHAPES[shape]["vision"]["image_size"]
    rng = np.random.default_rng(1)
    px = rng.standard_normal((n_img, 3, S, S), dtype=np.float32)
    ids = rng.integers(1, 49000, (2, 77)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, 30:] = 0
    cpu = mmsuite.load(path, device="cpu")
    gpu = mmsuite.load(path, device="cuda")
    for k, c, g in (("vision", cpu.encode_image(pixel_values=px), gpu.encode_image(pixel_values=px)),
                    ("text", cpu.encode_text(input_ids=ids, attention_mask=mask),
                     gpu.encode_text(input_ids=ids, attention_mask=mask))):
        for name in c:
            ref, got = c[name], g[name]
            if name.endswith("last_hidden_state") and k == "text":
                ref, got = ref[mask.astype(bool)], got[mask.astype(bool)]
            assert np.abs(got.astype(np.float64) - ref).max() <= 1e-4 * np.abs(ref).max(), name
    g16 = mmsuite.load(path, device="cuda", dtype="bfloat16").encode_image(pixel_values=px)["image_embeds"]
    cos = (g16 * cpu.encode_image(pixel_values=px)["image_embeds"]).sum(1)
    assert cos.min() >= 0.999
