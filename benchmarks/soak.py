"""Soak: many consecutive mixed calls on the bundled tiny-shapes models; memory must stay flat.

    python benchmarks/soak.py [--calls 10000] [--threads 1] [--warmup 500] [--sample-every 250]
                              [--c-threads 1] [--json OUT]

The mix, in turn: CLIP embed_images (4 images), embed_texts (3 captions), classify (one image,
4 shapes); BLIP-2 caption, BLIP-2 ask; LLaVA ask, LLaVA ask streamed. The images cycle over 64
held-out synthetic images (mmsuite.synth), passed as arrays or as PNG paths in turn: more images
than the BLIP-2 / LLaVA feature caches hold (16), so those caches hit, miss and evict all along.
Every result is compared with the first result of the same (call kind, image): a soak also
checks that nothing drifts or gets corrupted over time.

--threads N runs the same calls from N Python threads sharing the same models (each thread takes
the next call number). The first --warmup calls are not measured (caches, allocator arenas and
oneDNN primitives settle). The run stops at the warm-up boundary and at the end with no call in
flight and reads there mmsuite._C.memory_stats() (the C allocator's live blocks / bytes), then
again after _C.trim_memory() (which empties the activation-buffer cache), then RSS
(/proc/self/statm). RSS is also sampled every --sample-every calls in between (buffer cache as
it is); the quarter points of that trace are printed to tell a plateau from a slope.

Exit status 1 when |RSS drift| = |end - warm| / warm > 5 %, when the C allocator holds more
live blocks at the end than after warm-up (both trimmed), or when any result changed; else 0.
"""
import argparse
import itertools
import json
import os
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import mmsuite  # noqa: E402
from mmsuite import MultimodalSuite, _C, synth  # noqa: E402
from mmsuite.demo import default_model  # noqa: E402

N_IMAGES = 64
QUESTIONS = ("what colour is the shape?", "what shape is shown?", "how many shapes are there?",
             "where is the shape?")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": sys.version.split()[0], "mmsuite": mmsuite.__version__,
            "load_avg_start": os.getloadavg()}


