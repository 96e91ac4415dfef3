"""MultimodalBenchmark end to end on the fixture models (random-weight demo CLIP with the real
vocabulary; the tiny BLIP-2 OPT case with its tokenizer): each task's numbers equal the metric
functions applied to outputs computed directly through the models; cache hits / misses, resume
after an interruption, skipped items, progress bar, reports and the CLI."""
import json
import os
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

import mmsuite
from mmsuite import MultimodalBenchmark, MultimodalSuite
from mmsuite import metrics as M
from mmsuite.__main__ import main as cli_main
from mmsuite.benchmark import model_identity
from mmsuite.datasets import ImageFolder, ListDataset

DATA = os.path.join(os.path.dirname(__file__), "data")
OPT_CASE = os.path.join(DATA, "conformance", "blip2", "tiny_opt")
N = 7


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    os.environ["MMSUITE_CACHE"] = str(tmp_path_factory.mktemp("mmcache"))
    from mmsuite._demo import demo_checkpoint
    return demo_checkpoint()


@pytest.fixture(scope="module")
def opt_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("blip2_opt")
    for f in os.listdir(os.path.join(OPT_CASE, "model")):
        os.symlink(os.path.join(OPT_CASE, "model", f), d / f)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(DATA, "blip2_tokenizers", "tiny_opt", f), d / f)
    return str(d)


@pytest.fixture(scope="module")
def suite(clip_path, opt_dir):
    return MultimodalSuite(models={"clip": clip_path, "blip2": opt_dir})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """N captioned images with a question each, a missing image and a corrupt one."""
    d = tmp_path_factory.mktemp("bench_data")
    rng = np.random.default_rng(0)
    recs = []
    for i in range(N):
        Image.fromarray(rng.integers(0, 255, (30 + i, 40, 3), dtype=np.uint8)).save(d / f"img{i}.png")
        recs.append({"image": f"img{i}.png", "captions": [f"a photo of thing {i}", f"picture {i}"],
                     "question": "what is shown?" if i % 2 else "what colour?", "answer": ["red", "blue"][i % 2],
                     "answer_type": ["other", "yes/no"][i % 2]})
    recs.append({"image": "missing.png", "caption": "gone", "question": "q?", "answer": "a"})
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    recs.append({"image": "corrupt.png", "caption": "bad", "question": "q?", "answer": "a"})
    (d / "data.json").write_text(json.dumps(recs))
    return d


def _bench(tmp_path, suite, **kw):
    return MultimodalBenchmark(suite, cache_dir=str(tmp_path / "cache"), progress=False, **kw)


def _images(data_dir):
    return [str(data_dir / f"img{i}.png") for i in range(N)]


def _skips(res):
    return sorted((os.path.basename(p["file"]), p["problem"].split(":")[0]) for p in res["dataset"]["problems"])


def test_retrieval_matches_direct_computation(tmp_path, suite, data_dir):
    b = _bench(tmp_path, suite)
    res = b.run_retrieval_benchmark(str(data_dir / "data.json"), k_values=[1, 5, 10], batch_size=3)
    assert res == b.results["retrieval"] and isinstance(res, dict)
    caps = [c for i in range(N) for c in (f"a photo of thing {i}", f"picture {i}")]
    e = suite.embed(images=_images(data_dir), texts=caps)
    ref = M.retrieval_recall_at_k(e["text"] @ e["image"].T, np.repeat(np.arange(N), 2), [1, 5])
    for k in (1, 5):
        for d in ("image", "text"):
            assert res["metrics"][f"{d}_retrieval_recall@{k}"] == pytest.approx(ref[f"{d}_retrieval_recall@{k}"], abs=1e-6)
    assert res["settings"]["dropped_k_values"] == [10]  # 10 > 7 images
    # chance: text->image k/N; image->text 1 - C(n-2, k)/C(n, k) with n = 14 texts, 2 positives
    assert res["chance"]["image_retrieval_recall@1"] == pytest.approx(1 / N)
    assert res["chance"]["text_retrieval_recall@1"] == pytest.approx(2 / 14)
    assert res["chance"]["text_retrieval_recall@5"] == pytest.approx(1 - (12 * 11 * 10 * 9 * 8) / (14 * 13 * 12 * 11 * 10))
    assert _skips(res) == [("corrupt.png", "image does not decode"), ("missing.png", "image file not found")]
    assert res["dataset"]["skipped"] == 2 and res["dataset"]["items"] == N + 2
    p = res["performance"]
    assert p["computed_items"] == N + 2 * N and p["cached_items"] == 0  # images + texts
    assert p["batch_sizes"][:3] == [3, 3, 1] and p["item_latency_ms"]["p50"] > 0
    assert p["peak_rss_mb"] >= p["rss_start_mb"] > 0 and p["throughput_items_per_s"] > 0
    assert res["model"]["id"] == model_identity(suite.model("clip"))["id"]
    assert res["environment"]["threads"] == mmsuite.get_num_threads()


