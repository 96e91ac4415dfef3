"""python -m mmsuite bench TASK --data PATH --model PATH_OR_HUB_ID [--out DIR] ...

TASK: retrieval, classification, captioning or vqa. --data: a dataset file or folder (COCO
captions JSON, Karpathy JSON, Flickr30k CSV/JSON, VQAv2 questions JSON, a folder per class, or
a .json/.jsonl list of {"image", "caption", "question", "answer", "label"} records); --images:
its image folder (default: beside the file). Prints the metrics (with chance levels) and speed,
writes DIR/results.json and DIR/report.html with --out. Results are cached (--cache DIR,
--no-cache), so a rerun after an interruption resumes."""
import argparse
import sys

__all__ = ["add_parser", "run"]

TASKS = ("retrieval", "classification", "captioning", "vqa")


def add_parser(sub):
    p = sub.add_parser("bench", help="evaluate a model on a dataset (retrieval, classification, captioning, vqa)",
                       description=__doc__.split("\n\n")[1])
    p.add_argument("task", choices=TASKS)
    p.add_argument("--data", required=True, help="dataset file or folder")
    p.add_argument("--model", required=True, help="checkpoint directory or hub id")
    p.add_argument("--images", help="image folder (default: beside the data file)")
    p.add_argument("--annotations", help="VQAv2 annotations JSON (default: found beside the questions file)")
    p.add_argument("--split", default="test", help="Karpathy split (default test)")
    p.add_argument("--limit", type=int, help="evaluate only the first N items")
    p.add_argument("--out", help="write results.json and report.html here")
    p.add_argument("--cache", default="default", help="cache folder (default ~/.cache/mmsuite/bench)")
    p.add_argument("--no-cache", action="store_true", help="compute everything, store nothing")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--k", default="1,5,10", help="retrieval k values (default 1,5,10)")
    p.add_argument("--labels", help="classification: comma-separated class texts (default: folder names)")
    p.add_argument("--prompt", help="captioning prompt")
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--num-beams", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--threads", type=int, help="compute threads (default: all cores)")
    return p


def _print_result(res):
    chance = res.get("chance", {})
    print(f"{res['task']}: {res['model']['name']} on {res['dataset']['name']} "
          f"({res['dataset']['items']} items, {res['dataset']['skipped']} skipped)")

    def rows(metrics, prefix=""):
        for k, v in metrics.items():
            if isinstance(v, dict):
                yield from rows(v, f"{prefix}{k}/")
            else:
                yield f"{prefix}{k}", v
    for k, v in rows(res["metrics"]):
        c = f"   (chance {chance[k]:.4g})" if k in chance and chance[k] == chance[k] else ""
        print(f"  {k:<34} {v:.4f}{c}" if isinstance(v, float) else f"  {k:<34} {v}{c}")
    p = res["performance"]
    lat = p.get("item_latency_ms") or {}
    tput = p.get("throughput_items_per_s")
    print(f"  speed: {p['computed_items']} computed, {p['cached_items']} cached"
          + (f", {tput:.3g} items/s" if tput else "")
          + (f", latency p50 {lat['p50']:.1f} / p90 {lat['p90']:.1f} / p99 {lat['p99']:.1f} ms per item" if lat else "")
          + f", peak RSS {p['peak_rss_mb']:.0f} MB")
    for prob in res["dataset"]["problems"][:10]:
        print(f"  skipped {prob['item']!r} ({prob['file']}): {prob['problem']}", file=sys.stderr)


def run(args):
    from .. import MultimodalSuite, load, set_num_threads
    from ..datasets import load_dataset
    from ..models import ContrastiveModel
    from .runner import MultimodalBenchmark
    if args.threads is not None:
        set_num_threads(args.threads)
    ds = load_dataset(args.data, images=args.images, split=args.split, annotations=args.annotations,
                      limit=args.limit)
    model = load(args.model, device=args.device, dtype=args.dtype)
    name = "clip" if isinstance(model, ContrastiveModel) else ("blip2" if hasattr(model, "caption") else "llava")
    if args.task in ("retrieval", "classification") and name != "clip":
        raise SystemExit(f"mmsuite bench: {args.task} needs a CLIP/SigLIP model; {args.model} is a {type(model).__name__}")
    if args.task in ("captioning", "vqa") and name == "clip":
        raise SystemExit(f"mmsuite bench: {args.task} needs a BLIP-2 or LLaVA model; {args.model} is a {type(model).__name__}")
    suite = MultimodalSuite(device=args.device, models={name: model})
    bench = MultimodalBenchmark(suite, cache_dir=None if args.no_cache else args.cache, progress=not args.no_progress,
                                seed=args.seed)
    opt = {"batch_size": args.batch_size} if args.batch_size else {}
    gen = {k: v for k, v in (("max_new_tokens", args.max_new_tokens), ("num_beams", args.num_beams)) if v is not None}
    if args.task == "retrieval":
        res = bench.run_retrieval_benchmark(ds, k_values=[int(k) for k in args.k.split(",") if k.strip()], **opt)
    elif args.task == "classification":
        labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
        res = bench.run_classification_benchmark(ds, labels=labels, **opt)
    elif args.task == "captioning":
        res = bench.run_captioning_benchmark(ds, prompt=args.prompt, **gen, **opt)
    else:
        res = bench.run_vqa_benchmark(ds, **gen, **opt)
    _print_result(res)
    if args.out:
        paths = bench.write_report(args.out)
        print(f"wrote {paths['json']} and {paths['html']}")
    bench.close()
    return 0
