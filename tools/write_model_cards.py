"""Write README.md (the model card) of each bundled model in mmsuite/weights from its
training.json and the held-out numbers mmsuite itself measures (the demo's benchmark run).

    .venv/bin/python tools/write_model_cards.py [--images 500]
"""
import argparse
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from mmsuite import synth  # noqa: E402
from mmsuite.demo import _VQA_CHOICES as _CHOICES, DEFAULTS, WEIGHTS_DIR, run_demo  # noqa: E402

WORLD = (f"the synthetic shapes world of `mmsuite/synth.py`: {synth.SIZE}x{synth.SIZE} RGB images of 1-3 "
         f"{'/'.join(synth.SHAPES)} shapes in one of {len(synth.COLOURS)} colours ({', '.join(synth.COLOURS)}), "
         f"{len(synth.TEXTURES)} textures ({', '.join(synth.TEXTURES)}), placed {', '.join(synth.POSITIONS)}, on a "
         "noisy background with jittered size, shade and placement; each image has a caption and six "
         "question-answer pairs (colour, shape, count, position, yes/no presence, pattern)")

ROLE = {
    "clip": ("CLIPModel", "contrastive image-text embedding (zero-shot classification, retrieval)",
             "image_retrieval_*, text_retrieval_*, shape_classification_*"),
    "captioner": ("Blip2ForConditionalGeneration (OPT language model)", "captioning and short-answer VQA "
                  "(\"Question: ... Answer:\")", "captioning_*, vqa_blip2_accuracy"),
    "vlm": ("LlavaForConditionalGeneration (Llama language model, LLaVA-1.5 chat format)",
            "visual question answering / instruction following", "vqa_accuracy"),
}


def clip_attribute_accuracy(path, n=300):
    """Per attribute: how often the image's true caption beats the same caption with that
    attribute changed (every other value), over n held-out images."""
    import numpy as np
    import mmsuite
    m = mmsuite.load(path)
    samples = [synth.sample("heldout", i) for i in range(n)]
    img = m.encode_image(images=[s.image for s in samples])["image_embeds"]
    out = {}
    for attr, values in (("shape", synth.SHAPES), ("colour", list(synth.COLOURS)), ("count", (1, 2, 3)),
                         ("position", list(synth.POSITIONS)), ("texture", synth.TEXTURES)):
        hits = 0
        for s, e in zip(samples, img):
            caps = [synth._caption(*[v if a == attr else getattr(s, a)
                                     for a in ("shape", "colour", "count", "position", "texture")]) for v in values]
            t = m.encode_text(texts=caps)["text_embeds"]
            hits += values[int(np.argmax(t @ e))] == getattr(s, attr)
        out[attr] = (hits / n, 1 / len(values))
    return out


def _size(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_demo(tmp, n_images=args.images, n_caption=200, n_vqa_images=100, progress=False, quiet=True)
        with open(os.path.join(tmp, "results.json")) as f:
            results = json.load(f)["results"]
    for kind, name in DEFAULTS.items():
        d = os.path.join(WEIGHTS_DIR, name)
        with open(os.path.join(d, "training.json")) as f:
            tr = json.load(f)
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        arch, role, keys = ROLE[kind]
        prefixes = [k.strip().rstrip("*") for k in keys.split(",")]
        rows = [(k, v, summary[k + "_chance"]) for k, v in summary.items()
                if not k.endswith("_chance") and any(k.startswith(p) or k == p for p in prefixes)]
        if kind == "clip":
            rows += [(f"caption attribute: {a}", v, c) for a, (v, c) in clip_attribute_accuracy(d).items()]
        else:
            key = "vqa_blip2" if kind == "captioner" else "vqa"
            per = results[key]["metrics"]["perQuestionType"]
            rows += [(f"VQA accuracy, '{q} ...' questions", v, 100.0 / _CHOICES[q]) for q, v in sorted(per.items())]
        table = "\n".join(f"| `{k}` | {v:.4f} | {c:.4f} |" for k, v, c in rows)
        tower = f"\n  Vision tower: {tr['vision_tower']}." if "vision_tower" in tr else ""
        card = f"""# {name}

A small **{arch}** trained from scratch by the mmsuite project for its offline demo: {role}.
It is not a general-purpose model: it knows only the synthetic world below. License: Apache-2.0
(the same as mmsuite; trained here, no third-party weights or data).

* **Data**: {WORLD}. Trained on the `train` split (indices 0..{tr['train_size'] - 1}); evaluated on the
  `heldout` split (other seeds: images never seen in training; attribute combinations do recur).
* **Recipe** (`tools/train_tiny_models.py`, PyTorch {tr['torch']} + transformers, CPU, {tr['threads']}
  thread(s), seeded): AdamW (lr 1e-3, weight decay 0.01, 100 warm-up steps, cosine decay), gradient
  clipping 1.0, {tr['steps']} steps of batch {tr['batch']}; final training loss {tr['final_loss']:.4f}.{tower}
* **Architecture**: `config.json` (`model_type` {cfg.get('model_type')}); {_size(d) / 2**20:.2f} MiB on disk.
  Tokenizer trained on the world's text by the same script.
* **Held-out metrics**, measured by mmsuite (`tools/write_model_cards.py`: the demo's
  MultimodalBenchmark run on {args.images} held-out images; chance as defined in docs/models.md;
  VQA in percent). Per-attribute rows show what the model did and did not learn.

| metric | value | chance |
| --- | --- | --- |
{table}
"""
        with open(os.path.join(d, "README.md"), "w") as f:
            f.write(card)
        print(f"wrote {d}/README.md")
    with open(os.path.join(WEIGHTS_DIR, "heldout_metrics.json"), "w") as f:
        json.dump({"images": args.images, "summary": summary}, f, indent=1)


if __name__ == "__main__":
    main()
