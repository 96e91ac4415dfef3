"""One model shared by 8 threads gives exactly the serial results; an interrupted generation or
benchmark stops cleanly and leaves the model and the result cache usable.

Each family gets a mix of calls that is run serially first, then by 8 threads at once (each its
own shuffled order, released together by a barrier, with a short GIL switch interval to shake
out Python-level races); every threaded result must equal its serial one bit for bit. The
bundled tiny-shapes models (mmsuite/weights) give meaningful outputs; the LM and the Flan-T5
BLIP-2 are the random fixtures of tests/data. Interruption: Generator.stop() from another thread
and a real SIGINT sent to the process, each against a generation that would otherwise run for
seconds, and against a MultimodalBenchmark run. The soak (10,000 calls, RSS) is
benchmarks/soak.py; its figures are in docs/reliability.md."""
import dataclasses
import gc
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

import mmsuite
from mmsuite import MultimodalBenchmark, MultimodalSuite, _C, synth
from mmsuite.datasets import ListDataset
from mmsuite.demo import default_model
from mmsuite.generation import GenerationOutput

DATA = os.path.join(os.path.dirname(__file__), "data")
LM_DIR = os.path.join(DATA, "lm", "llama_gqa")
T5_DIR = os.path.join(DATA, "conformance", "blip2_t5", "tiny_flant5", "model")
THREADS = 8
N_IMAGES = 24  # more than the BLIP-2 / LLaVA feature caches hold (16): threads also evict and recompute
QUESTIONS = ("what colour is the shape?", "what shape is shown?", "how many shapes are there?",
             "where is the shape?")


# ---- helpers ---------------------------------------------------------------------------------

def _same(a, b):
    """Bit-for-bit equality of call results (arrays, strings, numbers, nested containers)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and np.array_equal(a, b))
    if isinstance(a, GenerationOutput):
        return isinstance(b, GenerationOutput) and _same(dataclasses.asdict(a), dataclasses.asdict(b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _hammer(calls, threads=THREADS, repeats=1, seed=0):
    """Run each (name, fn) serially, then `repeats` times from each of `threads` threads in a
    per-thread shuffled order; assert every result equals the serial one. Returns the largest
    number of calls seen in flight at once."""
    ref = [fn() for _, fn in calls]
    orders = [np.random.default_rng(seed + t).permutation(len(calls) * repeats) % len(calls) for t in range(threads)]
    barrier = threading.Barrier(threads)
    got = [[] for _ in range(threads)]
    errors = []
    lock = threading.Lock()
    inflight = [0, 0]  # now, most

    def worker(t):
        try:
            barrier.wait()
            for i in orders[t]:
                with lock:
                    inflight[0] += 1
                    inflight[1] = max(inflight[1], inflight[0])
                try:
                    got[t].append((int(i), calls[i][1]()))
                finally:
                    with lock:
                        inflight[0] -= 1
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(f"thread {t}: {e!r}")

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
        for th in ts:
            th.start()
        for th in ts:
            th.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors[:3]
    assert [len(g) for g in got] == [len(o) for o in orders]
    bad = sorted({calls[i][0] for g in got for i, r in g if not _same(r, ref[i])})
    assert not bad, f"threaded results differ from the serial ones for: {bad}"
    return inflight[1]


def _live_blocks():
    """The C allocator's live blocks once the activation-buffer cache is emptied."""
    gc.collect()
    _C.trim_memory()
    return _C.memory_stats()["live_blocks"]


class _CountSteps:
    """Wraps a Generator's per-step abort check (greedy, sampling and beam search all call it
    once per step) to count decoding steps and see which threads are decoding (test
    instrumentation; monkeypatch it onto the Generator's `_check_abort`). close() parks the
    threads in `hold` at their next check until open()."""

    def __init__(self, gen):
        self.n = 0
        self.threads = set()
        self.parked = set()
        self.hold = set()
        self._gate = threading.Event()
        self._gate.set()
        self._inner = gen._check_abort

    def close(self, idents):
        self.hold = set(idents)
        self._gate.clear()

    def open(self):
        self._gate.set()

    def __call__(self, *a, **kw):
        me = threading.get_ident()
        self.n += 1
        self.threads.add(me)
        if me in self.hold and not self._gate.is_set():
            self.parked.add(me)
            self._gate.wait()
        return self._inner(*a, **kw)


def _wait_for(cond, timeout=60.0):
    t_end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > t_end:
            raise AssertionError("timed out waiting")
        time.sleep(0.001)


