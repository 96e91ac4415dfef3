"""coco-caption scorers (pycocoevalcap BLEU-1..4, ROUGE-L, CIDEr-D), reproduced operation for
operation so corpus and per-image values equal the tool's, and the COCOEvalCap pipeline on top.

Scorers take already tokenized text (space-separated tokens): `gts` maps an image id to its list
of reference strings, `res` maps it to a one-element list holding the candidate. `coco_caption_scores`
starts from raw captions and tokenizes them with the native PTB tokenizer (two runs, references
then candidates, as coco-caption does).
"""
import math
from collections import defaultdict

import numpy as np

from .ptb import ptb_tokenize_lines

__all__ = ["bleu", "rouge_l", "cider_d", "coco_caption_scores"]


def _check(gts, res):
    if set(gts) != set(res):
        missing = sorted(set(gts) ^ set(res), key=str)[:5]
        raise ValueError("references and candidates cover different image ids (e.g. %s)" % missing)
    for k in gts:
        if not isinstance(res[k], (list, tuple)) or len(res[k]) != 1:
            raise ValueError("image %r: need exactly one candidate caption, got %r" % (k, res[k]))
        if not isinstance(gts[k], (list, tuple)) or len(gts[k]) < 1:
            raise ValueError("image %r: need at least one reference caption" % (k,))


def _ngrams(words, n):
    counts = defaultdict(int)
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            counts[tuple(words[i:i + k])] += 1
    return counts


# ---------------------------------------------------------------------------------------------
# BLEU (bleu_scorer.py, option='closest')
# ---------------------------------------------------------------------------------------------

def _bleu_from_counts(correct, guess, testlen, reflen, n):
    tiny, small = 1e-15, 1e-9
    out, b = [], 1.0
    for k in range(n):
        b *= (float(correct[k]) + tiny) / (float(guess[k]) + small)
        out.append(b ** (1.0 / (k + 1)))
    ratio = (testlen + tiny) / (reflen + small)
    if ratio < 1:
        out = [v * math.exp(1 - 1 / ratio) for v in out]
    return out


def bleu(gts, res, n=4):
    """coco-caption BLEU-1..n. Returns (corpus [Bleu_1..Bleu_n], per-image [[Bleu_k per image]...]),
    per-image lists in the iteration order of `gts`."""
    _check(gts, res)
    tot_correct, tot_guess = [0] * n, [0] * n
    tot_test = tot_ref = 0
    per_image = [[] for _ in range(n)]
    for key in gts:
        refs = [r.split() for r in gts[key]]
        hyp = res[key][0].split()
        maxcounts = {}
        for ref in refs:
            for ng, c in _ngrams(ref, n).items():
                maxcounts[ng] = max(maxcounts.get(ng, 0), c)
        testlen = len(hyp)
        reflen = min((abs(len(r) - testlen), len(r)) for r in refs)[1]
        guess = [max(0, testlen - k + 1) for k in range(1, n + 1)]
        correct = [0] * n
        for ng, c in _ngrams(hyp, n).items():
            correct[len(ng) - 1] += min(maxcounts.get(ng, 0), c)
        img = _bleu_from_counts(correct, guess, testlen, reflen, n)
        for k in range(n):
            tot_correct[k] += correct[k]
            tot_guess[k] += guess[k]
            per_image[k].append(img[k])
        tot_test += testlen
        tot_ref += reflen
    return _bleu_from_counts(tot_correct, tot_guess, tot_test, tot_ref, n), per_image


# ---------------------------------------------------------------------------------------------
# ROUGE-L (rouge.py, beta = 1.2, precision and recall maximized separately over references)
# ---------------------------------------------------------------------------------------------

def _lcs(a, b):
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _rouge_l_one(cand, refs, beta=1.2):
    tc = cand.split(" ")
    prec, rec = [], []
    for ref in refs:
        tr = ref.split(" ")
        lcs = _lcs(tr, tc)
        prec.append(lcs / float(len(tc)))
        rec.append(lcs / float(len(tr)))
    p, r = max(prec), max(rec)
    if p != 0 and r != 0:
        return ((1 + beta ** 2) * p * r) / float(r + beta ** 2 * p)
    return 0.0


def rouge_l(gts, res):
    """coco-caption ROUGE-L. Returns (corpus mean, per-image list in `gts` order)."""
    _check(gts, res)
    scores = [_rouge_l_one(res[k][0], gts[k]) for k in gts]
    return float(np.mean(np.array(scores))), scores


# ---------------------------------------------------------------------------------------------
# CIDEr-D (cider_scorer.py, n = 4, sigma = 6, df over the evaluated images' references)
# ---------------------------------------------------------------------------------------------

