"""CLIP_benchmark retrieval recall@k and zero-shot classification (acc1, acc5, mean per-class
recall), with the tool's conventions: image_retrieval = text->image, text_retrieval = image->text
(hit if any of the image's texts is in the top k), recalls averaged in float32.

Ties: torch.topk on CPU (PyTorch 1.x/2.x, libstdc++) selects the top k with std::partial_sort when
k * 64 <= n and with std::nth_element otherwise; neither orders equal scores by index. The default
tie rule "torch" replays those two libstdc++ algorithms exactly, so the hit of every query equals
what torch returned; "optimistic", "pessimistic" and "stable" (lower index first) are the
documented alternatives.
"""
import math

import numpy as np

__all__ = ["retrieval_recall_at_k", "retrieval_ranks", "zeroshot_classification", "topk_indices_torch"]


# ---------------------------------------------------------------------------------------------
# libstdc++ selection algorithms with torch's comparator (x before y iff x > y, NaN largest)
# ---------------------------------------------------------------------------------------------

def _gt(x, y):
    return (math.isnan(x[0]) and not math.isnan(y[0])) or x[0] > y[0]


def _insertion_sort(a, first, last):
    for i in range(first + 1, last):
        if _gt(a[i], a[first]):
            val = a[i]
            a[first + 1:i + 1] = a[first:i]
            a[first] = val
        else:
            val, j = a[i], i
            while _gt(val, a[j - 1]):
                a[j] = a[j - 1]
                j -= 1
            a[j] = val


def _adjust_heap(a, first, hole, length, value):
    top = hole
    child = hole
    while child < (length - 1) // 2:
        child = 2 * (child + 1)
        if _gt(a[first + child], a[first + child - 1]):
            child -= 1
        a[first + hole] = a[first + child]
        hole = child
    if (length & 1) == 0 and child == (length - 2) // 2:
        child = 2 * (child + 1)
        a[first + hole] = a[first + child - 1]
        hole = child - 1
    parent = (hole - 1) // 2
    while hole > top and _gt(a[first + parent], value):
        a[first + hole] = a[first + parent]
        hole = parent
        parent = (hole - 1) // 2
    a[first + hole] = value


def _make_heap(a, first, last):
    length = last - first
    if length < 2:
        return
    parent = (length - 2) // 2
    while True:
        _adjust_heap(a, first, parent, length, a[first + parent])
        if parent == 0:
            return
        parent -= 1


def _heap_select(a, first, middle, last):
    _make_heap(a, first, middle)
    for i in range(middle, last):
        if _gt(a[i], a[first]):
            value = a[i]
            a[i] = a[first]
            _adjust_heap(a, first, 0, middle - first, value)


def _median_to_first(a, result, x, y, z):
    if _gt(a[x], a[y]):
        if _gt(a[y], a[z]):
            a[result], a[y] = a[y], a[result]
        elif _gt(a[x], a[z]):
            a[result], a[z] = a[z], a[result]
        else:
            a[result], a[x] = a[x], a[result]
    elif _gt(a[x], a[z]):
        a[result], a[x] = a[x], a[result]
    elif _gt(a[y], a[z]):
        a[result], a[z] = a[z], a[result]
    else:
        a[result], a[y] = a[y], a[result]


def _unguarded_partition(a, first, last, pivot):
    while True:
        while _gt(a[first], a[pivot]):
            first += 1
        last -= 1
        while _gt(a[pivot], a[last]):
            last -= 1
        if not first < last:
            return first
        a[first], a[last] = a[last], a[first]
        first += 1


def _nth_element(a, nth):
    first, last = 0, len(a)
    depth = 2 * (int(last - first).bit_length() - 1)
    while last - first > 3:
        if depth == 0:
            _heap_select(a, first, nth + 1, last)
            a[first], a[nth] = a[nth], a[first]
            return
        depth -= 1
        mid = first + (last - first) // 2
        _median_to_first(a, first, first + 1, mid, last - 1)
        cut = _unguarded_partition(a, first + 1, last, first)
        if cut <= nth:
            first = cut
        else:
            last = cut
    _insertion_sort(a, first, last)