class _ArmedSigint:
    """SIGINT raises KeyboardInterrupt (as Python's default handler does) only while armed, so a
    late signal cannot land in pytest itself. A real signal: os.kill(os.getpid(), SIGINT)."""

    def __enter__(self):
        self.armed = True
        self.received = 0
        self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        self.received += 1
        if self.armed:
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        self.armed = False
        signal.signal(signal.SIGINT, self._old)
        return False


def _interrupt_when(cond, action):
    """A thread that runs action() once cond() holds; returns (thread, record) where record
    gets what action returned."""
    record = {}

    def run():
        _wait_for(cond)
        record["value"] = action()
    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th, record


def _sigint():
    os.kill(os.getpid(), signal.SIGINT)


# ---- models ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def images():
    return [synth.sample("heldout", i).image for i in range(N_IMAGES)]


@pytest.fixture(scope="module")
def image_files(tmp_path_factory, images):
    d = tmp_path_factory.mktemp("conc_images")
    paths = []
    for i, im in enumerate(images[:6]):
        p = str(d / f"img{i}.png")
        synth.write_png(p, im)
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def suite():
    return MultimodalSuite(models={"clip": default_model("clip"), "blip2": default_model("captioner"),
                                   "llava": default_model("vlm")})


@pytest.fixture(scope="module")
def long_llava():
    """The tiny-shapes LLaVA with a long context (its Llama uses RoPE: no position table), so a
    generation can run for thousands of steps."""
    return mmsuite.load(default_model("vlm"), context_length=4096)


@pytest.fixture(scope="module")
def lm():
    return mmsuite.load(LM_DIR, context_length=100_000)


# ---- 8 threads, one model: identical to serial -------------------------------------------------

def test_clip_suite_threads_match_serial(suite, images, image_files):
    texts = [synth.sample("heldout", i).caption for i in range(12)]
    shapes = list(synth.SHAPES)
    calls = []
    for i in range(0, N_IMAGES, 4):
        calls.append((f"embed_images[{i}]", lambda i=i: suite.embed(images=images[i:i + 4 + i % 3])["image"]))
        calls.append((f"classify[{i}]", lambda i=i: suite.classify(images[i], shapes, templates=("a photo of a {}.",))))
    for i in range(0, 12, 3):
        calls.append((f"embed_texts[{i}]", lambda i=i: suite.embed(texts=texts[i:i + 3])["text"]))
        calls.append((f"embed_text[{i}]", lambda i=i: suite.embed(text=texts[i])["text"]))
    calls.append(("classify_batch", lambda: suite.classify(images[:5], list(synth.COLOURS))))
    calls.append(("classify_files", lambda: suite.classify(image_files, shapes, templates=("a {}.", "{} shapes"))))
    calls.append(("similarity", lambda: suite.similarity(image_files[:3], texts[:4])))
    assert _hammer(calls) >= 2  # the threads really ran calls at the same time


def test_blip2_threads_match_serial(suite, images, image_files):
    m = suite.model("blip2")
    calls = []
    for i in range(N_IMAGES):
        calls.append((f"caption[{i}]", lambda i=i: m.caption(images[i])))
        calls.append((f"ask[{i}]", lambda i=i: m.ask(images[i], QUESTIONS[i % 4])))
    calls.append(("caption_batch", lambda: m.caption(images[3:9])))
    calls.append(("caption_prompt", lambda: m.caption(images[5], prompt="a photo of")))
    calls.append(("ask_many", lambda: m.ask_many(images[:4], list(QUESTIONS))))
    calls.append(("caption_file", lambda: m.caption(image_files[2])))
    calls.append(("beam", lambda: m.caption(images[7], num_beams=3)))
    _hammer(calls)


def test_llava_threads_match_serial(suite, images, image_files):
    m = suite.model("llava")
    calls = []
    for i in range(N_IMAGES):
        calls.append((f"ask[{i}]", lambda i=i: m.ask(images[i], QUESTIONS[i % 4])))
    for i in range(0, N_IMAGES, 3):
        calls.append((f"stream[{i}]", lambda i=i: list(m.ask(images[i], QUESTIONS[(i + 1) % 4], stream=True))))
        calls.append((f"generate[{i}]", lambda i=i: m.generate("USER: <image>\nDescribe the image. ASSISTANT:",
                                                               images=[images[i]], max_new_tokens=12)))
    calls.append(("ask_many", lambda: m.ask_many(images[:3], list(QUESTIONS[:3]))))
    calls.append(("ask_file", lambda: m.ask(image_files[1], QUESTIONS[0])))
    calls.append(("sampled", lambda: m.ask(images[4], QUESTIONS[1], temperature=0.9, seed=7)))
    _hammer(calls)