def test_cache_hits_and_keys(tmp_path, suite, data_dir):
    b = _bench(tmp_path, suite)
    first = b.run_retrieval_benchmark(str(data_dir / "data.json"), k_values=[1, 5])
    again = b.run_retrieval_benchmark(str(data_dir / "data.json"), k_values=[1, 5])
    assert again["metrics"] == first["metrics"]
    assert again["performance"]["computed_items"] == 0 and again["performance"]["cached_items"] == 3 * N
    assert again["performance"]["cache_misses"] == 1  # only the corrupt image is retried
    # a second metric on the same images reuses their embeddings: only the class prompts are new
    folder = tmp_path / "cls"
    for i, name in enumerate(_images(data_dir)[:4]):
        (folder / ["red", "blue"][i % 2]).mkdir(parents=True, exist_ok=True)
        shutil.copy(name, folder / ["red", "blue"][i % 2] / f"copy{i}.png")  # new names, same bytes
    cls = b.run_classification_benchmark(ImageFolder(str(folder)), templates=["a {} thing"])
    assert cls["performance"]["cached_items"] == 4 and cls["performance"]["computed_items"] == 2  # 2 prompts
    # captions: a changed setting is a different key
    cap1 = b.run_captioning_benchmark(str(data_dir / "data.json"), max_new_tokens=3)
    cap2 = b.run_captioning_benchmark(str(data_dir / "data.json"), max_new_tokens=3)
    cap3 = b.run_captioning_benchmark(str(data_dir / "data.json"), max_new_tokens=4)
    assert cap1["performance"]["computed_items"] == N and cap2["performance"]["computed_items"] == 0
    assert [r["prediction"] for r in cap2["items"]] == [r["prediction"] for r in cap1["items"]]
    assert cap3["performance"]["computed_items"] == N
    # no cache: everything computed, nothing stored
    nb = MultimodalBenchmark(suite, cache_dir=None, progress=False)
    r = nb.run_retrieval_benchmark(str(data_dir / "data.json"), k_values=[1])
    assert r["performance"]["cached_items"] == 0 and len(nb.cache) == 0
    assert r["metrics"]["image_retrieval_recall@1"] == first["metrics"]["image_retrieval_recall@1"]


class _Interrupting(ListDataset):
    """Raises KeyboardInterrupt when item `stop_at` is reached (a user pressing Ctrl-C)."""
    stop_at = None

    def stream(self, on_skip=None):
        for n, it in enumerate(super().stream(on_skip)):
            if self.stop_at is not None and n == self.stop_at:
                raise KeyboardInterrupt
            yield it


def test_resume_after_interruption(tmp_path, suite, data_dir):
    b = _bench(tmp_path, suite)
    ds = _Interrupting(str(data_dir / "data.json"))
    ds.stop_at = 5
    with pytest.raises(KeyboardInterrupt):
        b.run_captioning_benchmark(ds, max_new_tokens=3, batch_size=2)
    # batches [0,1] and [2,3] were committed; item 4 was waiting for its batch partner
    ds.stop_at = None
    res = b.run_captioning_benchmark(ds, max_new_tokens=3, batch_size=2)
    assert res["performance"]["cached_items"] == 4 and res["performance"]["computed_items"] == N - 4
    fresh = MultimodalBenchmark(suite, cache_dir=None, progress=False).run_captioning_benchmark(
        ListDataset(str(data_dir / "data.json")), max_new_tokens=3, batch_size=2)
    assert [r["prediction"] for r in res["items"]] == [r["prediction"] for r in fresh["items"]]
    assert res["metrics"] == fresh["metrics"]