def topk_indices_torch(row, k):
    """The index set torch.topk(row, k) returns on CPU (order not significant)."""
    a = [(float(v), j) for j, v in enumerate(row)]
    n = len(a)
    if k * 64 <= n:  # std::partial_sort: heap select (+ sort_heap, which keeps the set)
        _heap_select(a, 0, k, n)
    else:  # std::nth_element(begin, begin + k - 1, end)
        _nth_element(a, k - 1)
    return [j for _, j in a[:k]]


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------

def _bounds(scores, positive, rows=512):
    """Per query: 1 + negatives scoring above the best positive (optimistic rank), 1 + negatives
    scoring at least as high (pessimistic rank), and whether the row holds a NaN; in row blocks
    so the temporaries stay small."""
    n = scores.shape[0]
    opt, pes, nan = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, bool)
    for a in range(0, n, rows):
        s, p = scores[a:a + rows], positive[a:a + rows]
        best = np.where(p, s, -np.inf).max(axis=1)[:, None]
        opt[a:a + rows] = 1 + ((s > best) & ~p).sum(axis=1)
        pes[a:a + rows] = 1 + ((s >= best) & ~p).sum(axis=1)
        nan[a:a + rows] = np.isnan(s).any(axis=1)
    return opt, pes, nan


def _query_hits(scores, positive, k, tie_rule):
    """scores: (queries, candidates) float32; positive: same-shape bool. Returns int8 hits."""
    hits = np.zeros(scores.shape[0], dtype=np.int8)
    if tie_rule == "torch":
        # Whether some positive is in torch's top k depends on its tie order only when the
        # optimistic rank <= k < the pessimistic rank (or the row has a NaN): those queries
        # replay torch's selection, the others are decided by the ranks alone.
        empty = ~positive.any(axis=1)
        if empty.any():
            raise ValueError("query %d has no positive candidate" % int(np.flatnonzero(empty)[0]))
        opt, pes, nan = _bounds(scores, positive)
        hits[:] = pes <= k
        for q in np.flatnonzero(((opt <= k) & (pes > k)) | nan):
            hits[q] = bool(positive[q][topk_indices_torch(scores[q], k)].any())
        return hits
    for q in range(scores.shape[0]):
        row, pos = scores[q], positive[q]
        if not pos.any():
            raise ValueError("query %d has no positive candidate" % q)
        best = row[pos].max()
        neg = row[~pos]
        if tie_rule == "optimistic":
            rank = 1 + int((neg > best).sum())
        elif tie_rule == "pessimistic":
            rank = 1 + int((neg >= best).sum())
        elif tie_rule == "stable":
            order = np.argsort(-row, kind="stable")
            rank = 1 + int(np.flatnonzero(pos[order])[0])
        else:
            raise ValueError("unknown tie rule %r (torch, optimistic, pessimistic, stable)" % tie_rule)
        hits[q] = rank <= k
    return hits


