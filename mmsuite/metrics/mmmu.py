"""MMMU accuracy as the official eval_utils.py (MMMU-Benchmark/MMMU) computes it: response parsing
(parse_multi_choice_response / parse_open_response), eval_multi_choice / eval_open, per-category
accuracy and instance-level aggregation per domain and overall (main_eval_only.py).

Random fallback: when no option can be parsed the tool picks random.choice(all_choices) from the
module-level generator seeded with 42 at import. We replay the same stream (CPython's MT19937,
random.Random(seed)) in item order, so a fresh run over a file reproduces the tool exactly; items
that fell back are flagged and `deterministic_subset` gives the accuracy without them.
"""
import ast
import random
import re

__all__ = ["mmmu_accuracy", "parse_multi_choice_response", "parse_open_response", "eval_multi_choice",
           "eval_open", "DOMAIN_CAT2SUB_CAT"]

DOMAIN_CAT2SUB_CAT = {
    "Art and Design": ["Art", "Art_Theory", "Design", "Music"],
    "Business": ["Accounting", "Economics", "Finance", "Manage", "Marketing"],
    "Science": ["Biology", "Chemistry", "Geography", "Math", "Physics"],
    "Health and Medicine": ["Basic_Medical_Science", "Clinical_Medicine", "Diagnostics_and_Laboratory_Medicine",
                            "Pharmacy", "Public_Health"],
    "Humanities and Social Science": ["History", "Literature", "Sociology", "Psychology"],
    "Tech and Engineering": ["Agriculture", "Architecture_and_Engineering", "Computer_Science", "Electronics",
                             "Energy_and_Power", "Materials", "Mechanical_Engineering"],
}


def parse_multi_choice_response(response, all_choices, index2ans, rng=None):
    """Returns (letter, fell_back). rng: a random.Random used when nothing parses (the tool's
    global generator; default random.Random(42))."""
    for ch in [",", ".", "!", "?", ";", ":", "'"]:
        response = response.strip(ch)
    response = " " + response + " "
    index_ans, ans_with_brack, candidates = True, False, []
    for choice in all_choices:
        if "(%s)" % choice in response:
            candidates.append(choice)
            ans_with_brack = True
    if not candidates:
        for choice in all_choices:
            if " %s " % choice in response:
                candidates.append(choice)
    if not candidates and len(response.split()) > 5:
        for index, ans in index2ans.items():
            if ans.lower() in response.lower():
                candidates.append(index)
                index_ans = False
    if not candidates:
        return (rng if rng is not None else random.Random(42)).choice(all_choices), True
    if len(candidates) == 1:
        return candidates[0], False
    if index_ans:
        fmt = "(%s)" if ans_with_brack else " %s "
        starts = [response.rfind(fmt % c) for c in candidates]
    else:
        starts = [response.lower().rfind(index2ans[c].lower()) for c in candidates]
    return candidates[starts.index(max(starts))], False  # np.argmax: first maximum


def _is_number(s):
    try:
        float(s.replace(",", ""))
        return True
    except ValueError:
        return False


def _normalize_str(s):
    s = s.strip()
    if _is_number(s):
        return [round(float(s.replace(",", "")), 2)]
    s = s.lower()
    return [" " + s, s + " "] if len(s) == 1 else [s]


def _extract_numbers(s):
    commas = re.findall(r"-?\b\d{1,3}(?:,\d{3})+\b", s)
    scientific = re.findall(r"-?\d+(?:\.\d+)?[eE][+-]?\d+", s)
    simple = re.findall(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])", s)
    return commas + scientific + simple


def _key_subresponses(response):
    response = response.strip().strip(".").lower()
    subs = re.split(r"\.\s(?=[A-Z])|\n", response)
    indicators = ["could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result "]
    keys = []
    for i, resp in enumerate(subs):
        if i == len(subs) - 1:
            indicators.extend(["="])
        shortest = None
        for ind in indicators:
            if ind in resp:
                tail = resp.split(ind)[-1].strip()
                if not shortest or len(tail) < len(shortest):
                    shortest = tail
        if shortest and shortest.strip() not in [":", ",", ".", "!", "?", ";", ":", "'"]:
            keys.append(shortest)
    return keys if keys else [response]