def test_causal_lm_threads_match_serial(lm):
    rng = np.random.default_rng(1)
    prompts = [rng.integers(3, 96, int(n)).tolist() for n in rng.integers(2, 40, 12)]
    calls = []
    for i, p in enumerate(prompts):
        calls.append((f"greedy[{i}]", lambda p=p: lm.generate_ids([p], max_new_tokens=24, eos_token_id=[])))
        calls.append((f"sampled[{i}]", lambda p=p, i=i: lm.generate_ids([p], max_new_tokens=16, temperature=0.8,
                                                                          top_k=20, seed=i)))
    calls.append(("batched", lambda: lm.generate_ids(prompts[:5], max_new_tokens=10)))
    calls.append(("beam", lambda: lm.generate_ids([prompts[3]], max_new_tokens=8, num_beams=3)))
    calls.append(("forward", lambda: lm.forward(input_ids=prompts[0])))
    _hammer(calls)


def test_t5_blip2_concurrent_encoder_lengths(monkeypatch):
    """Generations with different encoder lengths at once. Generator used to keep the encoder
    length of the call being set up on itself (self._enc_ctx), so another thread's setup could
    shrink it between _check_prompts and _state: 'set_encoder: 13 encoder rows (the state holds
    1 to 9 per slot)'. A short sleep before each state allocation widens that window."""
    m = mmsuite.load(T5_DIR)
    new_state = m._gen._state

    def slow_state(*a, **kw):
        time.sleep(0.0005)
        return new_state(*a, **kw)
    monkeypatch.setattr(m._gen, "_state", slow_state)
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 255, (40, 50, 3), dtype=np.uint8) for _ in range(3)]
    prompts = [list(range(3, 3 + n)) for n in (1, 6, 14, 30)]
    calls = [(f"img{i}/prompt{len(p)}", lambda i=i, p=p: m.generate(imgs[i], [p], max_new_tokens=6, return_ids=True))
             for i in range(3) for p in prompts]
    _hammer(calls, repeats=6)


def test_gil_released_during_c_calls(suite, images):
    """While one thread is inside a C entry point, another thread keeps running Python: no gap
    in its progress covers most of the call (with the GIL held through the call, one would)."""
    clip = suite.model("clip")
    blip2 = suite.model("blip2")
    llava = suite.model("llava")
    batch = np.stack(images * 3)  # (72, 64, 64, 3) uint8
    px_clip = clip.image_processor(list(batch))
    px_blip = blip2.image_processor(list(batch[:24]))
    px_llava = llava.processor(list(batch[:24]))["pixel_values"]
    ids = np.ascontiguousarray(clip.tokenize([synth.sample("heldout", i).caption for i in range(64)])["input_ids"],
                               dtype=np.int64)
    big = [np.ascontiguousarray(np.kron(im, np.ones((8, 8, 1), np.uint8))) for im in images + images[:8]]  # 512x512
    entry_points = {
        "clip_encode_image": lambda: _C.clip_encode_image(clip._h, px_clip),
        "clip_encode_text": lambda: _C.clip_encode_text(clip._h, ids, None),
        "blip2_image_features": lambda: _C.blip2_image_features(blip2._h, px_blip, intermediates=False),
        "llava_image_features": lambda: _C.llava_image_features(llava._h, px_llava, intermediates=False),
        "preprocess": lambda: clip.image_processor(big),
    }
    threads0 = mmsuite.get_num_threads()
    mmsuite.set_num_threads(1)  # the caller and the spinning thread each get a core
    try:
        for name, fn in entry_points.items():
            fn()
            ok = False
            for _ in range(10):
                ticks = []
                span = {}

                def call():
                    span["t0"] = time.perf_counter()
                    fn()
                    span["t1"] = time.perf_counter()
                th = threading.Thread(target=call)
                th.start()
                while th.is_alive():
                    ticks.append(time.perf_counter())
                th.join()
                t0, t1 = span["t0"], span["t1"]
                inside = [t0] + [t for t in ticks if t0 < t < t1] + [t1]
                if t1 - t0 > 0.004 and max(np.diff(inside)) < 0.5 * (t1 - t0):
                    ok = True
                    break
            assert ok, f"{name}: no Python ran in another thread during the call ({(t1 - t0) * 1e3:.1f} ms)"
    finally:
        mmsuite.set_num_threads(threads0)