def retrieval_recall_at_k(scores, text_image_index, ks=(1, 5, 10), tie_rule="torch"):
    """CLIP_benchmark zeroshot_retrieval recall@k.

    scores: (n_texts, n_images) text-image similarities; text_image_index[t]: image of text t.
    Returns {"image_retrieval_recall@k" (text->image), "text_retrieval_recall@k" (image->text)}
    as float32 means (Python floats), plus "hit_counts" and "per_query_hit" under the same keys.
    """
    s = np.asarray(scores, dtype=np.float32)
    if s.ndim != 2 or s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError("scores must be a non-empty (n_texts, n_images) matrix, got shape %s" % (s.shape,))
    idx = np.asarray(text_image_index)
    if idx.shape != (s.shape[0],) or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError("text_image_index must hold one integer image index per text (%d)" % s.shape[0])
    if idx.min() < 0 or idx.max() >= s.shape[1]:
        raise ValueError("text_image_index has an image index outside [0, %d)" % s.shape[1])
    positive = np.zeros(s.shape, dtype=bool)
    positive[np.arange(s.shape[0]), idx] = True
    metrics, counts, per_query = {}, {}, {}
    for k in ks:
        k = int(k)
        if k < 1 or k > s.shape[1] or k > s.shape[0]:
            raise ValueError("k=%d out of range for %d texts x %d images" % (k, s.shape[0], s.shape[1]))
        for name, sc, pos in (("image_retrieval_recall@%d" % k, s, positive),
                              ("text_retrieval_recall@%d" % k, s.T, positive.T)):
            hits = _query_hits(sc, pos, k, tie_rule)
            metrics[name] = float(np.float32(hits.sum()) / np.float32(len(hits)))
            counts[name] = int(hits.sum())
            per_query[name] = hits.tolist()
    return dict(metrics, hit_counts=counts, per_query_hit=per_query)


def retrieval_ranks(scores, text_image_index):
    """Per query, the rank of the best positive under both tie rules: optimistic = 1 + negatives
    scoring strictly higher, pessimistic = 1 + negatives scoring higher or equal. A query's hit
    at k depends on how ties are broken exactly when optimistic <= k < pessimistic.
    Returns {"text_to_image": {...}, "image_to_text": {...}}, each {"rank_optimistic": [...],
    "rank_pessimistic": [...]}."""
    s = np.asarray(scores, dtype=np.float32)
    idx = np.asarray(text_image_index)
    positive = np.zeros(s.shape, dtype=bool)
    positive[np.arange(s.shape[0]), idx] = True
    out = {}
    for name, sc, pos in (("text_to_image", s, positive), ("image_to_text", s.T, positive.T)):
        opt, pes, _ = _bounds(sc, pos)
        out[name] = {"rank_optimistic": opt.tolist(), "rank_pessimistic": pes.tolist()}
    return out


def zeroshot_classification(logits, target, tie_rule="torch"):
    """CLIP_benchmark zero-shot classification: acc1 and acc5 (fraction of images whose target is
    in the top k; acc5 is NaN with fewer than 5 classes) and mean_per_class_recall
    (sklearn balanced_accuracy_score of target vs argmax: mean recall over the classes present in
    target). Also returns pred_top1."""
    x = np.asarray(logits, dtype=np.float32)
    t = np.asarray(target)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError("logits must be a non-empty (n_images, n_classes) matrix, got shape %s" % (x.shape,))
    if t.shape != (x.shape[0],) or not np.issubdtype(t.dtype, np.integer):
        raise ValueError("target must hold one integer class per image (%d)" % x.shape[0])
    if t.min() < 0 or t.max() >= x.shape[1]:
        raise ValueError("target has a class outside [0, %d)" % x.shape[1])
    n = len(t)
    acc = {}
    positive = np.zeros(x.shape, dtype=bool)
    positive[np.arange(n), t] = True
    for k in ((1, 5) if x.shape[1] >= 5 else (1,)):
        hit = int(_query_hits(x, positive, k, tie_rule).sum())
        acc[k] = float(np.float32(hit)) / n
    pred = np.argmax(x, axis=1)
    classes = np.unique(np.concatenate([t, pred]))
    recalls = []
    for c in classes:
        support = (t == c).sum()
        if support:  # classes never in target give 0/0 and are dropped (sklearn warns)
            recalls.append(((pred == c) & (t == c)).sum() / support)
    return {"acc1": acc[1], "acc5": acc.get(5, float("nan")),
            "mean_per_class_recall": float(np.mean(np.array(recalls, dtype=np.float64))),
            "pred_top1": pred.tolist()}