def test_captioning_matches_model_and_metrics(tmp_path, suite, data_dir):
    res = _bench(tmp_path, suite).run_captioning_benchmark(str(data_dir / "data.json"), max_new_tokens=4, batch_size=4)
    direct = suite.model("blip2").caption(_images(data_dir), max_new_tokens=4)
    assert [r["prediction"] for r in res["items"]] == direct
    refs = {i: [f"a photo of thing {i}", f"picture {i}"] for i in range(N)}
    cc = M.coco_caption_scores(refs, dict(enumerate(direct)))
    for k, v in cc["metrics"].items():
        assert res["metrics"][k] == pytest.approx(v, abs=1e-12)
    sb = M.sacrebleu_corpus_bleu(direct, [[refs[i][0] for i in range(N)], [refs[i][1] for i in range(N)]])
    assert res["metrics"]["sacreBLEU"] == pytest.approx(sb["score"])
    assert res["settings"]["do_sample"] is False and res["settings"]["max_new_tokens"] == 4
    assert len(res["performance"]["batch_sizes"]) == 2  # 7 items in batches of 4 (+ skips)


def test_vqa_matches_model_and_metrics(tmp_path, suite, data_dir):
    res = _bench(tmp_path, suite).run_vqa_benchmark(str(data_dir / "data.json"), max_new_tokens=3)
    qs = ["what is shown?" if i % 2 else "what colour?" for i in range(N)]
    direct = suite.model("blip2").ask_many(_images(data_dir), qs, max_new_tokens=3)
    assert [r["prediction"] for r in res["items"]] == direct
    anns = [{"question_id": i, "answer_type": ["other", "yes/no"][i % 2], "question_type": "none of the above",
             "answers": [{"answer": ["red", "blue"][i % 2], "answer_id": j + 1} for j in range(10)]} for i in range(N)]
    ref = M.vqa_accuracy(anns, [{"question_id": i, "answer": a} for i, a in enumerate(direct)])
    assert res["metrics"]["overall"] == ref["overall"]
    assert res["metrics"]["perAnswerType"] == ref["perAnswerType"] and set(ref["perAnswerType"]) == {"other", "yes/no"}


def test_vqa_accuracy_counts_correct_answers(tmp_path, suite, data_dir):
    """With the gold answer set to what the model says for half the items, accuracy is exactly
    that half (the runner scores, it does not just pass numbers through)."""
    qs = ["what colour?"] * 4
    imgs = _images(data_dir)[:4]
    preds = suite.model("blip2").ask_many(imgs, qs, max_new_tokens=3)
    recs = [{"image": p, "question": q, "answer": a if i < 2 else "zzz-never"}
            for i, (p, q, a) in enumerate(zip(imgs, qs, preds))]
    res = _bench(tmp_path, suite).run_vqa_benchmark(recs, max_new_tokens=3)
    assert res["metrics"]["overall"] == 50.0
    assert [r["accuracy"] for r in res["items"]] == [1.0, 1.0, 0.0, 0.0]


def test_classification_matches_suite(tmp_path, suite, data_dir):
    recs = [{"image": p, "label": ["a red square", "a blue circle", "a green dot"][i % 3]}
            for i, p in enumerate(_images(data_dir))]
    res = _bench(tmp_path, suite).run_classification_benchmark(recs)
    labels = ["a red square", "a blue circle", "a green dot"]
    direct = suite.classify(_images(data_dir), labels)
    preds = [labels[int(np.argmax(r["probs"]))] for r in direct]
    assert [r["prediction"] for r in res["items"]] == preds
    target = [i % 3 for i in range(N)]
    assert res["metrics"]["acc1"] == pytest.approx(np.mean([labels.index(p) == t for p, t in zip(preds, target)]))
    assert res["chance"]["acc1"] == pytest.approx(1 / 3) and res["chance"]["mean_per_class_recall"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="has no classes"):
        _bench(tmp_path, suite).run_classification_benchmark(str(data_dir / "data.json"))