def build_calls(suite, tmp):
    """call(k) -> (key, result) for call number k."""
    images = [synth.sample("heldout", i).image for i in range(N_IMAGES)]
    paths = []
    for i, im in enumerate(images):
        p = os.path.join(tmp, f"img{i}.png")
        synth.write_png(p, im)
        paths.append(p)
    texts = [synth.sample("heldout", i).caption for i in range(N_IMAGES)]
    shapes = list(synth.SHAPES)
    blip2, llava = suite.model("blip2"), suite.model("llava")

    def img(i, k):
        return paths[i] if (k // 7) % 2 else images[i]

    kinds = [
        ("embed_images", lambda i, k: suite.embed(images=[img((i + j) % N_IMAGES, k) for j in range(4)])["image"]),
        ("embed_texts", lambda i, k: suite.embed(texts=[texts[(i + j) % N_IMAGES] for j in range(3)])["text"]),
        ("classify", lambda i, k: suite.classify(img(i, k), shapes, templates=("a photo of a {}.", "a {}."))["probs"]),
        ("caption", lambda i, k: blip2.caption(img(i, k))),
        ("ask_blip2", lambda i, k: blip2.ask(img(i, k), QUESTIONS[i % 4])),
        ("ask_llava", lambda i, k: llava.ask(img(i, k), QUESTIONS[(i + 1) % 4])),
        ("ask_llava_stream", lambda i, k: "".join(llava.ask(img(i, k), QUESTIONS[(i + 2) % 4], stream=True))),
    ]

    def call(k):
        name, fn = kinds[k % len(kinds)]
        i = (k // len(kinds) * 5) % N_IMAGES
        return (name, i), fn(i, k)
    return call, [n for n, _ in kinds]


def same(a, b):
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    return a == b


def c_stats():
    raw = _C.memory_stats()
    _C.trim_memory()
    trimmed = _C.memory_stats()
    return {"live_blocks": raw["live_blocks"], "live_bytes": raw["current_bytes"],
            "live_blocks_trimmed": trimmed["live_blocks"], "live_bytes_trimmed": trimmed["current_bytes"]}


class Runner:
    """Runs call numbers [start, stop) from n_threads threads; compares results, samples RSS."""

    def __init__(self, call, n_threads, sample_every):
        self.call, self.n_threads, self.sample_every = call, n_threads, sample_every
        self.refs, self.mismatches, self.errors, self.samples = {}, [], [], []
        self.lock = threading.Lock()

    def run(self, start, stop):
        numbers = iter(range(start, stop))
        done = itertools.count(start + 1)

        def worker():
            while True:
                with self.lock:
                    k = next(numbers, None)
                if k is None:
                    return
                try:
                    key, res = self.call(k)
                except Exception as e:  # noqa: BLE001 - reported and failed below
                    self.errors.append(f"call {k}: {e!r}")
                    continue
                with self.lock:  # a reference is a NumPy copy: C-backed arrays kept here would count as live C blocks
                    ref = self.refs.setdefault(key, np.array(res) if isinstance(res, np.ndarray) else res)
                    n = next(done)
                if not same(ref, res):
                    self.mismatches.append((k, key))
                if n % self.sample_every == 0:
                    self.samples.append((n, rss_bytes()))
        if self.n_threads == 1:
            worker()
            return
        ts = [threading.Thread(target=worker) for _ in range(self.n_threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=10_000, help="measured calls after the warm-up")
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1, help="Python threads sharing the models")
    ap.add_argument("--c-threads", type=int, default=1, help="mmsuite.set_num_threads (compute threads per call)")
    ap.add_argument("--sample-every", type=int, default=250)
    ap.add_argument("--max-drift", type=float, default=5.0, help="percent")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)

    mmsuite.set_num_threads(args.c_threads)
    info = machine()
    info.update(python_threads=args.threads, c_threads=mmsuite.get_num_threads(), calls=args.calls,
                warmup=args.warmup, kernels_isa=_C.cpu_info()["isa"])
    c_before_load = _C.memory_stats()
    suite = MultimodalSuite(models={"clip": default_model("clip"), "blip2": default_model("captioner"),
                                    "llava": default_model("vlm")}, lazy_load=False)
    with tempfile.TemporaryDirectory() as tmp:
        call, kinds = build_calls(suite, tmp)
        runner = Runner(call, args.threads, args.sample_every)
        rss_loaded = rss_bytes()
        t = time.perf_counter()
        runner.run(0, args.warmup)
        t_warm = time.perf_counter() - t
        c_warm = c_stats()  # trims first: both RSS readings are taken with the buffer cache emptied
        rss_warm = rss_bytes()
        runner.samples.clear()
        t = time.perf_counter()
        runner.run(args.warmup, args.warmup + args.calls)
        t_run = time.perf_counter() - t
        c_end = c_stats()
        rss_end = rss_bytes()
    rss = [r for _, r in runner.samples] + [rss_end]
    drift = 100.0 * (rss_end - rss_warm) / rss_warm
    grew = c_end["live_blocks_trimmed"] > c_warm["live_blocks_trimmed"]
    res = dict(info, kinds=kinds, date=time.strftime("%Y-%m-%d"), load_avg_end=os.getloadavg(),
               seconds=round(t_run, 2), calls_per_s=round(args.calls / t_run, 1),
               warmup_calls_per_s=round(args.warmup / t_warm, 1) if t_warm else None,
               rss_loaded_mb=round(rss_loaded / 2**20, 2), rss_warm_mb=round(rss_warm / 2**20, 2),
               rss_end_mb=round(rss_end / 2**20, 2), rss_min_mb=round(min(rss) / 2**20, 2),
               rss_max_mb=round(max(rss) / 2**20, 2), rss_drift_pct=round(drift, 3), rss_samples=len(rss),
               rss_trace_mb=[(n, round(r / 2**20, 2)) for n, r in runner.samples], c_before_load=c_before_load, c_warm=c_warm, c_end=c_end, distinct_results=len(runner.refs),
               mismatches=len(runner.mismatches), errors=len(runner.errors))
    ok = abs(drift) <= args.max_drift and not grew and not runner.mismatches and not runner.errors
    res["ok"] = ok
    print(f"machine: {info['cpu']}, {info['cores']} cores, load avg {info['load_avg_start'][0]:.2f} -> "
          f"{res['load_avg_end'][0]:.2f}; kernels {info['kernels_isa']}")
    print(f"threads: {args.threads} Python x {info['c_threads']} compute; calls: {args.warmup} warm-up + "
          f"{args.calls} measured ({', '.join(kinds)})")
    print(f"speed: {res['calls_per_s']} calls/s ({res['seconds']} s)")
    print(f"RSS MB: loaded {res['rss_loaded_mb']}, warm {res['rss_warm_mb']}, end {res['rss_end_mb']}, "
          f"min {res['rss_min_mb']}, max {res['rss_max_mb']} ({len(rss)} samples); drift {drift:+.3f} %")
    trace = res["rss_trace_mb"]
    if trace:
        quarters = [trace[min(len(trace) - 1, q * len(trace) // 4)] for q in range(1, 4)] + [trace[-1]]
        print("RSS trace MB (call: MB): " + ", ".join(f"{n}: {mb}" for n, mb in quarters))
    for name, s in (("warm", c_warm), ("end", c_end)):
        print(f"C allocator at {name}: {s['live_blocks']} live blocks / {s['live_bytes']} bytes; trimmed "
              f"{s['live_blocks_trimmed']} / {s['live_bytes_trimmed']}")
    print(f"results: {len(runner.refs)} distinct (kind, image) keys, {len(runner.mismatches)} changed, "
          f"{len(runner.errors)} errors{': ' + runner.errors[0] if runner.errors else ''}")
    print("OK" if ok else "FAIL")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
