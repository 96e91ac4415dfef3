"""ANLS (document VQA) and WER (speech recognition). No golden files exist for these two; the
definitions below are the standard ones and are checked against hand-computed cases (and jiwer
for WER when it is installed)."""
import unicodedata

__all__ = ["levenshtein", "anls", "wer"]


def levenshtein(a, b):
    """Edit distance (unit-cost insertions, deletions, substitutions) between two sequences
    (strings compare characters, lists compare items)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def _anls_norm(s):
    return " ".join(s.strip().lower().split())


def anls(predictions, gold_answers, threshold=0.5, normalize=True):
    """Average Normalized Levenshtein Similarity (Biten et al., ICCV 2019; DocVQA).

    predictions: one answer string per question; gold_answers: per question a list of accepted
    answers (a single string is accepted too). Per question the score is the maximum over gold
    answers of 1 - NL, where NL = levenshtein(gold, pred) / max(len(gold), len(pred)), and 0 when
    NL >= threshold (so NL = 0.5 exactly scores 0, as in the paper's definition). normalize=True
    (the DocVQA convention) lower-cases, strips and collapses whitespace first; two empty
    strings have NL = 0. Returns {"anls": mean, "per_question": [...]}.
    """
    if isinstance(predictions, str):
        predictions, gold_answers = [predictions], [gold_answers]
    predictions, gold_answers = list(predictions), list(gold_answers)
    if len(predictions) != len(gold_answers):
        raise ValueError("%d predictions for %d questions" % (len(predictions), len(gold_answers)))
    if not predictions:
        raise ValueError("no question to evaluate")
    scores = []
    for i, (pred, golds) in enumerate(zip(predictions, gold_answers)):
        if isinstance(golds, str):
            golds = [golds]
        if not golds:
            raise ValueError("question %d has no gold answer" % i)
        p = _anls_norm(pred) if normalize else pred
        best = 0.0
        for g in golds:
            g = _anls_norm(g) if normalize else g
            length = max(len(g), len(p))
            nl = levenshtein(g, p) / length if length else 0.0
            best = max(best, 1.0 - nl if nl < threshold else 0.0)
        scores.append(best)
    return {"anls": sum(scores) / len(scores), "per_question": scores}


def _wer_norm(s):
    # lower-case, every Unicode punctuation character becomes a space, whitespace collapsed
    s = s.lower()
    s = "".join(" " if unicodedata.category(c).startswith("P") else c for c in s)
    return s.split()


def wer(references, hypotheses, normalize=False, return_counts=False):
    """Corpus word error rate: total word-level edit distance / total reference words (what
    jiwer.wer computes for lists). Words are whitespace-separated; normalize=True first
    lower-cases and turns punctuation (Unicode category P*) into spaces, so "Hello, world!" and
    "hello world" are equal. A single string pair is accepted. With return_counts=True returns
    {"wer", "errors", "reference_words"}."""
    if isinstance(references, str):
        references, hypotheses = [references], [hypotheses]
    references, hypotheses = list(references), list(hypotheses)
    if len(references) != len(hypotheses):
        raise ValueError("%d references for %d hypotheses" % (len(references), len(hypotheses)))
    split = _wer_norm if normalize else (lambda s: s.split())
    errors = words = 0
    for ref, hyp in zip(references, hypotheses):
        r, h = split(ref), split(hyp)
        errors += levenshtein(r, h)
        words += len(r)
    if words == 0:
        raise ValueError("the references contain no word; WER is undefined")
    value = errors / words
    if return_counts:
        return {"wer": value, "errors": errors, "reference_words": words}
    return value