def parse_open_response(response):
    """The tool's prediction list (a set: order is irrelevant): key sub-responses, every number
    found in them, normalized (numbers -> round(float, 2), strings lower-cased)."""
    keys = _key_subresponses(response)
    preds = list(keys)
    for r in keys:
        preds.extend(_extract_numbers(r))
    out = []
    for p in preds:
        out.extend(_normalize_str(p))
    return list(set(out))


def eval_multi_choice(gold, pred):
    if isinstance(gold, list):
        return any(a == pred for a in gold)
    return gold == pred


def eval_open(gold, preds):
    norm = []
    for a in (gold if isinstance(gold, list) else [gold]):
        norm.extend(_normalize_str(a))
    for p in preds:
        if isinstance(p, str):
            if any(isinstance(a, str) and a in p for a in norm):
                return True
        elif p in norm:
            return True
    return False


def _options(item):
    opts = item.get("options", [])
    if isinstance(opts, str):  # the Hugging Face dataset stores a Python literal
        opts = ast.literal_eval(opts)
    if not isinstance(opts, (list, tuple)):
        raise ValueError("item %r: options must be a list" % item.get("id"))
    return [str(o) for o in opts]


def _category(item_id):
    return "_".join(str(item_id).split("_")[1:-1])


def _group(items):
    num = len(items)
    correct = sum(1 for it in items if it["judge"] == "Correct")
    acc = correct / num if num else 0
    return {"num": num, "acc": acc, "acc_rounded_3": round(acc, 3)}


def _ins_level(groups):
    acc = ins = 0
    for g in groups:
        acc += g["acc"] * g["num"]
        ins += g["num"]
    return acc / ins if ins else 0


def mmmu_accuracy(samples, seed=42):
    """samples: [{id, question_type ('multiple-choice' | 'open'), options, answer, response}] in
    the order the tool parsed them. Returns overall / per_category / per_domain ({num, acc,
    acc_rounded_3}), num_random_fallback, deterministic_subset and per_item detail."""
    rng = random.Random(seed)
    per_item = []
    for s in samples:
        for key in ("id", "question_type", "answer", "response"):
            if key not in s:
                raise ValueError("MMMU item %r has no %r" % (s.get("id", "?"), key))
        response = s["response"] if isinstance(s["response"], str) else str(s["response"])
        fell_back = False
        if s["question_type"] == "multiple-choice":
            options = _options(s)
            if not options:
                raise ValueError("multiple-choice item %r has no options" % s["id"])
            letters = [chr(ord("A") + i) for i in range(len(options))]
            pred, fell_back = parse_multi_choice_response(response, letters, dict(zip(letters, options)), rng)
            correct = eval_multi_choice(s["answer"], pred)
        else:
            pred = parse_open_response(response)
            correct = eval_open(s["answer"], pred)
            pred = sorted(pred, key=lambda x: (isinstance(x, str), x))
        per_item.append({"id": s["id"], "question_type": s["question_type"], "answer": s["answer"],
                         "response": response, "parsed_pred": pred, "random_fallback": fell_back,
                         "judge": "Correct" if correct else "Wrong"})
    if not per_item:
        raise ValueError("no MMMU item to evaluate")
    cats = {}
    for it in per_item:
        cats.setdefault(_category(it["id"]), []).append(it)
    per_category = {c: _group(v) for c, v in cats.items()}
    per_domain = {}
    for domain, subs in DOMAIN_CAT2SUB_CAT.items():
        groups = [per_category[c] for c in subs if c in per_category]
        acc = _ins_level(groups)
        per_domain["Overall-" + domain] = {"num": sum(g["num"] for g in groups), "acc": acc,
                                           "acc_rounded_3": round(acc, 3)}
    acc = _ins_level(per_category.values())
    det = [it for it in per_item if not it["random_fallback"]]
    det_correct = sum(1 for it in det if it["judge"] == "Correct")
    return {"overall": {"num": len(per_item), "acc": acc, "acc_rounded_3": round(acc, 3)},
            "per_category": per_category, "per_domain": per_domain,
            "num_random_fallback": len(per_item) - len(det),
            "deterministic_subset": {"num": len(det), "num_correct": det_correct,
                                     "acc": det_correct / len(det) if det else 0.0},
            "per_item": per_item}
