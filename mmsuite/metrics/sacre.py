"""BLEU as sacrebleu 2.6.0 computes it (default 13a tokenizer, case-sensitive, 'exp' smoothing,
closest reference length with ties to the shorter one), without depending on sacrebleu.

corpus: `sacrebleu_corpus_bleu(hyps, [ref_stream_0, ref_stream_1, ...])`, signature
nrefs:N|case:mixed|eff:no|tok:13a|smooth:exp. sentence: `sacrebleu_sentence_bleu(hyp, refs)`,
which (like sacrebleu.sentence_bleu) uses the effective order.
"""
import math
import re
from collections import Counter

__all__ = ["tokenize_13a", "sacrebleu_corpus_bleu", "sacrebleu_sentence_bleu"]

_13A_RULES = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),  # symbols
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),  # period/comma unless preceded by a digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),  # period/comma unless followed by a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),  # dash after a digit
]


def tokenize_13a(line):
    """sacrebleu's '13a' tokenizer (mteval-v13a)."""
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    line = " %s " % line
    for rx, repl in _13A_RULES:
        line = rx.sub(repl, line)
    return " ".join(line.split())


def _ngrams(tokens, max_order):
    c = Counter()
    for n in range(1, max_order + 1):
        for i in range(len(tokens) - n + 1):
            c[tuple(tokens[i:i + n])] += 1
    return c


def _closest_ref_len(hyp_len, ref_lens):
    closest_diff, closest_len = -1, -1
    for rl in ref_lens:
        diff = abs(hyp_len - rl)
        if closest_diff == -1 or diff < closest_diff:
            closest_diff, closest_len = diff, rl
        elif diff == closest_diff and rl < closest_len:
            closest_len = rl
    return closest_len


def _segment_stats(hyp, refs, lowercase, max_order):
    prep = (lambda s: tokenize_13a((s.lower() if lowercase else s).rstrip()))
    ref_ngrams, ref_lens = Counter(), []
    for r in refs:
        toks = prep(r).split()
        ref_lens.append(len(toks))
        for ng, c in _ngrams(toks, max_order).items():
            if ref_ngrams[ng] < c:
                ref_ngrams[ng] = c
    hyp_tok = prep(hyp)
    toks = hyp_tok.split()
    correct, total = [0] * max_order, [0] * max_order
    for ng, c in _ngrams(toks, max_order).items():
        total[len(ng) - 1] += c
        if ng in ref_ngrams:
            correct[len(ng) - 1] += min(c, ref_ngrams[ng])
    return len(toks), _closest_ref_len(len(toks), ref_lens), correct, total, hyp_tok


def _compute_bleu(correct, total, sys_len, ref_len, effective_order, max_order=4):
    if sys_len < ref_len:
        bp = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0
    else:
        bp = 1.0
    precisions = [0.0] * max_order
    out = {"counts": list(correct), "totals": list(total), "bp": bp, "sys_len": sys_len, "ref_len": ref_len}
    if not any(correct):
        out.update(score=0.0, precisions=precisions)
        return out
    smooth_mteval, eff_order = 1.0, max_order
    for n in range(1, max_order + 1):
        if total[n - 1] == 0:
            break
        if effective_order:
            eff_order = n
        if correct[n - 1] == 0:
            smooth_mteval *= 2
            precisions[n - 1] = 100.0 / (smooth_mteval * total[n - 1])
        else:
            precisions[n - 1] = 100.0 * correct[n - 1] / total[n - 1]
    logs = [-9999999999 if p == 0.0 else math.log(p) for p in precisions[:eff_order]]
    out.update(score=bp * math.exp(sum(logs) / eff_order), precisions=precisions)
    return out


def sacrebleu_corpus_bleu(hypotheses, references, lowercase=False):
    """Corpus BLEU of sacrebleu.corpus_bleu(hypotheses, references) with its defaults.
    references is a list of reference streams (each as long as hypotheses); None entries mark a
    missing reference for that segment. Returns {score, counts, totals, precisions, bp, sys_len,
    ref_len, signature}."""
    hypotheses = list(hypotheses)
    streams = [list(s) for s in references]
    if not streams:
        raise ValueError("need at least one reference stream")
    for s in streams:
        if len(s) != len(hypotheses):
            raise ValueError("reference stream has %d segments, hypotheses %d" % (len(s), len(hypotheses)))
    if any(h is None for h in hypotheses):
        raise ValueError("a hypothesis is None")
    correct, total = [0] * 4, [0] * 4
    sys_len = ref_len = 0
    nrefs = set()
    for i, hyp in enumerate(hypotheses):
        refs = [s[i] for s in streams if s[i] is not None]
        nrefs.add(len(refs))
        hl, rl, c, t, _ = _segment_stats(hyp, refs, lowercase, 4)
        sys_len += hl
        ref_len += rl
        for k in range(4):
            correct[k] += c[k]
            total[k] += t[k]
    out = _compute_bleu(correct, total, sys_len, ref_len, effective_order=False)
    out["signature"] = "nrefs:%s|case:%s|eff:no|tok:13a|smooth:exp" % (
        nrefs.pop() if len(nrefs) == 1 else "var", "lc" if lowercase else "mixed")
    return out


def sacrebleu_sentence_bleu(hypothesis, references, lowercase=False):
    """sacrebleu.sentence_bleu(hypothesis, references): 'exp' smoothing with the effective order.
    Also returns the 13a-tokenized hypothesis as `hypothesis_13a`."""
    hl, rl, c, t, tok = _segment_stats(hypothesis, list(references), lowercase, 4)
    out = _compute_bleu(c, t, hl, rl, effective_order=True)
    out["hypothesis_13a"] = tok
    return out
