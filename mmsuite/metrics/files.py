"""Finding and checking the benchmark files in an evaluation directory, and running every metric
they allow. Files are recognized by content (so any file name works); a file whose name marks it
as one of the standard files but whose content does not fit, invalid JSON, or one half of a pair
without the other is an error that names the file."""
import fnmatch
import json
import os

import numpy as np

from ..errors import FormatError
from .caption import coco_caption_scores
from .mmmu import mmmu_accuracy
from .retrieval import retrieval_recall_at_k, zeroshot_classification
from .rouge import ROUGE_TYPES, rouge_score, rouge_score_multi
from .sacre import sacrebleu_corpus_bleu, sacrebleu_sentence_bleu
from .vqa import vqa_accuracy

__all__ = ["find_benchmark_files", "evaluate_dir"]

# kind -> (name patterns that announce it, what it must contain)
_KINDS = {
    "caption_annotations": (["captions_*.json"], "COCO captions annotation file ('images' and 'annotations' "
                                                 "with 'image_id' and 'caption')"),
    "caption_results": (["*captions*result*.json", "*caption*results*.json"],
                        "COCO caption results list ([{image_id, caption}])"),
    "vqa_questions": (["*OpenEnded*questions*.json", "*MultipleChoice*questions*.json"],
                      "VQA questions file ('questions' with 'question_id')"),
    "vqa_annotations": (["v2_mscoco_*_annotations.json", "mscoco_*_annotations.json"],
                        "VQA annotation file ('annotations' with 'question_id' and 10 'answers')"),
    "vqa_results": (["*OpenEnded*results*.json", "*MultipleChoice*results*.json"],
                    "VQA results list ([{question_id, answer}])"),
    "mmmu": (["mmmu*.json", "mmmu*.jsonl"], "MMMU sample list ([{id, question_type, answer, response, options}])"),
    "retrieval": (["retrieval*.json"], "retrieval score matrix ({'scores': [[...]], 'text_image_index': [...]})"),
    "classification": (["logits*.json"], "classification logits file ({'logits': [[...]], 'target': [...]})"),
}
_PRIORITY = ["caption_results", "vqa_results", "vqa_annotations", "vqa_questions", "caption_annotations",
             "mmmu", "retrieval", "classification"]


def _first(seq):
    return seq[0] if isinstance(seq, list) and seq and isinstance(seq[0], dict) else None


def _classify(data):
    """The kind of a parsed JSON document, or None."""
    if isinstance(data, dict):
        if "scores" in data and "text_image_index" in data:
            return "retrieval"
        if "logits" in data and "target" in data:
            return "classification"
        q = _first(data.get("questions"))
        if q is not None and "question_id" in q:
            return "vqa_questions"
        a = _first(data.get("annotations"))
        if a is not None and "answers" in a and "question_id" in a:
            return "vqa_annotations"
        if a is not None and "caption" in a and "image_id" in a and isinstance(data.get("images"), list):
            return "caption_annotations"
        return None
    e = _first(data)
    if e is None:
        return None
    if "image_id" in e and "caption" in e:
        return "caption_results"
    if "question_id" in e and "answer" in e:
        return "vqa_results"
    if "id" in e and "question_type" in e and "response" in e:
        return "mmmu"
    return None


def _load(path):
    try:
        with open(path, encoding="utf-8") as f:
            if path.endswith(".jsonl"):
                return [json.loads(line) for line in f if line.strip()]
            return json.load(f)
    except json.JSONDecodeError as e:
        raise FormatError("%s: invalid JSON (%s)" % (path, e)) from None
    except UnicodeDecodeError as e:
        raise FormatError("%s: not UTF-8 text (%s)" % (path, e)) from None