# ---- interruption ----------------------------------------------------------------------------

LONG = dict(max_new_tokens=4000, min_new_tokens=4000)  # seconds of decoding if nothing stops it
PROMPT = "USER: <image>\nDescribe the image. ASSISTANT:"


def _reference(m, images):
    return m.generate(PROMPT, images=[images[0]], max_new_tokens=40, min_new_tokens=40)


def _prepare_interrupt(m, images, monkeypatch):
    """(reference text, live C blocks, a step counter on the model's abort check) before a run
    that will be interrupted."""
    before = _reference(m, images)
    blocks = _live_blocks()
    steps = _CountSteps(m._gen)
    monkeypatch.setattr(m._gen, "_check_abort", steps)
    return before, blocks, steps


def test_stop_from_another_thread(long_llava, images, monkeypatch):
    m = long_llava
    before, blocks, steps = _prepare_interrupt(m, images, monkeypatch)

    def stop():
        m.stop()
        return steps.n
    th, at_stop = _interrupt_when(lambda: steps.n >= 5, stop)
    t = time.perf_counter()
    with pytest.raises(KeyboardInterrupt, match="generation aborted"):
        m.generate(PROMPT, images=[images[0]], **LONG)
    th.join()
    assert steps.n - at_stop["value"] <= 1 and steps.n < 100, (steps.n, at_stop)
    assert time.perf_counter() - t < 30
    monkeypatch.undo()
    assert _live_blocks() == blocks  # the interrupted call's KV state is gone
    assert _reference(m, images) == before  # and the model is unchanged, the stop not left pending


def test_stop_reaches_runs_of_every_thread_and_spares_later_calls(long_llava, lm, images, monkeypatch):
    """stop() aborts each generation in flight on the model even when another call starts
    between the stop() and their next step (a new call clears `abort`: that used to swallow
    the stop); calls started after stop() run normally. The running generations are parked at
    their next step while stop() and the new call happen. LLaVA greedy x3, and a plain LM
    greedy + beam search."""
    ref = long_llava.ask(images[1], QUESTIONS[0])
    ref_lm = lm.generate_ids([[1, 5, 9]], max_new_tokens=8)
    runs = [(long_llava, lambda k: long_llava.generate(PROMPT, images=[images[k]], **LONG)) for k in range(3)]
    runs += [(lm, lambda k: lm.generate_ids([[1, 5, 9]], **LONG)),
             (lm, lambda k: lm.generate_ids([[1, 5, 9]], num_beams=2, **LONG))]
    counters = {id(m): _CountSteps(m._gen) for m in (long_llava, lm)}
    for m in (long_llava, lm):
        monkeypatch.setattr(m._gen, "_check_abort", counters[id(m)])
    results = [None] * len(runs)
    idents = [None] * len(runs)

    def run(k):
        idents[k] = threading.get_ident()
        try:
            results[k] = runs[k][1](k)
        except KeyboardInterrupt:
            results[k] = "interrupted"
    ts = [threading.Thread(target=run, args=(k,)) for k in range(len(runs))]
    for th in ts:
        th.start()
    try:
        _wait_for(lambda: all(idents[k] in counters[id(m)].threads for k, (m, _) in enumerate(runs)))
        assert long_llava.ask(images[1], QUESTIONS[0]) == ref  # a call while they run
        for c in counters.values():
            c.close(idents)
        _wait_for(lambda: all(idents[k] in counters[id(m)].parked for k, (m, _) in enumerate(runs)))
        long_llava.stop()
        lm.stop()
        assert long_llava.ask(images[1], QUESTIONS[0]) == ref  # started after stop(): unaffected
        assert _same(lm.generate_ids([[1, 5, 9]], max_new_tokens=8), ref_lm)
        for c in counters.values():
            c.open()
        for th in ts:
            th.join(60)
    finally:
        for c in counters.values():
            c.open()
        while any(th.is_alive() for th in ts):  # never leave a 4000-token run behind
            long_llava.stop()
            lm.stop()
            time.sleep(0.01)
    assert results == ["interrupted"] * len(runs)