def test_llava_captioning_and_vqa(tmp_path, data_dir):
    """A LLaVA model captions by answering the describe prompt, and answers VQA with ask_many."""
    from test_llava import L15, load as load_llava
    llava = load_llava(L15)
    s = MultimodalSuite(models={"llava": llava})
    b = _bench(tmp_path, s)
    cap = b.run_captioning_benchmark(str(data_dir / "data.json"), max_new_tokens=3)
    assert cap["settings"]["prompt"] == "Describe the image in one short sentence."
    assert [r["prediction"] for r in cap["items"]] == llava.ask_many(
        _images(data_dir), ["Describe the image in one short sentence."] * N, max_new_tokens=3)
    vqa = b.run_vqa_benchmark(str(data_dir / "data.json"), max_new_tokens=2, batch_size=3)
    qs = ["what is shown?" if i % 2 else "what colour?" for i in range(N)]
    assert [r["prediction"] for r in vqa["items"]] == llava.ask_many(_images(data_dir), qs, max_new_tokens=2)
    assert vqa["model"]["class"] == "Llava" and 0.0 <= vqa["metrics"]["overall"] <= 100.0


def test_deterministic_without_cache(suite, data_dir):
    runs = [MultimodalBenchmark(suite, cache_dir=None, progress=False).run_captioning_benchmark(
        str(data_dir / "data.json"), max_new_tokens=4) for _ in range(2)]
    assert [r["prediction"] for r in runs[0]["items"]] == [r["prediction"] for r in runs[1]["items"]]


def test_progress_bar_shows_rate(tmp_path, suite, data_dir, capsys):
    MultimodalBenchmark(suite, cache_dir=str(tmp_path / "c"), progress=True).run_retrieval_benchmark(
        str(data_dir / "data.json"), k_values=[1])
    err = capsys.readouterr().err
    assert "retrieval [clip]" in err and "item/s" in err and f"{N + 2}/{N + 2}" in err


