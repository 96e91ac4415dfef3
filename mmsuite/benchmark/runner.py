"""MultimodalBenchmark: runs a MultimodalSuite's models over evaluation datasets and scores them
with mmsuite.metrics (numbers identical to the reference tools).

    bench = MultimodalBenchmark(suite)                      # cache in ~/.cache/mmsuite/bench
    r = bench.run_retrieval_benchmark("karpathy.json", k_values=[1, 5, 10])
    r["metrics"]["image_retrieval_recall@1"], r["performance"]["item_latency_ms"]["p50"]
    bench.write_report("out/")                              # results.json + report.html

Every ``run_*`` returns a plain dict (a :class:`BenchmarkResult`, which only adds a notebook
table): ``task``, ``metrics``, ``chance`` (where a chance level is defined), ``dataset``
(counts, skipped items and why), ``model`` (identity), ``settings``, ``performance`` (latency
percentiles, throughput, peak memory, cache hits), ``items`` (per-item outputs) and
``environment``. Results are cached on disk by model identity + image content + settings: a
rerun, or the same embeddings for another metric, costs no inference, and an interrupted run
resumes. Generation is greedy and seeded unless told otherwise."""
import math
import os

import numpy as np

from .. import metrics as M
from ..datasets import Dataset, ListDataset, load_dataset
from ..models import ContrastiveModel
from .cache import ResultCache, model_identity
from .measure import Meter, environment
from .stream import progress_bar, run_items

__all__ = ["MultimodalBenchmark", "BenchmarkResult", "default_cache_dir"]

CAPTION_PROMPT_VLM = "Describe the image in one short sentence."