def find_benchmark_files(directory):
    """{kind: (path, data)} for the benchmark files in `directory`."""
    if not os.path.isdir(directory):
        raise FileNotFoundError("%s: no such directory" % directory)
    found = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if not (name.endswith(".json") or name.endswith(".jsonl")) or not os.path.isfile(path):
            continue
        announced = [k for k in _PRIORITY if any(fnmatch.fnmatch(name, p) for p in _KINDS[k][0])]
        data = _load(path)
        kind = _classify(data)
        if kind is None:
            if announced:
                raise FormatError("%s: by its name this should be a %s, but its content does not fit"
                                  % (path, _KINDS[announced[0]][1]))
            continue  # some other JSON (expected values, tags, notes)
        if kind in found:
            raise FormatError("%s and %s: two files of the same kind (%s); keep one per directory"
                              % (found[kind][0], path, _KINDS[kind][1]))
        found[kind] = (path, data)
    pairs = {"caption_results": ["caption_annotations"], "caption_annotations": ["caption_results"],
             "vqa_results": ["vqa_annotations", "vqa_questions"],
             "vqa_annotations": ["vqa_results", "vqa_questions"], "vqa_questions": ["vqa_results", "vqa_annotations"]}
    for kind, needs in pairs.items():
        if kind in found:
            for other in needs:
                if other not in found:
                    raise FileNotFoundError("%s: found a %s, but %s holds no %s"
                                            % (found[kind][0], _KINDS[kind][1], directory, _KINDS[other][1]))
    if not found:
        raise FileNotFoundError("%s: no benchmark file found (COCO captions + results, VQA questions/"
                                "annotations/results, MMMU samples, retrieval scores, classification logits)"
                                % directory)
    return found


def _need(cond, path, what):
    if not cond:
        raise FormatError("%s: %s" % (path, what))


# ---------------------------------------------------------------------------------------------
# Per-benchmark evaluation
# ---------------------------------------------------------------------------------------------

def _eval_captioning(ann_path, ann, res_path, res, per_item):
    refs, order = {}, []
    for img in ann["images"]:
        _need(isinstance(img, dict) and "id" in img, ann_path, "every entry of 'images' needs an 'id'")
        order.append(img["id"])
    for a in ann["annotations"]:
        _need(isinstance(a, dict) and "image_id" in a and isinstance(a.get("caption"), str), ann_path,
              "every annotation needs 'image_id' and a string 'caption'")
        refs.setdefault(a["image_id"], []).append(a["caption"])
    cands = {}
    for r in res:
        _need(isinstance(r, dict) and "image_id" in r and isinstance(r.get("caption"), str), res_path,
              "every result needs 'image_id' and a string 'caption'")
        _need(r["image_id"] not in cands, res_path, "image %r has more than one result" % (r["image_id"],))
        cands[r["image_id"]] = r["caption"]
    known = set(order)
    unknown = [k for k in cands if k not in known]
    _need(not unknown, res_path, "results for images not in %s (e.g. %s)" % (ann_path, unknown[:5]))
    ids = [k for k in order if k in cands]
    no_ref = [k for k in ids if k not in refs]
    _need(not no_ref, ann_path, "images without reference captions (e.g. %s)" % no_ref[:5])
    coco = coco_caption_scores(refs, cands, image_ids=ids)
    hyps = [cands[k] for k in ids]
    nref = max(len(refs[k]) for k in ids)
    streams = [[refs[k][r] if r < len(refs[k]) else None for k in ids] for r in range(nref)]
    sentence = [sacrebleu_sentence_bleu(cands[k], refs[k]) for k in ids]
    out = {"num_images": len(ids), "coco_caption": coco["metrics"],
           "sacrebleu": {"corpus_bleu": sacrebleu_corpus_bleu(hyps, streams),
                         "corpus_bleu_lowercase": sacrebleu_corpus_bleu(hyps, streams, lowercase=True),
                         "sentence_bleu_mean": float(np.mean([s["score"] for s in sentence]))},
           "rouge_score": {}}
    rouge_items = {}
    for stem in (False, True):
        best = [rouge_score_multi(refs[k], cands[k], stem) for k in ids]
        first = [rouge_score(refs[k][0], cands[k], stem) for k in ids]
        out["rouge_score"]["use_stemmer_%s" % str(stem).lower()] = {
            "mean_fmeasure_max_over_refs": {t: float(np.mean([b[t]["fmeasure"] for b in best])) for t in ROUGE_TYPES},
            "mean_fmeasure_first_ref": {t: float(np.mean([f[t]["fmeasure"] for f in first])) for t in ROUGE_TYPES}}
        rouge_items[stem] = (best, first)
    if per_item:
        out["coco_caption_per_image"] = coco["per_image"]
        out["sacrebleu"]["sentence_bleu"] = [dict(s, image_id=k) for s, k in zip(sentence, ids)]
        for stem, (best, first) in rouge_items.items():
            out["rouge_score"]["use_stemmer_%s" % str(stem).lower()]["per_image"] = [
                {"image_id": k, "max_over_refs": b, "first_ref_fmeasure": {t: f[t]["fmeasure"] for t in ROUGE_TYPES}}
                for k, b, f in zip(ids, best, first)]
    return out


