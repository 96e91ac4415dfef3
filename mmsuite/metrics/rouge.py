"""ROUGE-1/2/L/Lsum as Google's rouge_score computes them (RougeScorer.score(target, prediction)),
with the multi-reference rule of its score_multi (keep the reference with the largest F, the
first one on ties). Tokenizer: lower-case, non-[a-z0-9] runs become spaces, optional nltk Porter
stemming of tokens longer than 3 characters."""
import re
from collections import Counter

from .porter import porter_stem

__all__ = ["rouge_tokenize", "rouge_score", "rouge_score_multi", "ROUGE_TYPES"]

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_SPACES = re.compile(r"\s+")
_VALID = re.compile(r"^[a-z0-9]+$")


def rouge_tokenize(text, use_stemmer=False):
    text = _NON_ALNUM.sub(" ", text.lower())
    tokens = _SPACES.split(text)
    if use_stemmer:
        tokens = [porter_stem(t) if len(t) > 3 else t for t in tokens]
    return [t for t in tokens if _VALID.match(t)]


def _fmeasure(p, r):
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def _score(p, r):
    return {"precision": p, "recall": r, "fmeasure": _fmeasure(p, r)}


def _ngram_score(target, pred, n):
    tc = Counter(tuple(target[i:i + n]) for i in range(len(target) - n + 1))
    pc = Counter(tuple(pred[i:i + n]) for i in range(len(pred) - n + 1))
    overlap = sum(min(c, pc[g]) for g, c in tc.items())
    return _score(overlap / max(sum(pc.values()), 1), overlap / max(sum(tc.values()), 1))


def _lcs_table(ref, can):
    t = [[0] * (len(can) + 1) for _ in range(len(ref) + 1)]
    for i in range(1, len(ref) + 1):
        for j in range(1, len(can) + 1):
            t[i][j] = t[i - 1][j - 1] + 1 if ref[i - 1] == can[j - 1] else max(t[i - 1][j], t[i][j - 1])
    return t


def _lcs_indices(ref, can):
    t = _lcs_table(ref, can)
    i, j, out = len(ref), len(can), []
    while i > 0 and j > 0:
        if ref[i - 1] == can[j - 1]:
            out.insert(0, i - 1)
            i -= 1
            j -= 1
        elif t[i][j - 1] > t[i - 1][j]:
            j -= 1
        else:
            i -= 1
    return out


def _lcs_score(target, pred):
    if not target or not pred:
        return {"precision": 0, "recall": 0, "fmeasure": 0}
    lcs = _lcs_table(target, pred)[-1][-1]
    return _score(lcs / len(pred), lcs / len(target))


def _lsum_score(ref_sents, can_sents):
    if not ref_sents or not can_sents:
        return {"precision": 0, "recall": 0, "fmeasure": 0}
    m, n = sum(map(len, ref_sents)), sum(map(len, can_sents))
    if not n or not m:
        return {"precision": 0, "recall": 0, "fmeasure": 0}
    cnt_r, cnt_c = Counter(), Counter()
    for s in ref_sents:
        cnt_r.update(s)
    for s in can_sents:
        cnt_c.update(s)
    hits = 0
    for r in ref_sents:
        union = sorted(set().union(*[_lcs_indices(r, c) for c in can_sents]))
        for t in (r[i] for i in union):
            if cnt_c[t] > 0 and cnt_r[t] > 0:
                hits += 1
                cnt_c[t] -= 1
                cnt_r[t] -= 1
    return _score(hits / n, hits / m)


def rouge_score(target, prediction, use_stemmer=False, rouge_types=ROUGE_TYPES):
    """RougeScorer(rouge_types, use_stemmer).score(target, prediction): {type: {precision, recall,
    fmeasure}}. rougeLsum splits both texts on newlines."""
    out = {}
    tt = pt = None
    for rt in rouge_types:
        if rt == "rougeLsum":
            sents = lambda s: [rouge_tokenize(x, use_stemmer) for x in s.split("\n") if len(x)]
            out[rt] = _lsum_score(sents(target), sents(prediction))
            continue
        if tt is None:
            tt, pt = rouge_tokenize(target, use_stemmer), rouge_tokenize(prediction, use_stemmer)
        if rt == "rougeL":
            out[rt] = _lcs_score(tt, pt)
        elif re.fullmatch(r"rouge[1-9]", rt):
            out[rt] = _ngram_score(tt, pt, int(rt[5:]))
        else:
            raise ValueError("unknown rouge type %r" % rt)
    return out


def rouge_score_multi(targets, prediction, use_stemmer=False, rouge_types=ROUGE_TYPES):
    """score_multi: per rouge type the scores of the reference with the largest F (first on
    ties); each entry also carries `best_ref` (its index)."""
    all_scores = [rouge_score(t, prediction, use_stemmer, rouge_types) for t in targets]
    if not all_scores:
        raise ValueError("need at least one reference")
    out = {}
    for rt in rouge_types:
        fs = [s[rt]["fmeasure"] for s in all_scores]
        best = fs.index(max(fs))
        out[rt] = dict(all_scores[best][rt], best_ref=best)
    return out
