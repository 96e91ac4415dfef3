"""Cost of the reliability guards (issue 7): NaN / Inf checks ('off' / 'outputs' / 'layers',
csrc/finite.c) and the per-call file check of mapped weights (csrc/mapping.c, one fstat per file
per call, always on).

    python benchmarks/bench_guards.py [--repeats 7]

On random-weight ViT-B/32 CLIP (image batch 8, text batch 8) and TinyLlama-shape (22 layers, bf16)
decode steps, the three finite modes run interleaved, `--repeats` rounds, medians; the overhead
is relative to 'off'. The file check is timed on its own (mmsuite._C.map_read_byte measures map +
check; the per-call cost is the fstat)."""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from common import interleaved, machine_info  # noqa: E402

import mmsuite  # noqa: E402
from mmsuite import _C  # noqa: E402

MODES = ("off", "outputs", "layers")


def moded(fn):
    return {mode: (lambda mode=mode: (mmsuite.set_check_finite(mode), fn())) for mode in MODES}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/mmsuite-bench"))
    args = ap.parse_args()
    print("machine:", machine_info())
    from bench_clip import make_checkpoint
    from bench_llm import TINYLLAMA, ensure_llama
    clip = mmsuite.load(make_checkpoint("b32", args.cache), dtype="float32")
    rng = np.random.default_rng(0)
    px = rng.standard_normal((8, 3, 224, 224), dtype=np.float32)
    ids = rng.integers(1, 49000, (8, 77)).astype(np.int64)
    rows = []
    for name, fn in [("CLIP B/32 fp32 encode_image x8", lambda: clip.encode_image(pixel_values=px)),
                     ("CLIP B/32 fp32 encode_text x8", lambda: clip.encode_text(input_ids=ids))]:
        rows.append((name, interleaved(moded(fn), args.repeats)))
    lm = _C.lm_load(ensure_llama("tinyllama-bf16", TINYLLAMA), dtype="bfloat16")
    st = _C.lm_state_new(lm, 1, 600, "bfloat16", 64)
    prompt = rng.integers(1, 32000, 64).astype(np.int64)
    _C.lm_forward(st, np.array([0]), np.array([64]), ids=prompt)

    def decode8():  # 8 decode steps from a 64-token prefix, then back to it
        for _ in range(8):
            _C.lm_forward(st, np.array([0]), np.array([1]), ids=prompt[:1])
        _C.lm_state_op(st, "truncate", 0, 64)
    rows.append(("TinyLlama-shape bf16, 8 decode steps", interleaved(moded(decode8), args.repeats)))
    mmsuite.set_check_finite("outputs")
    print(f"\n{'workload':40s} " + " ".join(f"{m:>12s}" for m in MODES) + "   outputs/off  layers/off")
    for name, t in rows:
        print(f"{name:40s} " + " ".join(f"{t[m] * 1e3:10.2f}ms" for m in MODES)
              + f"   {100 * (t['outputs'] / t['off'] - 1):+9.2f}%  {100 * (t['layers'] / t['off'] - 1):+9.2f}%")
    # the file check: one fstat per mapped file per call
    f = os.path.join(make_checkpoint("b32", args.cache), "model.safetensors")
    n = 20000
    t0 = time.perf_counter()
    for _ in range(n):
        os.stat(f)
    print(f"\nfile check: one fstat ~ {1e6 * (time.perf_counter() - t0) / n:.2f} us (Python os.stat, an upper bound "
          f"of the C call), done twice per model call")


if __name__ == "__main__":
    main()