def default_cache_dir():
    root = os.environ.get("MMSUITE_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "mmsuite"))
    return os.path.join(root, "bench")


class BenchmarkResult(dict):
    """A plain dict with a notebook rendering (a table of the metrics, chance levels and speed)."""

    def _repr_html_(self):
        from .report import result_table_html
        return result_table_html(self)


def _as_dataset(dataset, images=None):
    if isinstance(dataset, Dataset):
        return dataset
    if isinstance(dataset, (list, tuple)):
        return ListDataset(list(dataset), image_root=images)
    if isinstance(dataset, (str, os.PathLike)):
        return load_dataset(dataset, images=images)
    raise TypeError(f"dataset: expected a Dataset, a path or a list of dicts, got {type(dataset).__name__}")


def _hypergeom_miss(n, c, k):
    """P(none of c positives among the top k of n texts ranked at random) = C(n-c, k) / C(n, k)."""
    return math.comb(n - c, k) / math.comb(n, k)


class MultimodalBenchmark:
    """Evaluation harness over a MultimodalSuite.

    cache_dir: where results are cached (default ``~/.cache/mmsuite/bench``, or under
    $MMSUITE_CACHE); None disables caching. progress: show a tqdm bar per task. seed: passed to
    generation (greedy decoding ignores it unless sampling is asked for)."""

    def __init__(self, suite, cache_dir="default", progress=True, seed=0):
        self.suite = suite
        self.cache = ResultCache(default_cache_dir() if cache_dir == "default" else cache_dir)
        self.progress = bool(progress)
        self.seed = int(seed)
        self.results = {}  # task -> last BenchmarkResult

    def close(self):
        self.cache.close()

    # ---- shared pieces -----------------------------------------------------------------------
    def _finish(self, task, ds, model_name, model, ident, settings, meter, metrics, items, hits0, misses0,
                chance=None):
        perf = meter.summary()
        perf["cache_hits"] = self.cache.hits - hits0
        perf["cache_misses"] = self.cache.misses - misses0
        mem = getattr(model, "memory", None)
        if callable(mem):
            try:
                perf["model_memory_bytes"] = mem()
            except Exception:  # noqa: BLE001 - informational only
                pass
        ident = dict(ident, name=model_name)
        res = BenchmarkResult(task=task, metrics=metrics, chance=chance or {}, dataset=ds.describe(), model=ident,
                              settings=settings, performance=perf, items=items, environment=environment())
        self.results[task] = res
        return res

    def _contrastive(self, model):
        m = self.suite.model(model)
        if not isinstance(m, ContrastiveModel):
            raise TypeError(f"model {model!r} is not a contrastive (CLIP/SigLIP) model: {type(m).__name__}")
        return m

    def _image_embeddings(self, ds, m, mid, batch_size, meter, bar):
        """(items, (N, D) float32 normalized image embeddings), cached per image content."""
        def compute(items, images):
            return list(m.encode_image(images=images)["image_embeds"])
        pairs = list(run_items(ds.stream(lambda: bar.update(1)), cache=self.cache, kind="image_embeds", model_id=mid, settings={},
                               batch_size=batch_size, compute=compute, content=lambda it, h: h,
                               encode=ResultCache.pack_array, decode=ResultCache.unpack_array,
                               meter=meter, bar=bar, dataset=ds))
        items = [p[0] for p in pairs]
        emb = np.stack([p[1] for p in pairs]) if pairs else np.zeros((0, 0), np.float32)
        return items, emb

    def _text_embeddings(self, texts, m, mid, batch_size, meter, ds):
        """(len(texts), D) float32 normalized text embeddings, cached per text."""
        def compute(items, _):
            return list(m.encode_text(texts=[it["text"] for it in items])["text_embeds"])
        pairs = run_items(({"id": i, "text": t} for i, t in enumerate(texts)), cache=self.cache, kind="text_embeds",
                          model_id=mid, settings={}, batch_size=batch_size, compute=compute,
                          content=lambda it, h: it["text"], encode=ResultCache.pack_array,
                          decode=ResultCache.unpack_array, meter=meter, bar=progress_bar(0, "", False),
                          dataset=ds, needs_image=False)
        return np.stack([o for _, o in pairs])

    def _generator(self, model, kinds):
        if model is None:
            cands = [n for n in kinds if n in self.suite._specs]
            if not cands:
                raise KeyError(f"no {'/'.join(kinds)} model registered in the suite; registered: "
                               f"{sorted(self.suite._specs)} (or pass model=NAME)")
            model = cands[0]
        m = self.suite.model(model)
        if not hasattr(m, "ask_many"):
            raise TypeError(f"model {model!r} cannot generate text about images (a {type(m).__name__})")
        return model, m

    def _gen_settings(self, max_new_tokens, num_beams, gen):
        g = {"max_new_tokens": int(max_new_tokens), "num_beams": int(num_beams), "seed": self.seed}
        g.setdefault("do_sample", False)
        g.update(gen)
        return g

    # ---- tasks -------------------------------------------------------------------------------
    def run_retrieval_benchmark(self, dataset, k_values=(1, 5, 10), model="clip", batch_size=32, images=None):
        """Image<->text retrieval (CLIP_benchmark recall@k) on a captioned dataset (several
        captions per image allowed): text->image ``image_retrieval_recall@k`` and image->text
        ``text_retrieval_recall@k``, each with its chance level."""
        ds = _as_dataset(dataset, images)
        m = self._contrastive(model)
        ident = model_identity(m)
        mid = ident["id"]
        h0, m0 = self.cache.hits, self.cache.misses
        bar = progress_bar(len(ds), f"retrieval [{model}]", self.progress)
        with Meter() as meter:
            items, img = self._image_embeddings(ds, m, mid, batch_size, meter, bar)
            keep = [i for i, it in enumerate(items) if it.get("captions")]
            if not keep:
                bar.close()
                raise ValueError(f"retrieval: dataset {ds.name} has no captioned image to evaluate")
            items, img = [items[i] for i in keep], img[keep]
            texts, owner = [], []
            for i, it in enumerate(items):
                texts += it["captions"]
                owner += [i] * len(it["captions"])
            txt = self._text_embeddings(texts, m, mid, batch_size, meter, ds)
        bar.close()
        scores = txt @ img.T
        n_img, n_txt = len(items), len(texts)
        ks = [int(k) for k in k_values if 1 <= int(k) <= min(n_img, n_txt)]
        if not ks:
            raise ValueError(f"k_values {list(k_values)}: none fits {n_img} images x {n_txt} texts")
        r = M.retrieval_recall_at_k(scores, np.asarray(owner), ks)
        metrics = {k: v for k, v in r.items() if k not in ("hit_counts", "per_query_hit")}
        caps = np.bincount(owner, minlength=n_img)
        chance = {}
        for k in ks:
            chance[f"image_retrieval_recall@{k}"] = k / n_img
            chance[f"text_retrieval_recall@{k}"] = float(np.mean([1 - _hypergeom_miss(n_txt, c, k) for c in caps]))
        ranks = M.retrieval_ranks(scores, np.asarray(owner))
        metrics["image_retrieval_median_rank"] = float(np.median(ranks["text_to_image"]["rank_pessimistic"]))
        metrics["text_retrieval_median_rank"] = float(np.median(ranks["image_to_text"]["rank_pessimistic"]))
        per = [{"id": it["id"], "image": _img_name(it), "captions": it["captions"],
                "text_retrieval_rank": ranks["image_to_text"]["rank_pessimistic"][i]} for i, it in enumerate(items)]
        settings = {"k_values": ks, "batch_size": batch_size, "n_images": n_img, "n_texts": n_txt,
                    "dropped_k_values": [k for k in k_values if int(k) not in ks]}
        return self._finish("retrieval", ds, model, m, ident, settings, meter, metrics, per, h0, m0, chance)

    def run_classification_benchmark(self, dataset, labels=None, templates=None, model="clip", batch_size=32,
                                     images=None):
        """Zero-shot classification (CLIP_benchmark acc1, acc5, mean per-class recall) on a
        labelled dataset (an image folder per class, or records with "label"). labels: class
        texts (default: the dataset's class names); templates: prompt templates (default: the
        suite's prompt ensemble)."""
        ds = _as_dataset(dataset, images)
        classes = list(labels) if labels is not None else list(ds.classes or [])
        if not classes:
            raise ValueError(f"classification: dataset {ds.name} has no classes; pass labels=[...]")
        m = self._contrastive(model)
        ident = model_identity(m)
        mid = ident["id"]
        h0, m0 = self.cache.hits, self.cache.misses
        bar = progress_bar(len(ds), f"classification [{model}]", self.progress)
        with Meter() as meter:
            cls = self.suite.class_embeddings(
                classes, templates, model,
                embed_texts=lambda prompts: self._text_embeddings(prompts, m, mid, 256, meter, ds))
            items, img = self._image_embeddings(ds, m, mid, batch_size, meter, bar)
        bar.close()
        keep = [i for i, it in enumerate(items) if isinstance(it.get("target"), int) and it["target"] < len(classes)]
        if not keep:
            raise ValueError(f"classification: dataset {ds.name} has no labelled image")
        items, img = [items[i] for i in keep], img[keep]
        logits, _ = m.logits(img, cls)
        target = np.array([it["target"] for it in items])
        r = M.zeroshot_classification(logits, target)
        n = len(classes)
        metrics = {"acc1": r["acc1"], "acc5": r["acc5"], "mean_per_class_recall": r["mean_per_class_recall"]}
        chance = {"acc1": 1 / n, "acc5": min(5, n) / n if n >= 5 else float("nan"), "mean_per_class_recall": 1 / n}
        per = [{"id": it["id"], "image": _img_name(it), "label": classes[it["target"]],
                "prediction": classes[p], "correct": bool(p == it["target"])} for it, p in zip(items, r["pred_top1"])]
        settings = {"classes": classes, "templates": list(templates) if templates else "default", "batch_size": batch_size}
        return self._finish("classification", ds, model, m, ident, settings, meter, metrics, per, h0, m0, chance)

    def run_captioning_benchmark(self, dataset, model=None, prompt=None, max_new_tokens=30, num_beams=1,
                                 batch_size=8, images=None, **gen):
        """Captioning: BLEU-1..4, ROUGE-L and CIDEr-D as coco-caption computes them, plus
        sacrebleu corpus BLEU, against each image's reference captions. model: a BLIP-2 (its
        caption()) or LLaVA (asked to describe the image) registered in the suite."""
        ds = _as_dataset(dataset, images)
        name, m = self._generator(model, ("blip2", "caption", "llava", "vlm"))
        g = self._gen_settings(max_new_tokens, num_beams, gen)
        settings = dict(g, prompt=prompt, batch_size=batch_size)
        if hasattr(m, "caption"):
            compute = lambda items, imgs: m.caption(imgs, prompt=prompt, **g)  # noqa: E731
        else:
            q = prompt or CAPTION_PROMPT_VLM
            settings["prompt"] = q
            compute = lambda items, imgs: m.ask_many(imgs, [q] * len(imgs), **g)  # noqa: E731
        ident = model_identity(m)
        mid = ident["id"]
        h0, m0 = self.cache.hits, self.cache.misses
        bar = progress_bar(len(ds), f"captioning [{name}]", self.progress)
        with Meter() as meter:
            pairs = list(run_items(ds.stream(lambda: bar.update(1)), cache=self.cache, kind="caption", model_id=mid,
                                   settings={k: v for k, v in settings.items() if k != "batch_size"},
                                   batch_size=batch_size, compute=lambda it, im: [str(c) for c in compute(it, im)],
                                   content=lambda it, h: h, encode=str.encode, decode=bytes.decode, meter=meter,
                                   bar=bar, dataset=ds))
        bar.close()
        per = [{"id": it["id"], "image": _img_name(it), "prediction": c, "references": it.get("captions", [])}
               for it, c in pairs]
        metrics = {}
        scored = [(i, p) for i, p in enumerate(pairs) if p[0].get("captions")]
        if scored:
            refs = {i: it["captions"] for i, (it, _) in scored}
            cands = {i: c for i, (_, c) in scored}
            cc = M.coco_caption_scores(refs, cands)
            metrics.update(cc["metrics"])
            for row, s in zip((per[i] for i, _ in scored), cc["per_image"]):
                row.update({k: s[k] for k in ("Bleu_4", "ROUGE_L", "CIDEr")})
            n_ref = max(len(r) for r in refs.values())
            streams = [[refs[i][j] if j < len(refs[i]) else None for i in refs] for j in range(n_ref)]
            metrics["sacreBLEU"] = M.sacrebleu_corpus_bleu([cands[i] for i in refs], streams)["score"]
        return self._finish("captioning", ds, name, m, ident, settings, meter, metrics, per, h0, m0)

    def run_vqa_benchmark(self, dataset, model=None, max_new_tokens=10, num_beams=1, batch_size=8, images=None,
                          **gen):
        """Visual question answering: VQAv2 accuracy (official normalization, min(#humans/3, 1)
        averaged over the leave-one-out subsets) overall, per answer type and per question
        type, for the items that carry answers. model: BLIP-2 or LLaVA (short answers)."""
        ds = _as_dataset(dataset, images)
        name, m = self._generator(model, ("blip2", "llava", "vlm", "vqa"))
        g = self._gen_settings(max_new_tokens, num_beams, gen)
        settings = dict(g, batch_size=batch_size)
        ident = model_identity(m)
        mid = ident["id"]
        h0, m0 = self.cache.hits, self.cache.misses
        bar = progress_bar(len(ds), f"vqa [{name}]", self.progress)
        items_q = (it for it in ds.stream(lambda: bar.update(1)) if isinstance(it.get("question"), str))
        with Meter() as meter:
            pairs = list(run_items(items_q, cache=self.cache, kind="answer", model_id=mid, settings=g,
                                   batch_size=batch_size,
                                   compute=lambda its, ims: [str(a) for a in m.ask_many(ims, [it["question"] for it in its], **g)],
                                   content=lambda it, h: f"{h}\0{it['question']}", encode=str.encode,
                                   decode=bytes.decode, meter=meter, bar=bar, dataset=ds))
        bar.close()
        per = [{"id": it["id"], "question_id": it.get("question_id", it["id"]), "image": _img_name(it),
                "question": it["question"], "prediction": a} for it, a in pairs]
        metrics = {}
        scored = [(it, a) for it, a in pairs if it.get("answers")]
        if scored:
            anns = [{"question_id": it.get("question_id", it["id"]), "answers": it["answers"],
                     "answer_type": it.get("answer_type", "other"),
                     "question_type": it.get("question_type", "none of the above")} for it, _ in scored]
            res = M.vqa_accuracy(anns, [{"question_id": a["question_id"], "answer": p} for a, (_, p) in zip(anns, scored)])
            metrics = {"overall": res["overall"], "perAnswerType": res["perAnswerType"],
                       "perQuestionType": res["perQuestionType"]}
            acc = {q["question_id"]: q["accuracy"] for q in res["per_question"]}
            for row in per:
                if row["question_id"] in acc:
                    row["accuracy"] = acc[row["question_id"]]
        return self._finish("vqa", ds, name, m, ident, settings, meter, metrics, per, h0, m0)

    def run_full_benchmark(self, dataset=None, *, retrieval=None, captioning=None, vqa=None, classification=None,
                           out_dir=None, k_values=(1, 5, 10)):
        """Every task that has data and a model: a single `dataset` is used for each task its items
        support (captions -> retrieval and captioning, questions -> VQA, labels -> classification);
        or give each task its own dataset. Writes results.json + report.html when out_dir is set.
        Returns {task: result}."""
        ds = _as_dataset(dataset) if dataset is not None else None
        sample = next(iter(ds), {}) if ds is not None else {}
        specs = self.suite._specs
        has_clip = any(isinstance(self.suite.model(n), ContrastiveModel) for n in specs if n in ("clip", "siglip"))
        has_gen = any(n in specs for n in ("blip2", "caption", "llava", "vlm", "vqa"))
        plan = {"retrieval": retrieval if retrieval is not None else (ds if sample.get("captions") else None),
                "classification": classification if classification is not None else
                (ds if ds is not None and ds.classes else None),
                "captioning": captioning if captioning is not None else (ds if sample.get("captions") else None),
                "vqa": vqa if vqa is not None else (ds if sample.get("question") else None)}
        out = {}
        if plan["retrieval"] is not None and has_clip:
            out["retrieval"] = self.run_retrieval_benchmark(plan["retrieval"], k_values=k_values)
        if plan["classification"] is not None and has_clip:
            out["classification"] = self.run_classification_benchmark(plan["classification"])
        if plan["captioning"] is not None and has_gen:
            out["captioning"] = self.run_captioning_benchmark(plan["captioning"])
        if plan["vqa"] is not None and has_gen:
            out["vqa"] = self.run_vqa_benchmark(plan["vqa"])
        if not out:
            raise ValueError("run_full_benchmark: no task has both data and a model (register 'clip' and/or "
                             "'blip2'/'llava' in the suite and give datasets)")
        if out_dir is not None:
            self.write_report(out_dir, out)
        return out

    # ---- output ------------------------------------------------------------------------------
    def write_report(self, out_dir, results=None, title="mmsuite benchmark"):
        """results.json and a self-contained report.html in out_dir (default results: the last
        run of each task). Returns {"json": path, "html": path}."""
        from .report import write_report
        return write_report(out_dir, results if results is not None else self.results, title=title)

    def summary(self):
        """{task: {metric: value}} of the last run of each task."""
        return {t: dict(r["metrics"]) for t, r in self.results.items()}

    def _repr_html_(self):
        from .report import results_table_html
        return results_table_html(self.results)


def _img_name(item):
    img = item.get("image")
    return os.fspath(img) if isinstance(img, (str, os.PathLike)) else None