def _eval_vqa(q_path, questions, a_path, anns, r_path, results, per_item):
    annotations = anns["annotations"]
    for a in annotations:
        _need(isinstance(a, dict) and all(k in a for k in ("question_id", "question_type", "answer_type"))
              and isinstance(a.get("answers"), list) and a["answers"], a_path,
              "every annotation needs question_id, question_type, answer_type and answers")
        for x in a["answers"]:
            _need(isinstance(x, dict) and isinstance(x.get("answer"), str), a_path,
                  "question %r: every answer needs a string 'answer'" % (a["question_id"],))
    qids = set(q.get("question_id") for q in questions["questions"] if isinstance(q, dict))
    missing = [a["question_id"] for a in annotations if a["question_id"] not in qids]
    _need(not missing, q_path, "annotated questions missing from the questions file (e.g. %s)" % missing[:5])
    for r in results:
        _need(isinstance(r, dict) and "question_id" in r and isinstance(r.get("answer"), str), r_path,
              "every result needs 'question_id' and a string 'answer'")
    try:
        out = vqa_accuracy(annotations, results)
    except ValueError as e:
        raise FormatError("%s: %s" % (r_path, e)) from None
    if not per_item:
        out.pop("per_question")
    return out


def _eval_mmmu(path, samples, per_item):
    try:
        out = mmmu_accuracy(samples)
    except (ValueError, SyntaxError) as e:
        raise FormatError("%s: %s" % (path, e)) from None
    if not per_item:
        out.pop("per_item")
    return out


def _eval_retrieval(path, data, per_item):
    try:
        out = retrieval_recall_at_k(data["scores"], data["text_image_index"])
    except (ValueError, TypeError) as e:
        raise FormatError("%s: %s" % (path, e)) from None
    if not per_item:
        out.pop("per_query_hit")
    return out


def _eval_classification(path, data, per_item):
    try:
        out = zeroshot_classification(data["logits"], data["target"])
    except (ValueError, TypeError) as e:
        raise FormatError("%s: %s" % (path, e)) from None
    if not per_item:
        out.pop("pred_top1")
    return out


def evaluate_dir(directory, per_item=False):
    """Runs every metric the files in `directory` allow. Returns {benchmark: results}, each with
    the reference tools' metric names, plus "files" (the paths used)."""
    found = find_benchmark_files(directory)
    out = {}
    if "caption_results" in found:
        (ap, ad), (rp, rd) = found["caption_annotations"], found["caption_results"]
        out["captioning"] = _eval_captioning(ap, ad, rp, rd, per_item)
        out["captioning"]["files"] = [ap, rp]
    if "vqa_results" in found:
        (qp, qd), (ap, ad), (rp, rd) = found["vqa_questions"], found["vqa_annotations"], found["vqa_results"]
        out["vqa"] = _eval_vqa(qp, qd, ap, ad, rp, rd, per_item)
        out["vqa"]["files"] = [qp, ap, rp]
    if "mmmu" in found:
        out["mmmu"] = _eval_mmmu(*found["mmmu"], per_item)
        out["mmmu"]["files"] = [found["mmmu"][0]]
    if "retrieval" in found:
        out["retrieval"] = _eval_retrieval(*found["retrieval"], per_item)
        out["retrieval"]["files"] = [found["retrieval"][0]]
    if "classification" in found:
        out["zeroshot_classification"] = _eval_classification(*found["classification"], per_item)
        out["zeroshot_classification"]["files"] = [found["classification"][0]]
    return out
