"""python -m mmsuite.metrics DIR [DIR ...] [--json OUT] [--per-item]

Detects the benchmark files in each DIR (COCO captions annotation + results, the VQAv2
questions/annotations/results triple, MMMU samples with responses, a retrieval score matrix,
classification logits), prints every metric and optionally writes them as JSON under the
reference tools' names (Bleu_1..Bleu_4, ROUGE_L, CIDEr, overall, perAnswerType, ...)."""
import argparse
import json
import math
import sys

from ..errors import MMSError
from .files import evaluate_dir

_SKIP_PRINT = {"files", "per_question", "per_item", "per_query_hit", "pred_top1", "coco_caption_per_image",
               "sentence_bleu", "per_image", "hit_counts", "counts", "totals", "precisions"}


def _fmt(v):
    if isinstance(v, float):
        return "nan" if math.isnan(v) else "%.6g" % v
    return str(v)


def _print(block, indent="  "):
    for key, val in block.items():
        if key in _SKIP_PRINT:
            continue
        if isinstance(val, dict):
            flat = all(not isinstance(v, (dict, list)) for v in val.values())
            if flat and len(val) <= 4 and all(isinstance(v, (int, float)) for v in val.values()):
                print("%s%s: %s" % (indent, key, "  ".join("%s=%s" % (k, _fmt(v)) for k, v in val.items())))
            else:
                print("%s%s:" % (indent, key))
                _print(val, indent + "  ")
        elif not isinstance(val, list):
            print("%s%-28s %s" % (indent, key, _fmt(val)))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m mmsuite.metrics", description=__doc__.split("\n\n")[1])
    ap.add_argument("dirs", nargs="+", metavar="DIR", help="directory holding a benchmark's files")
    ap.add_argument("--json", dest="json_out", metavar="OUT", help="write the metrics as JSON")
    ap.add_argument("--per-item", action="store_true", help="include per-image / per-question detail in the JSON")
    args = ap.parse_args(argv)
    report = {}
    try:
        for d in args.dirs:
            report[d] = evaluate_dir(d, per_item=args.per_item)
    except (OSError, ValueError, MMSError) as e:
        print("python -m mmsuite.metrics: error: %s" % e, file=sys.stderr)
        return 2
    for d, res in report.items():
        for bench, block in res.items():
            print("%s [%s] (%s)" % (bench, d, ", ".join(block.get("files", []))))
            _print(block)
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(report if len(report) > 1 else next(iter(report.values())), f, indent=1, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
