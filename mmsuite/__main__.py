"""Command line: `python -m mmsuite classify|embed ...`.

    python -m mmsuite classify IMAGES... --labels "a cat,a dog" [--model PATH_OR_HUB_ID] [--json OUT]
    python -m mmsuite embed IMAGES... [--texts "a,b"] [--model ...] --out embeddings.npz
    python -m mmsuite bench retrieval|classification|captioning|vqa --data PATH --model PATH [--out DIR]
    python -m mmsuite demo [--out DIR] [--clip PATH] [--captioner PATH] [--vlm PATH]

IMAGES may be files or folders (every .png/.jpg/.jpeg below them). Without --model a random-weight
demo checkpoint is used (clearly labelled: its predictions are meaningless)."""
import argparse
import json
import os
import sys
import time

import numpy as np

IMAGE_EXT = (".png", ".jpg", ".jpeg")


def _collect(paths):
    out = []
    for p in paths:
        if os.path.isdir(p):
            out += sorted(os.path.join(root, f) for root, _, files in os.walk(p) for f in files
                          if f.lower().endswith(IMAGE_EXT))
        elif os.path.isfile(p):
            out.append(p)
        else:
            raise SystemExit(f"mmsuite: {p}: no such file or directory")
    if not out:
        raise SystemExit("mmsuite: no images found (looked for .png/.jpg/.jpeg)")
    return out


def _model(args):
    from . import MultimodalSuite
    if args.model:
        path, demo = args.model, False
    else:
        from ._demo import demo_checkpoint
        path, demo = demo_checkpoint(), True
        print("note: no --model given; using a RANDOM-WEIGHT demo CLIP (predictions are meaningless). "
              "Pass --model DIR_OR_HUB_ID for a real checkpoint.", file=sys.stderr)
    return MultimodalSuite(device=args.device, models={"clip": path}, dtype=args.dtype), path, demo


def cmd_classify(args):
    images = _collect(args.images)
    labels = [s.strip() for s in args.labels.split(",") if s.strip()]
    if not labels:
        raise SystemExit("mmsuite: --labels needs at least one label")
    suite, path, demo = _model(args)
    t = time.perf_counter()
    res = suite.classify(images, labels, top_k=min(3, len(labels)), batch_size=args.batch_size)
    dt = time.perf_counter() - t
    rows = []
    for img, r in zip(images, res):
        top = ", ".join(f"{lab} {p:.3f}" for lab, p in r["top"])
        print(f"{img}: {top}")
        rows.append({"image": img, "top": r["top"], "probs": dict(zip(labels, map(float, r["probs"])))})
    print(f"{len(images)} images x {len(labels)} labels in {dt:.2f}s with {path}"
          f"{' (random demo weights)' if demo else ''}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": path, "random_weights": demo, "results": rows}, f, indent=1)


def cmd_embed(args):
    images = _collect(args.images)
    suite, path, _ = _model(args)
    out = suite.embed(images=images, texts=[s for s in (args.texts or "").split(",") if s] or None,
                      batch_size=args.batch_size)
    np.savez(args.out, images=np.array(images), **{k: v for k, v in out.items()})
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v.shape}" for k, v in out.items()))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "demo":
        from .demo import main as demo_main
        return demo_main(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m mmsuite")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("classify", "embed"):
        p = sub.add_parser(name)
        p.add_argument("images", nargs="+")
        p.add_argument("--model")
        p.add_argument("--device", default="cpu")
        p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
        p.add_argument("--batch-size", type=int, default=32)
        if name == "classify":
            p.add_argument("--labels", required=True, help="comma-separated labels")
            p.add_argument("--json")
        else:
            p.add_argument("--texts")
            p.add_argument("--out", default="embeddings.npz")
    from .benchmark import cli as bench_cli
    bench_cli.add_parser(sub)
    sub.add_parser("demo", help="run the bundled models on the held-out synthetic set (python -m mmsuite demo -h)")
    args = ap.parse_args(argv)
    if args.cmd == "bench":
        from .errors import MMSError
        try:
            return bench_cli.run(args)
        except (OSError, ValueError, KeyError, TypeError, MMSError) as e:
            print(f"python -m mmsuite bench: error: {e}", file=sys.stderr)
            return 2
    {"classify": cmd_classify, "embed": cmd_embed}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