@pytest.mark.parametrize("stream", [False, True], ids=["generate", "stream"])
def test_sigint_during_generation(long_llava, images, monkeypatch, stream):
    """A real SIGINT (Ctrl-C) sent to the process while the main thread decodes."""
    m = long_llava
    before, blocks, steps = _prepare_interrupt(m, images, monkeypatch)

    def kill():
        _sigint()
        return steps.n
    caught = False
    with _ArmedSigint() as sig:
        th, at_kill = _interrupt_when(lambda: steps.n >= 5, kill)
        it = None
        try:
            if stream:
                it = m.generate(PROMPT, images=[images[0]], stream=True, **LONG)
                for _ in it:
                    pass
            else:
                m.generate(PROMPT, images=[images[0]], **LONG)
        except KeyboardInterrupt:
            caught = True
        th.join()
        if it is not None:
            it.close()  # an abandoned stream frees its state when closed (or collected)
            del it
    assert caught and sig.received == 1
    assert steps.n - at_kill["value"] <= 2 and steps.n < 4000, (steps.n, at_kill)
    monkeypatch.undo()
    assert _live_blocks() == blocks
    assert _reference(m, images) == before


# ---- an interrupted benchmark resumes ------------------------------------------------------------

@pytest.fixture(scope="module")
def bench_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("conc_bench")
    items, _ = synth.write_split("heldout", 24, str(d / "images"))
    return [{"image": it["image"], "captions": it["captions"]} for it in items]


@pytest.mark.parametrize("how", ["stop", "sigint"])
def test_interrupted_benchmark_resumes(tmp_path, suite, bench_data, how):
    """Captioning (BLIP-2, 24 images in batches of 4, long generations) interrupted once a batch
    is in the cache: KeyboardInterrupt, only whole batches committed, and the rerun computes just the
    rest and gives what an uninterrupted run gives. (tests/test_benchmark.py covers an
    interruption raised by the dataset.)"""
    m = suite.model("blip2")
    gen = dict(max_new_tokens=60, min_new_tokens=60)  # the tiny OPT's context is 128
    b = MultimodalBenchmark(suite, cache_dir=str(tmp_path / "cache"), progress=False)
    committed = lambda: len(b.cache) >= 4  # noqa: E731
    caught = False
    with _ArmedSigint() as sig:
        if how == "sigint":
            th, _ = _interrupt_when(committed, _sigint)
        else:
            done = threading.Event()

            def stopper():  # stop() only reaches running generations: repeat until it lands
                _wait_for(committed)
                while not done.is_set():
                    m.stop()
                    time.sleep(0.002)
            th = threading.Thread(target=stopper, daemon=True)
            th.start()
        try:
            b.run_captioning_benchmark(ListDataset(bench_data), batch_size=4, **gen)
        except KeyboardInterrupt:
            caught = True
        finally:
            if how == "stop":
                done.set()
        th.join()
    assert caught and sig.received == (1 if how == "sigint" else 0)
    n_done = len(b.cache)
    assert 4 <= n_done < len(bench_data) and n_done % 4 == 0
    res = b.run_captioning_benchmark(ListDataset(bench_data), batch_size=4, **gen)
    assert res["performance"]["cached_items"] == n_done
    assert res["performance"]["computed_items"] == len(bench_data) - n_done
    fresh = MultimodalBenchmark(suite, cache_dir=None, progress=False).run_captioning_benchmark(
        ListDataset(bench_data), batch_size=4, **gen)
    assert [r["prediction"] for r in res["items"]] == [r["prediction"] for r in fresh["items"]]
    assert res["metrics"] == fresh["metrics"]


# ---- the soak script runs ----------------------------------------------------------------------

def test_soak_script_smoke(tmp_path):
    """benchmarks/soak.py end to end on a few calls from 3 threads (the 10,000-call figures are in
    docs/reliability.md; a run this short is not held to the 5 % drift)."""
    import importlib.util
    import json
    spec = importlib.util.spec_from_file_location(
        "soak", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "soak.py"))
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    threads0 = mmsuite.get_num_threads()
    try:
        rc = soak.main(["--calls", "140", "--warmup", "70", "--threads", "3", "--sample-every", "35",
                        "--max-drift", "100", "--json", str(tmp_path / "soak.json")])
    finally:
        mmsuite.set_num_threads(threads0)
    res = json.loads((tmp_path / "soak.json").read_text())
    assert rc == 0 and res["ok"] and res["mismatches"] == 0 and res["errors"] == 0
    assert res["python_threads"] == 3 and res["calls"] == 140 and res["distinct_results"] > 0
    assert res["c_end"]["live_blocks_trimmed"] <= res["c_warm"]["live_blocks_trimmed"]
    assert res["rss_min_mb"] > 0 and len(res["rss_trace_mb"]) == 4
