"""The Porter stemmer as nltk 3.8 runs it by default (mode NLTK_EXTENSIONS), which rouge_score
uses with use_stemmer=True. Step for step the published algorithm plus NLTK's changes (irregular
forms, 'ies'/'ied' on 4-letter words, y->i only after a consonant, 'alli', 'fulli', 'logi')."""

__all__ = ["porter_stem"]

_POOL = {"sky": "sky", "skies": "sky", "dying": "die", "lying": "lie", "tying": "tie", "news": "news",
         "innings": "inning", "inning": "inning", "outings": "outing", "outing": "outing",
         "cannings": "canning", "canning": "canning", "howe": "howe", "proceed": "proceed",
         "exceed": "exceed", "succeed": "succeed"}
_VOWELS = frozenset("aeiou")


def _cons(w, i):
    if w[i] in _VOWELS:
        return False
    if w[i] == "y":
        return True if i == 0 else not _cons(w, i - 1)
    return True


def _measure(stem):
    seq = "".join("c" if _cons(stem, i) else "v" for i in range(len(stem)))
    return seq.count("vc")


def _has_vowel(stem):
    return any(not _cons(stem, i) for i in range(len(stem)))


def _double_cons(w):
    return len(w) >= 2 and w[-1] == w[-2] and _cons(w, len(w) - 1)


def _cvc(w):
    if len(w) >= 3 and _cons(w, len(w) - 3) and not _cons(w, len(w) - 2) and _cons(w, len(w) - 1) \
            and w[-1] not in "wxy":
        return True
    return len(w) == 2 and not _cons(w, 0) and _cons(w, 1)


def _m_pos(stem):
    return _measure(stem) > 0


def _m_gt1(stem):
    return _measure(stem) > 1


def _apply(word, rules):
    """First rule whose suffix matches decides: applied if its condition holds, else no change."""
    for suffix, repl, cond in rules:
        if suffix == "*d" and _double_cons(word):
            stem = word[:-2]
            return stem + repl if cond is None or cond(stem) else word
        if word.endswith(suffix):
            stem = word[:len(word) - len(suffix)] if suffix else word
            return stem + repl if cond is None or cond(stem) else word
    return word


def _step1a(w):
    if w.endswith("ies") and len(w) == 4:
        return w[:-3] + "ie"
    return _apply(w, [("sses", "ss", None), ("ies", "i", None), ("ss", "ss", None), ("s", "", None)])


def _step1b(w):
    if w.endswith("ied"):
        return w[:-3] + ("ie" if len(w) == 4 else "i")
    if w.endswith("eed"):
        stem = w[:-3]
        return stem + "ee" if _measure(stem) > 0 else w
    inter = None
    for suffix in ("ed", "ing"):
        if w.endswith(suffix) and _has_vowel(w[:-len(suffix)]):
            inter = w[:-len(suffix)]
            break
    if inter is None:
        return w
    return _apply(inter, [("at", "ate", None), ("bl", "ble", None), ("iz", "ize", None),
                          ("*d", inter[-1], lambda s: inter[-1] not in "lsz"),
                          ("", "e", lambda s: _measure(s) == 1 and _cvc(s))])


def _step1c(w):
    return _apply(w, [("y", "i", lambda s: len(s) > 1 and _cons(s, len(s) - 1))])


def _step2(w):
    if w.endswith("alli") and _m_pos(w[:-4]):
        return _step2(w[:-4] + "al")
    rules = [("ational", "ate"), ("tional", "tion"), ("enci", "ence"), ("anci", "ance"), ("izer", "ize"),
             ("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous"),
             ("ization", "ize"), ("ation", "ate"), ("ator", "ate"), ("alism", "al"), ("iveness", "ive"),
             ("fulness", "ful"), ("ousness", "ous"), ("aliti", "al"), ("iviti", "ive"), ("biliti", "ble"),
             ("fulli", "ful")]
    rules = [(s, r, _m_pos) for s, r in rules]
    rules.append(("logi", "log", lambda s: _m_pos(w[:-3])))
    return _apply(w, rules)


def _step3(w):
    return _apply(w, [(s, r, _m_pos) for s, r in [("icate", "ic"), ("ative", ""), ("alize", "al"),
                                                   ("iciti", "ic"), ("ical", "ic"), ("ful", ""), ("ness", "")]])


def _step4(w):
    rules = [(s, "", _m_gt1) for s in ("al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement",
                                       "ment", "ent")]
    rules.append(("ion", "", lambda s: _measure(s) > 1 and s[-1] in "st"))
    rules += [(s, "", _m_gt1) for s in ("ou", "ism", "ate", "iti", "ous", "ive", "ize")]
    return _apply(w, rules)


def _step5a(w):
    if w.endswith("e"):
        stem = w[:-1]
        if _measure(stem) > 1:
            return stem
        if _measure(stem) == 1 and not _cvc(stem):
            return stem
    return w


def _step5b(w):
    return _apply(w, [("ll", "l", lambda s: _measure(w[:-1]) > 1)])


def porter_stem(word):
    """nltk.stem.PorterStemmer().stem(word) (lower-cases first, like nltk)."""
    stem = word.lower()
    if word in _POOL:
        return _POOL[stem]
    if len(word) <= 2:
        return stem
    for step in (_step1a, _step1b, _step1c, _step2, _step3, _step4, _step5a, _step5b):
        stem = step(stem)
    return stem