def test_full_benchmark_and_report(tmp_path, suite, data_dir):
    b = _bench(tmp_path, suite)
    out = b.run_full_benchmark(str(data_dir / "data.json"), out_dir=str(tmp_path / "report"), k_values=[1, 5])
    assert set(out) == {"retrieval", "captioning", "vqa"}
    with open(tmp_path / "report" / "results.json") as f:
        saved = json.load(f, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert set(saved["results"]) == {"retrieval", "captioning", "vqa"}
    assert saved["results"]["vqa"]["metrics"]["overall"] == out["vqa"]["metrics"]["overall"]
    assert len(saved["results"]["captioning"]["items"]) == N

    class Parser(HTMLParser):
        imgs, headings, stack = [], [], []

        def handle_starttag(self, tag, attrs):
            if tag == "img":
                self.imgs.append(dict(attrs)["src"])

        def handle_data(self, data):
            if self.lasttag == "h2":
                self.headings.append(data)
    p = Parser()
    with open(tmp_path / "report" / "report.html", encoding="utf-8") as f:
        p.feed(f.read())
    p.close()
    assert {"retrieval", "captioning", "vqa", "Environment"} <= set(p.headings)
    import base64
    pngs = [base64.b64decode(s.split(",", 1)[1]) for s in p.imgs]
    assert all(s.startswith("data:image/png;base64,") for s in p.imgs)
    assert len(pngs) >= 3 + 3 + 3 * 4 and all(x[:8] == b"\x89PNG\r\n\x1a\n" for x in pngs)  # plots + thumbnails
    html_table = out["vqa"]._repr_html_()
    assert "<table>" in html_table and "overall" in html_table
    assert "retrieval" in b._repr_html_() and set(b.summary()) == {"retrieval", "captioning", "vqa"}


def test_errors(tmp_path, suite, data_dir):
    b = _bench(tmp_path, suite)
    with pytest.raises(TypeError, match="not a contrastive"):
        b.run_retrieval_benchmark(str(data_dir / "data.json"), model="blip2")
    with pytest.raises(TypeError, match="cannot generate"):
        b.run_captioning_benchmark(str(data_dir / "data.json"), model="clip")
    with pytest.raises(KeyError, match="no model named"):
        b.run_retrieval_benchmark(str(data_dir / "data.json"), model="nope")
    with pytest.raises(FileNotFoundError, match="nothere.json"):
        b.run_retrieval_benchmark(str(tmp_path / "nothere.json"))
    with pytest.raises(TypeError, match="expected a Dataset"):
        b.run_retrieval_benchmark(42)
    with pytest.raises(ValueError, match="none fits"):
        b.run_retrieval_benchmark(str(data_dir / "data.json"), k_values=[50])
    with pytest.raises(ValueError, match="no captioned image"):
        b.run_retrieval_benchmark([{"image": str(data_dir / "img0.png"), "question": "q?"}])
    with pytest.raises(ValueError, match="no results"):
        MultimodalBenchmark(suite, cache_dir=None, progress=False).write_report(str(tmp_path / "r"))
    r = b.run_retrieval_benchmark([{"image": 3.5, "caption": "x"}, {"image": str(data_dir / "img0.png"), "caption": "y"}],
                                  k_values=[1])
    assert r["dataset"]["skipped"] == 1 and "image: expected a path, bytes, array or PIL image, got float" in \
        r["dataset"]["problems"][0]["problem"]


def test_model_identity_follows_checkpoint(tmp_path, clip_path):
    d = tmp_path / "ckpt"
    shutil.copytree(clip_path, d)
    a = model_identity(mmsuite.load(str(d)))
    assert a == {**model_identity(mmsuite.load(clip_path)), "path": str(d)}  # content, not location
    cfg = json.loads((d / "config.json").read_text())
    cfg["projection_dim"] = cfg["projection_dim"]  # same content, rewritten: same id
    (d / "config.json").write_text(json.dumps(cfg, indent=3))
    assert model_identity(mmsuite.load(str(d)))["id"] != a["id"]  # bytes changed (formatting)
    with open(d / "model.safetensors", "r+b") as f:  # flip weight bytes at the end of the file
        f.seek(-4, 2)
        f.write(b"\0\0\0\0")
    assert model_identity(mmsuite.load(str(d)))["id"] not in (a["id"],)
    assert model_identity(mmsuite.load(str(d)))["dtype"] == "float32"


def test_cli(tmp_path, clip_path, opt_dir, data_dir, capsys):
    out = tmp_path / "o"
    rc = cli_main(["bench", "retrieval", "--data", str(data_dir / "data.json"), "--model", clip_path, "--out", str(out),
                   "--cache", str(tmp_path / "cache"), "--no-progress", "--k", "1,5"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "image_retrieval_recall@1" in text and "(chance 0.1429)" in text and "2 skipped" in text
    assert os.path.isfile(out / "results.json") and os.path.isfile(out / "report.html")
    rc = cli_main(["bench", "vqa", "--data", str(data_dir / "data.json"), "--model", opt_dir, "--no-cache",
                   "--no-progress", "--max-new-tokens", "2", "--limit", "3"])
    assert rc == 0 and "overall" in capsys.readouterr().out
    rc = cli_main(["bench", "captioning", "--data", str(data_dir / "data.json"), "--model", opt_dir, "--no-cache",
                   "--no-progress", "--max-new-tokens", "2", "--out", str(out)])
    assert rc == 0 and "CIDEr" in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text())["results"]["captioning"]["settings"]["max_new_tokens"] == 2
    folder = tmp_path / "cls"
    for i, name in enumerate(_images(data_dir)):
        (folder / ["red_thing", "blue_thing"][i % 2]).mkdir(parents=True, exist_ok=True)
        shutil.copy(name, folder / ["red_thing", "blue_thing"][i % 2])
    rc = cli_main(["bench", "classification", "--data", str(folder), "--model", clip_path, "--no-cache",
                   "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0 and "acc1" in text and "(chance 0.5)" in text
    with pytest.raises(SystemExit, match="needs a BLIP-2 or LLaVA model"):
        cli_main(["bench", "captioning", "--data", str(data_dir / "data.json"), "--model", clip_path, "--no-cache"])
    assert cli_main(["bench", "retrieval", "--data", str(tmp_path / "none.json"), "--model", clip_path]) == 2
    assert "none.json: no such file" in capsys.readouterr().err