def cider_d(gts, res, n=4, sigma=6.0):
    """coco-caption CIDEr (CIDEr-D). Scores depend on the evaluated set (document frequencies
    come from its references). Returns (corpus mean, per-image list in `gts` order)."""
    _check(gts, res)
    keys = list(gts)
    crefs = [[_ngrams(r.split(), n) for r in gts[k]] for k in keys]
    ctest = [_ngrams(res[k][0].split(), n) for k in keys]
    df = defaultdict(float)
    for refs in crefs:
        for ng in set(ng for ref in refs for ng in ref):
            df[ng] += 1
    ref_len = np.log(float(len(crefs)))

    def vec(cnts):
        v = [defaultdict(float) for _ in range(n)]
        norm = [0.0] * n
        length = 0
        for ng, tf in cnts.items():
            k = len(ng) - 1
            v[k][ng] = float(tf) * (ref_len - np.log(max(1.0, df[ng])))
            norm[k] += pow(v[k][ng], 2)
            if k == 1:  # sic: the code measures length in bigrams
                length += tf
        return v, [np.sqrt(x) for x in norm], length

    def sim(vh, vr, nh, nr, lh, lr):
        delta = float(lh - lr)
        val = np.array([0.0] * n)
        for k in range(n):
            for ng in vh[k]:
                val[k] += min(vh[k][ng], vr[k][ng]) * vr[k][ng]
            if nh[k] != 0 and nr[k] != 0:
                val[k] /= nh[k] * nr[k]
            val[k] *= np.e ** (-(delta ** 2) / (2 * sigma ** 2))
        return val

    scores = []
    for test, refs in zip(ctest, crefs):
        vh, nh, lh = vec(test)
        score = np.array([0.0] * n)
        for ref in refs:
            vr, nr, lr = vec(ref)
            score += sim(vh, vr, nh, nr, lh, lr)
        avg = np.mean(score)
        avg /= len(refs)
        avg *= 10.0
        scores.append(float(avg))
    return float(np.mean(np.array(scores))), scores


# ---------------------------------------------------------------------------------------------
# COCOEvalCap pipeline
# ---------------------------------------------------------------------------------------------

def coco_caption_scores(references, candidates, image_ids=None, tokenize=True):
    """BLEU-1..4, ROUGE-L and CIDEr-D as COCOEvalCap.evaluate() reports them.

    references: {image_id: [caption, ...]}; candidates: {image_id: caption} (or a one-element
    list). image_ids: the evaluated images, in order (default: the candidates' ids in the order of
    `references`). With tokenize=True the captions go through the native PTB tokenizer first.
    Returns {"metrics": {Bleu_1.., ROUGE_L, CIDEr}, "per_image": [...]}; CIDEr-D depends on the
    evaluated set, so score the whole set at once rather than in batches.
    """
    if image_ids is None:
        image_ids = [k for k in references if k in candidates]
    image_ids = list(image_ids)
    for k in image_ids:
        if k not in references:
            raise ValueError("image %r has a candidate but no reference captions" % (k,))
        if k not in candidates:
            raise ValueError("image %r has no candidate caption" % (k,))
    if not image_ids:
        raise ValueError("no image to evaluate")
    cand = {}
    for k in image_ids:
        c = candidates[k]
        if isinstance(c, (list, tuple)):
            if len(c) != 1:
                raise ValueError("image %r: need exactly one candidate caption, got %d" % (k, len(c)))
            c = c[0]
        cand[k] = c
    if tokenize:
        flat = [c for k in image_ids for c in references[k]]
        tok = ptb_tokenize_lines(flat)
        gts, pos = {}, 0
        for k in image_ids:
            gts[k] = tok[pos:pos + len(references[k])]
            pos += len(references[k])
        res = {k: [t] for k, t in zip(image_ids, ptb_tokenize_lines([cand[k] for k in image_ids]))}
    else:
        gts = {k: list(references[k]) for k in image_ids}
        res = {k: [cand[k]] for k in image_ids}
    b, b_img = bleu(gts, res, 4)
    r, r_img = rouge_l(gts, res)
    c, c_img = cider_d(gts, res)
    metrics = {"Bleu_%d" % (i + 1): float(b[i]) for i in range(4)}
    metrics["ROUGE_L"] = r
    metrics["CIDEr"] = c
    per_image = []
    for i, k in enumerate(image_ids):
        item = {"image_id": k, "prediction_ptb": res[k][0], "references_ptb": list(gts[k])}
        item.update({"Bleu_%d" % (j + 1): float(b_img[j][i]) for j in range(4)})
        item["ROUGE_L"] = float(r_img[i])
        item["CIDEr"] = c_img[i]
        per_image.append(item)
    return {"metrics": metrics, "per_image": per_image}
