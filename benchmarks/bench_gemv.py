"""Decode-time linear layers (GEMV, M = 1..8 rows): GB/s of weights streamed by the hand-written
kernel (csrc/cpu/gemv.c) and by oneDNN on the same shapes, against the memory read bandwidth
measured in the same run (mmsuite._C.measure_read_bandwidth), so the numbers read as a roofline.

Shapes are TinyLlama-1.1B's per-token GEMVs (hidden 2048, FFN 5632, 32 query heads / 4 kv heads
of 64, vocab 32000): q/o (2048 -> 2048), k/v (2048 -> 256), gate/up (2048 -> 5632), down
(5632 -> 2048), lm_head (2048 -> 32000). W is (N, K) as in a checkpoint; every measurement cycles
through copies of W totalling --total-mib (default 1 GiB, past the L3) so W comes from memory as
in real decoding, where each layer's weights were evicted since the last token. Variants run
interleaved, --repeats rounds, medians reported.

    python benchmarks/bench_gemv.py [--threads 2] [--repeats 7] [--total-mib 1024] [--m 1 4]

A private build keeps the timing away from concurrent in-place rebuilds:
    python setup.py build_ext --build-lib /tmp/gemvbuild --build-temp build/tmp_gemv
    mkdir -p /tmp/gemvbuild/mmsuite/data && cp mmsuite/*.py /tmp/gemvbuild/mmsuite/ \\
        && cp mmsuite/data/* /tmp/gemvbuild/mmsuite/data/
    MMSUITE_SRC=/tmp/gemvbuild python benchmarks/bench_gemv.py"""
import argparse
import json
import math
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.environ.get("MMSUITE_SRC", os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine_info  # noqa: E402

SHAPES = [("q/o proj", 2048, 2048), ("k/v proj", 2048, 256), ("gate/up", 2048, 5632),
          ("down", 5632, 2048), ("lm_head", 2048, 32000)]  # (name, K, N)
PATH_GEMV, PATH_ONEDNN = 1, 2


def weight_copies(K, N, dtype, total_bytes, rng):
    """(C, N, K) copies of one random W, C * N * K * size >= total_bytes: float32, or uint16 bf16 bits."""
    w = (rng.standard_normal((N, K), dtype=np.float32) * np.float32(0.02))
    if dtype == "bfloat16":
        w = (w.view(np.uint32) >> 16).astype(np.uint16)
    copies = max(1, math.ceil(total_bytes / w.nbytes))
    out = np.empty((copies,) + w.shape, w.dtype)
    out[:] = w  # distinct memory per copy; identical values are fine for timing
    return out


def main():
    import mmsuite
    from mmsuite import _C

    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--total-mib", type=int, default=1024)
    ap.add_argument("--m", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"])
    ap.add_argument("--shapes", nargs="+", help="only these shape names (e.g. lm_head)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    mmsuite.set_num_threads(args.threads)
    total = args.total_mib << 20
    info = machine_info()
    print(json.dumps(info))
    rng = np.random.default_rng(0)
    rows = []
    bw_all = []
    for dtype in args.dtypes:
        for name, K, N in SHAPES:
            if args.shapes and name not in args.shapes:
                continue
            w3 = weight_copies(K, N, dtype, total, rng)
            wbytes = w3[0].nbytes
            for M in args.m:
                x = rng.standard_normal((M, K), dtype=np.float32)
                out = np.empty((M, N), np.float32)

                def run(path):  # seconds per call, averaged over one pass through all copies
                    return _C.op_linear(x, w3, None, 0, None, out, dtype, -1, path, len(w3)) / len(w3)

                run(PATH_GEMV), run(PATH_ONEDNN)  # warm-up: primitives, page tables, threads
                t = {"gemv": [], "onednn": [], "bw": []}
                for _ in range(args.repeats):  # interleaved, so drifts in the machine hit all alike
                    t["gemv"].append(run(PATH_GEMV))
                    t["onednn"].append(run(PATH_ONEDNN))
                    t["bw"].append(_C.measure_read_bandwidth(bytes=total, threads=args.threads, reps=1))
                bw = statistics.median(t["bw"])
                bw_all += t["bw"]
                g, d = statistics.median(t["gemv"]), statistics.median(t["onednn"])
                row = {"shape": name, "K": K, "N": N, "M": M, "dtype": dtype, "w_mib": wbytes / 2 ** 20,
                       "gemv_us": g * 1e6, "gemv_gbs": wbytes / g / 1e9, "gemv_pct": 100 * wbytes / g / bw,
                       "onednn_us": d * 1e6, "onednn_gbs": wbytes / d / 1e9, "onednn_pct": 100 * wbytes / d / bw,
                       "read_bw_gbs": bw / 1e9}
                rows.append(row)
                print(f"{dtype:8s} {name:9s} K={K:5d} N={N:5d} M={M}  gemv {row['gemv_gbs']:5.1f} GB/s "
                      f"({row['gemv_pct']:3.0f}%, {row['gemv_us']:7.1f} us)  oneDNN {row['onednn_gbs']:5.1f} GB/s "
                      f"({row['onednn_pct']:3.0f}%)  x{d / g:4.2f}  read bw {bw / 1e9:5.1f} GB/s", flush=True)
            del w3
    print(f"measured read bandwidth ({args.threads} threads, {args.total_mib} MiB): median "
          f"{statistics.median(bw_all) / 1e9:.1f} GB/s, range {min(bw_all) / 1e9:.1f}-{max(bw_all) / 1e9:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "threads": args.threads, "results": rows}, f, indent=1)


if __name__ == "__main__":
    main()
