"""VQAv2 accuracy exactly as the official vqaEval.py (GT-Vision-Lab/VQA @ a013f00) computes it:
answer normalization (only when the 10 human answers disagree), min(#matches / 3, 1) averaged
over the 10 leave-one-out subsets, overall / per answer type / per question type."""
import re

__all__ = ["vqa_accuracy", "vqa_normalize_answer"]

_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
    "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's", "thered": "there'd",
    "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're", "theres": "there's",
    "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're",
    "theyve": "they've", "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've",
    "weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're", "whats": "what's",
    "whatve": "what've", "whens": "when's", "whered": "where'd", "wheres": "where's", "whereve": "where've",
    "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've", "wholl": "who'll", "whos": "who's",
    "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's", "wont": "won't",
    "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've",
    "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll", "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd", "youd've": "you'd've",
    "you'dve": "you'd've", "youll": "you'll", "youre": "you're", "youve": "you've"}
_MANUAL_MAP = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
               "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = ("a", "an", "the")
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")  # sic: a broken look-behind, kept as in the tool
_COMMA_STRIP = re.compile(r"(\d)(\,)(\d)")
_PUNCT = [";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]


def _process_punctuation(text):
    out = text
    for p in _PUNCT:
        if (p + " " in text or " " + p in text) or (re.search(_COMMA_STRIP, text) is not None):
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, re.UNICODE)  # sic: re.UNICODE (32) lands in `count`


def _process_digit_article(text):
    words = []
    for w in text.lower().split():
        w = _MANUAL_MAP.get(w, w)
        if w not in _ARTICLES:
            words.append(w)
    return " ".join(_CONTRACTIONS.get(w, w) for w in words)


def vqa_normalize_answer(text):
    """The official normalization (applied when the human answers are not unanimous)."""
    return _process_digit_article(_process_punctuation(text))


def _clean(text):
    return text.replace("\n", " ").replace("\t", " ").strip()


def _question_accuracy(pred, answers):
    """answers: the annotation's list of {'answer': ..., ...} dicts (not modified)."""
    answers = [dict(a, answer=_clean(a["answer"])) for a in answers]
    pred = _clean(pred)
    normalized = len(set(a["answer"] for a in answers)) > 1
    if normalized:
        for a in answers:
            a["answer"] = vqa_normalize_answer(a["answer"])
        pred = vqa_normalize_answer(pred)
    accs = []
    for gt in answers:
        others = [item for item in answers if item != gt]
        matching = [item for item in others if item["answer"] == pred]
        accs.append(min(1, float(len(matching)) / 3))
    return float(sum(accs)) / len(accs), pred, [a["answer"] for a in answers], normalized


def vqa_accuracy(annotations, results, ndigits=2):
    """VQAEval(vqa, vqaRes, n=2).evaluate().

    annotations: the `annotations` list of a VQAv2 annotation file (question_id, question_type,
    answer_type, answers[10]); results: [{question_id, answer}] (a duplicated id keeps the last
    answer). The results must cover exactly the annotated question ids, as loadRes asserts.
    Returns {"overall", "perQuestionType", "perAnswerType"} rounded like the tool (percent, 2
    decimals), "unrounded" (same means without rounding) and "per_question" detail.
    """
    res = {}
    for r in results:
        res[r["question_id"]] = r["answer"]
    ann_ids = [a["question_id"] for a in annotations]
    if set(res) != set(ann_ids):
        missing = sorted(set(ann_ids) - set(res))[:5]
        extra = sorted(set(res) - set(ann_ids))[:5]
        raise ValueError("results do not correspond to the annotated questions (missing answers for %s%s)"
                         % (missing, "; unknown question ids %s" % extra if extra else ""))
    acc_qa, by_qtype, by_atype, per_question = [], {}, {}, []
    for ann in annotations:
        qid = ann["question_id"]
        if not isinstance(res[qid], str):
            raise ValueError("question %r: answer must be a string, got %r" % (qid, res[qid]))
        acc, pred, gts, normalized = _question_accuracy(res[qid], ann["answers"])
        acc_qa.append(acc)
        by_qtype.setdefault(ann["question_type"], []).append(acc)
        by_atype.setdefault(ann["answer_type"], []).append(acc)
        per_question.append({"question_id": qid, "answer_type": ann["answer_type"],
                             "question_type": ann["question_type"], "prediction": res[qid],
                             "normalization_applied": normalized, "prediction_compared": pred,
                             "gt_answers_compared": gts, "accuracy": acc,
                             "accuracy_official_rounded": round(100 * acc, ndigits)})
    if not acc_qa:
        raise ValueError("no question to evaluate")
    mean = lambda v: 100 * float(sum(v)) / len(v)
    unrounded = {"overall": mean(acc_qa),
                 "perQuestionType": {k: mean(v) for k, v in by_qtype.items()},
                 "perAnswerType": {k: mean(v) for k, v in by_atype.items()}}
    return {"overall": round(unrounded["overall"], ndigits),
            "perQuestionType": {k: round(v, ndigits) for k, v in unrounded["perQuestionType"].items()},
            "perAnswerType": {k: round(v, ndigits) for k, v in unrounded["perAnswerType"].items()},
            "unrounded": unrounded, "per_question": per_question}
