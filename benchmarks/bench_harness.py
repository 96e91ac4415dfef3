"""What the evaluation harness costs on top of the models, and what its cache saves.

    python benchmarks/bench_harness.py [--images 256] [--repeats 3]

On the random-weight demo CLIP (ViT-B/32 input size, small width; real OpenAI vocabulary) and a
synthetic captioned image set written to a temp folder, interleaved repeats, median:
  direct      suite.embed(images=paths, texts=captions) (the model work alone)
  cold        MultimodalBenchmark.run_retrieval_benchmark with an empty cache
  warm        the same run again (every embedding from the cache)
  nocache     cache_dir=None (hashing + batching + metrics, no SQLite)
and the scoring alone (retrieval_recall_at_k on the score matrix). Prints the machine and
thread count. The harness overhead is (nocache - direct) / direct."""
import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="mmsuite-bench-harness-")
    os.environ["MMSUITE_CACHE"] = os.path.join(tmp, "mmcache")
    import mmsuite
    from mmsuite import MultimodalBenchmark, MultimodalSuite, metrics
    from mmsuite._demo import demo_checkpoint
    from mmsuite.datasets import ListDataset
    from PIL import Image

    rng = np.random.default_rng(0)
    recs = []
    for i in range(args.images):
        p = os.path.join(tmp, f"img{i}.jpg")
        Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(p, quality=90)
        recs.append({"image": p, "captions": [f"a photo of object number {i}", f"picture {i} of a scene",
                                              f"an image with {i % 7} things"]})
    suite = MultimodalSuite(models={"clip": demo_checkpoint()})
    paths = [r["image"] for r in recs]
    caps = [c for r in recs for c in r["captions"]]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"threads {mmsuite.get_num_threads()}, cpu {mmsuite._C.cpu_info()}")
    print(f"{args.images} images (320x240 JPEG) x 3 captions, demo CLIP, batch 32, {args.repeats} interleaved repeats")

    def direct():
        e = suite.embed(images=paths, texts=caps)
        return e["text"] @ e["image"].T

    def run(cache_dir):
        b = MultimodalBenchmark(suite, cache_dir=cache_dir, progress=False)
        r = b.run_retrieval_benchmark(ListDataset(recs), k_values=[1, 5, 10])
        b.close()
        return r

    times = {k: [] for k in ("direct", "nocache", "cold", "warm", "scoring")}
    direct()  # warm-up
    for rep in range(args.repeats):
        cdir = os.path.join(tmp, f"cache{rep}")
        t = time.perf_counter()
        s = direct()
        times["direct"].append(time.perf_counter() - t)
        t = time.perf_counter()
        metrics.retrieval_recall_at_k(s, np.repeat(np.arange(args.images), 3), [1, 5, 10])
        times["scoring"].append(time.perf_counter() - t)
        for k, cd in (("nocache", None), ("cold", cdir), ("warm", cdir)):
            t = time.perf_counter()
            r = run(cd)
            times[k].append(time.perf_counter() - t)
            if k == "warm":
                assert r["performance"]["computed_items"] == 0
    med = {k: statistics.median(v) for k, v in times.items()}
    n = args.images
    for k in ("direct", "nocache", "cold", "warm", "scoring"):
        print(f"  {k:<8} {med[k]:7.3f} s   ({n / med[k]:8.1f} images/s)   runs: "
              + " ".join(f"{x:.3f}" for x in times[k]))
    print(f"harness overhead without cache: {100 * (med['nocache'] - med['direct']) / med['direct']:+.1f} %; "
          f"with an empty cache: {100 * (med['cold'] - med['direct']) / med['direct']:+.1f} %; "
          f"cached rerun: {med['warm'] / med['cold']:.3f} of the cold run")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
