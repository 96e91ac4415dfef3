"""Native re-implementation of the Stanford PTBTokenizer (CoreNLP 3.4.1) as coco-caption runs it
(`-preserveLines -lowerCase`), followed by coco-caption's punctuation-token removal. No Java.

The Java tokenizer is a JFlex lexer: at each position every rule is tried, the longest match
(trailing context included) wins and ties go to the earlier rule. This module keeps that scheme
with the rules that matter for captions (words, clitics, hyphenated words, numbers, fractions,
quotes, brackets, dashes, ellipses, abbreviations, URLs, symbols) and the PTB3 normalizations
that 3.4.1 applies by default (brackets -> -LRB- etc., LaTeX quotes, "--", "...", 1/2, currency).
Characters no rule accepts (emoji, characters outside the BMP) are deleted, as the Java lexer does.
"""
import re
import unicodedata

__all__ = ["ptb_tokenize", "ptb_tokenize_lines", "COCO_PUNCTUATIONS"]

# coco-caption's PTBTokenizer wrapper drops exactly these tokens (upper-case bracket forms only:
# after -lowerCase the brackets read -lrb- / -rrb- and therefore survive).
COCO_PUNCTUATIONS = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-",
                               ".", "?", "!", ",", ":", "-", "--", "...", ";"])

# Characters Java treats as line ends; coco-caption writes one caption per line, so they are spaces.
_LINE_BREAKS = re.compile("[\r\n\u2028\u2029\u0085\u000b\u000c]")

_TABLES = None  # (rules, fast_word) built on first use


# ---------------------------------------------------------------------------------------------
# Character classes (BMP only, like the JFlex 1.4 tables of the 3.4.1 lexer)
# ---------------------------------------------------------------------------------------------

def _class_body(pred):
    parts, start = [], None
    for cp in range(0x10001):
        ok = cp < 0x10000 and not (0xD800 <= cp <= 0xDFFF) and pred(chr(cp))
        if ok and start is None:
            start = cp
        elif not ok and start is not None:
            end = cp - 1
            parts.append("\\u%04x" % start if start == end else "\\u%04x-\\u%04x" % (start, end))
            start = None
    return "".join(parts)


def _is_letter(ch):
    return ch.isalpha() or ch == "\u00ad" or unicodedata.category(ch) in ("Mn", "Mc")


def _is_digit(ch):
    return unicodedata.category(ch) == "Nd"


# ---------------------------------------------------------------------------------------------
# Token normalizations (PTB3 escaping as on by default in 3.4.1)
# ---------------------------------------------------------------------------------------------

_SINGLE_QUOTE = re.compile("&apos;|'")
_DOUBLE_QUOTE = re.compile("\"|''|'`|`'|&quot;")
_LEFT_SINGLE = re.compile("[\u0082\u008b\u0091\u2018\u201a\u201b\u2039]")
_RIGHT_SINGLE = re.compile("[\u0092\u009b\u00b4\u2019\u203a]")
_LEFT_DOUBLE = re.compile("[\u0084\u0093\u201c\u201e\u00ab]|[\u0091\u2018]'")
_RIGHT_DOUBLE = re.compile("[\u0094\u201d\u00bb]|[\u0092\u2019]'")


def _latex_quotes(tok, probably_left):
    if probably_left:
        tok = _SINGLE_QUOTE.sub("`", tok)
        tok = _DOUBLE_QUOTE.sub("``", tok)
    else:
        tok = _SINGLE_QUOTE.sub("'", tok)
        tok = _DOUBLE_QUOTE.sub("''", tok)
    tok = _LEFT_SINGLE.sub("`", tok)
    tok = _RIGHT_SINGLE.sub("'", tok)
    tok = _LEFT_DOUBLE.sub("``", tok)
    return _RIGHT_DOUBLE.sub("''", tok)


def _no_soft_hyphens(tok):
    out = tok.replace("\u00ad", "")
    return out if out else "-"


_FRACTIONS = {"\u00bc": "1/4", "\u00bd": "1/2", "\u00be": "3/4", "\u2153": "1/3", "\u2154": "2/3"}


def _currency(tok):
    tok = tok.replace("\u00a2", "cents").replace("\u00a3", "#")
    return re.sub("[\u0080\u00a4\u20a0\u20ac]", "$", tok)


def _parens(tok):
    return tok.replace("(", "-LRB-").replace(")", "-RRB-")


# Actions: f(token_text) -> (output token or None, characters consumed)
def _keep(t):
    return t, len(t)


def _quote_left(t):
    return _latex_quotes(t, True), len(t)


def _quote_right(t):
    return _latex_quotes(t, False), len(t)


def _const(s):
    return lambda t: (s, len(t))


def _dup_period(t):
    # "s = yytext(); yypushback(1)": the token keeps its period and the period is lexed again.
    return t, len(t) - 1


def _acronym(t):
    # processAcronym: "I." before a sentence-starting word is the letter then a period.
    return (t[:-1], len(t) - 1) if len(t) == 2 else (t, len(t) - 1)


def _hyphens(t):
    return ("--" if 3 <= len(t) <= 4 else t), len(t)


def _number(t):
    return re.sub("[\u00ad\u066c\u2009\u202f]", "", t).strip() or t, len(t)


# ---------------------------------------------------------------------------------------------
# The rules, in PTBLexer order. Macros are written «NAME» and expanded recursively.
# ---------------------------------------------------------------------------------------------

_MACROS = {
    "SPACE": "[ \\t\\u00a0\\u2000-\\u200a\\u3000]",
    "SPACES": "«SPACE»+",
    "SPACENL": "(?:«SPACE»|\\n)",
    "SPACENLS": "«SPACENL»+",
    "SPACENL1": "[ \\t\\u00a0\\u2000-\\u200a\\u3000\\n]",
    "NOTSPACENL1": "[^ \\t\\u00a0\\u2000-\\u200a\\u3000\\n]",
    "SPLET": "&[aeiouAEIOU](?i:acute|grave|uml);",
    "LETTER": "(?:[«LC»]|«SPLET»)",
    "ALPHA": "[«LC»]",
    "NOTALPHA": "[^«LC»]",
    "DIGIT": "[«DC»]",
    "ALNUM": "[«LC»«DC»]",
    "NOTALNUM": "[^«LC»«DC»]",
    "UPPER": "[«UC»]",
    "APOS": "(?:['\\u0092\\u2019\\u00b4]|&apos;)",
    "APOSETC": "(?:«APOS»|[`\\u0091\\u2018\\u201b])",
    "REDAUX": "«APOS»(?:[msdMSD]|(?i:re|ve|ll))",
    "SWORD": "[«LC»\\u00ad]*[A-MO-Za-mo-z]\\u00ad*",
    "SREDAUX": "(?i:n)«APOSETC»(?i:t)",
    "WORD": "«LETTER»(?:«LETTER»|«DIGIT»)*",
    "NUM": "(?:«DIGIT»*(?:[.,\\u066b\\u066c]«DIGIT»+)+|«DIGIT»+(?:[.:,\\u00ad\\u066b\\u066c\\u2009\\u202f]«DIGIT»+)*)",
    "NUMBER": "[\\-+]?«NUM»",
    "HYPHEN": "[-_\\u058a\\u2010\\u2011]",
    "THINGPART": "(?:«NUM»(?!«ALNUM»)|«ALNUM»+)",
    "APOPREFIX": "(?:[dDoOlL]«APOSETC»«ALNUM»)?",
    "THINGTAIL": "(?:«HYPHEN»«APOPREFIX»«THINGPART»)*",
    "ACRO": "(?:[A-Za-z](?:\\.[A-Za-z])*|(?i:Canada|Sino|Korean|EU|Japan|non)-(?i:U\\.S)|(?i:U\\.S\\.-(?:U\\.K|U\\.S\\.S\\.R)))",
    "ACRO2": "(?:[A-Za-z](?:\\.[A-Za-z])+|(?i:Canada|Sino|Korean|EU|Japan|non)-(?i:U\\.S)|(?i:U\\.S\\.-(?:U\\.K|U\\.S\\.S\\.R)))",
    "ABSTATE": "(?:(?i:Ala|Ariz)|A(?i:z)|A(?i:rk)|(?i:Calif|Colo|Conn|Ct|Dak)|D(?i:el)|(?i:Fla|Ga)|I(?i:ll)|"
               "(?i:Ind|Kans?|Ky)|L(?i:a)|M(?i:ass)|(?i:Md|Mich|Minn)|M(?i:iss)|(?i:Mo|Mont|Neb|Nev|Okla)|"
               "O(?i:re)|P(?i:a)|(?i:Penn|Tenn)|T(?i:ex)|(?i:Va|Vt)|W(?i:ash)|(?i:Wisc?|Wyo))",
    "ABBREV1": "(?:(?i:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|Mon|Tue|Tues|Wed|Thu|Thurs|Fri)|«ABSTATE»|"
               "(?i:Inc|Cos?|Corp)|(?i:Pp?t)[ye](?i:s)?|(?i:Ltd|Plc|Rt|Bancorp|Bhd|Assn|Univ|Intl|Sys)|"
               "(?i:tel|est|ext|sq)|(?i:Jr|Bros|(?:Ed|Ph)\\.D|Esq)|(?i:etc|al|seq|Bldg))\\.",
    "ABTITLE": "(?:(?i:Mr|Mrs|Ms|Mx)|M(?i:iss)|(?i:Drs?|Profs?|Sens?|Reps?|Attys?|Lt|Col|Gen|Messrs|Govs?|Adm|Rev|Maj|Sgt|"
               "Cpl|Pvt|Capt|Ste?|Ave|Pres|Lieut|Rt|Hon|Brig|Co?mdr|Pfc|Spc|Supts?|Det|Mt|Ft|Adj|Adv|Asst|Assoc|Ens|"
               "Insp|Mlle|Mme|Msgr|Sfc|Sr))",
    "ABBREV4": "(?:«ABTITLE»|(?i:vs)|v|(?i:Alex|Wm|Jos|Cie|a\\.k\\.a|cf|TREAS|Ph)|«ACRO»|"
               "(?i:Invt|Elec|Natl|Dept|Blvd|Rd|Ave)|(?i:M)[ft](?i:g))",
    "ABBREV3": "(?:(?i:ca|figs?|prop|nos?|sect?s?|arts?|paras?|bldg|pp|op|approx|rs)|Pt)\\.",
    "INSENTP": "[,;:\\u3001]",
    "DBLQUOT": "(?:\"|&quot;|[`'\\u0091\\u0092\\u2018\\u2019]')",
    "QUOTES": "(?:«APOS»|[`\\u2018-\\u201f\\u0082\\u0084\\u0091-\\u0094\\u2039\\u203a\\u00ab\\u00bb]{1,2})",
}

# JFlex writes these as [A]bout: the capital is exact, the rest caseless (%caseless).
_SENT_START_WORDS = "|".join(w[0] + ("(?i:%s)" % w[1:] if len(w) > 1 else "") for w in (
    "About According Additionally After An A As At But Did During Earlier He Her Here How However If In It Last "
    "Many More Mr\\. Ms\\. Now Once One Other Our She Since So Some Such That The Their Then There These They "
    "This We When While What Who Why Yet You").split())

# (token pattern(s), trailing-context pattern or None, action). Several patterns in one rule are
# alternatives of one JFlex rule: the longest of them counts.
_RULES = [
    (["(?i:cannot)"], None, lambda t: (t[:3], 3)),
    (["<\\/?[A-Za-z!?][^>\\n]*>"], None, lambda t: (t.replace(" ", "\u00a0"), len(t))),
    (["&(?i:MD|mdash|ndash);", "[\\u0096\\u0097\\u2013\\u2014\\u2015]"], None, _const("--")),
    (["(?i:&amp;)"], None, _const("&")),
    (["&(?i:HT|TL|UR|LR|QC|QL|QR|odq|cdq|#[0-9]+);"], None, _keep),
    (["«WORD»"], "«REDAUX»", lambda t: (_no_soft_hyphens(t), len(t))),
    (["«SWORD»"], "«SREDAUX»", lambda t: (_no_soft_hyphens(t), len(t))),
    (["«WORD»"], None, lambda t: (_no_soft_hyphens(t), len(t))),
    (["«APOS»(?i:n)«APOS»?", "[lLdDjJ]«APOS»", "(?i:dunkin|somethin|ol)«APOS»", "«APOS»(?i:em)",
      "(?i:diff)«APOSETC»(?i:rent)", "[A-HJ-XZn]«APOSETC»[«LC»]{2}[«LC»]*", "«APOS»[2-9]0(?i:s)", "«APOS»(?i:till?)",
      "[«LC»][«LC»]*[aeiouyAEIOUY]«APOSETC»[aeiouA-Z][«LC»]*", "«APOS»(?i:cause)",
      "(?i:cont'd\\.?|nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l)", "(?i:o)«APOSETC»(?i:o)"], None, _quote_right),
    (["(?i:y)«APOS»"], "«LETTER»", _keep),
    (["(?i:ftp|svn|svn\\+ssh|http|https|mailto)://[^ \\t\\n\\f\\r\"<>|(){}\\[\\]]+[^ \\t\\n\\f\\r\"'<>|.!?(){},;:&\\[\\]-]"],
     None, _keep),
    (["(?:(?i:www)\\.(?:[^ \\t\\n\\f\\r\"<>|.!?(){},]+\\.)+[a-zA-Z]{2,4}|(?:[^ \\t\\n\\f\\r\"`'<>|.!?(){},-_$]+\\.)+"
      "(?i:com|net|org|edu))(?:/[^ \\t\\n\\f\\r\"<>|()]+[^ \\t\\n\\f\\r\"<>|.!?(){},-])?"], None, _keep),
    (["(?:&lt;|<)?(?i:mailto:)?[a-zA-Z0-9._%+-]+@[A-Za-z0-9][A-Za-z0-9.-]*[A-Za-z0-9](?:&gt;|>)?"], None, _keep),
    (["[@\\uff20][a-zA-Z_][a-zA-Z_0-9]*", "[#\\uff03]«LETTER»(?:«LETTER»|«DIGIT»|_)*(?:«LETTER»|«DIGIT»)"], None, _keep),
    (["«REDAUX»"], "«NOTALPHA»", _quote_right),
    (["«SREDAUX»"], "«NOTALPHA»", _quote_right),
    (["«DIGIT»{1,2}[\\-/]«DIGIT»{1,2}[\\-/]«DIGIT»{2,4}"], None, _keep),
    (["[\\-+]?«DIGIT»*(?:[.,\\u066b\\u066c]«DIGIT»+)+",
      "[\\-+]?«DIGIT»+(?:[.:,\\u00ad\\u066b\\u066c\\u2009\\u202f]«DIGIT»+)*"], None, _number),
    (["[\\u207a\\u207b\\u208a\\u208b]?(?:[\\u2070\\u00b9\\u00b2\\u00b3\\u2074-\\u2079]+|[\\u2080-\\u2089]+)"], None, _keep),
    (["(?:«DIGIT»{1,4}[- \\u00a0])?«DIGIT»{1,4}(?:\\\\?/|\\u2044)«DIGIT»{1,4}"], None,
     lambda t: (t.replace(" ", "\u00a0"), len(t))),
    (["[\\u00bc\\u00bd\\u00be\\u2153-\\u215e]"], None, lambda t: (_FRACTIONS.get(t, t), len(t))),
    (["-(?i:RRB|LRB|RCB|LCB|RSB|LSB)-", "(?i:C\\.D\\.s|pro-|anti-|S(?:&|&amp;)P-500|S(?:&|&amp;)Ls)",
      "(?i:Cap)«APOS»(?i:n)", "(?i:c)«APOS»(?i:est)"], None, lambda t: (re.sub("(?i)&amp;", "&", t), len(t))),
    (["«ALNUM»+(?:-«ALPHA»+){0,2}(?:\\\\?/«ALNUM»+(?:-«ALPHA»+){0,2}){1,2}"], None, _keep),
    (["[A-Z]*\\$", "#"], None, _keep),
    (["[\\u00a2\\u00a3\\u00a4\\u00a5\\u0080\\u20a0\\u20aa\\u20ac\\u20b9\\u060b\\u0e3f\\u20a4\\uffe0\\uffe1\\uffe5\\uffe6]"],
     None, lambda t: (_currency(t), len(t))),
    (["«ACRO»\\."], "«SPACENLS»(?:" + _SENT_START_WORDS + ")(?:«SPACENL»|[?!])", _acronym),
    (["«ABBREV3»"], "«SPACENL»?«DIGIT»", _keep),
    (["(?i:So|No)\\."], "«SPACENL»+(?i:Africa|Korea|Cal)", _keep),
    (["(?i:pt[ey]|co)\\."], "«SPACE»(?i:ltd|lim)", _keep),
    (["«ABBREV1»"], "«SPACENL»(?:«SPACENL»|«UPPER»|<)", _dup_period),
    (["«ABBREV1»"], "(?s:..)", _keep),
    (["«ABBREV1»"], None, _dup_period),
    (["«ABBREV4»\\."], None, _keep),
    (["«ABBREV4»"], "«SPACE»", _keep),
    (["«ACRO»"], "«SPACENL»", _keep),
    (["«APOS»[0-9][0-9]"], "«SPACENL»", _keep),
    (["«WORD»\\."], "«INSENTP»", lambda t: (_no_soft_hyphens(t), len(t))),
    (["(?:\\([0-9]{2,3}\\)[ \\u00a0]?|(?:\\+\\+?)?(?:[0-9]{2,4}[\\- \\u00a0])?[0-9]{2,4}[\\- \\u00a0])[0-9]{3,4}"
      "[\\- \\u00a0]?[0-9]{3,5}",
      "(?:(?:\\+\\+?)?[0-9]{2,4}\\.)?[0-9]{2,4}\\.[0-9]{3,4}\\.[0-9]{3,5}"], None,
     lambda t: (_parens(t.replace(" ", "\u00a0")), len(t))),
    (["«DBLQUOT»"], "[«LC»«DC»$]", _quote_left),
    (["«DBLQUOT»"], None, _quote_right),
    (["\\x7f"], None, lambda t: (None, len(t))),
    (["<|&lt;"], None, _const("<")),
    ([">|&gt;"], None, _const(">")),
    (["[<>]?[:;=][\\-o\\*']?[\\(\\)DPdpO\\\\{@\\|\\[\\]]"], "«NOTALNUM»", lambda t: (_parens(t), len(t))),
    (["\\{"], None, _const("-LCB-")),
    (["\\}"], None, _const("-RCB-")),
    (["\\["], None, _const("-LSB-")),
    (["\\]"], None, _const("-RSB-")),
    (["\\("], None, _const("-LRB-")),
    (["\\)"], None, _const("-RRB-")),
    (["\\-+"], None, _hyphens),
    (["\\.\\.\\.+|[\\u0085\\u2026]"], "\\.«SPACENLS»«LETTER»", _const("...")),
    (["\\.[ \\u00a0](?:\\.[ \\u00a0])+\\."], "«SPACE»\\.«SPACENLS»«LETTER»", _const("...")),
    (["\\.\\.\\.+|[\\u0085\\u2026]", "\\.[ \\u00a0](?:\\.[ \\u00a0])+\\."], None, _const("...")),
    (["@+", "#+", "_+"], None, _keep),
    (["\\*+", "(?:\\\\\\*){1,3}"], None, _keep),
    (["«INSENTP»"], None, _keep),
    (["[?!]+"], None, _keep),
    (["[.\\u00a1\\u00bf\\u037e\\u0589\\u061f\\u06d4\\u0700-\\u0702\\u07fa\\u3002]"], None, _keep),
    (["=+"], None, _keep),
    (["/"], None, _keep),
    (["«ALNUM»[«LC»«DC».,\\u00ad]*(?:-(?:[«LC»«DC»\\u00ad]+(?:\\.«DIGIT»+)?|«ACRO2»\\.))+"], None,
     lambda t: (_no_soft_hyphens(t), len(t))),
    (["«ALNUM»[«LC»«DC».,\\u00ad]*(?:-(?:[«LC»«DC»\\u00ad]+(?:\\.«DIGIT»+)?|«ACRO2»\\.))+\\."], "«INSENTP»",
     lambda t: (_no_soft_hyphens(t), len(t))),
    (["«APOPREFIX»«ALNUM»+«THINGTAIL»", "«APOPREFIX»«NUMBER»«THINGTAIL»"], None, _quote_right),
    (["[A-Z]+(?:(?:[+&]|(?i:&amp;))[A-Z]+)+\\."], "«INSENTP»", lambda t: (re.sub("(?i)&amp;", "&", t), len(t))),
    (["[A-Z]+(?:(?:[+&]|(?i:&amp;))[A-Z]+)+"], None, lambda t: (re.sub("(?i)&amp;", "&", t), len(t))),
    (["«QUOTES»"], "«LETTER»«NOTSPACENL1»", _quote_left),
    (["«QUOTES»"], "[AaIiUu]«SPACENL1»", _quote_left),
    (["«QUOTES»"], None, _quote_right),
    (["«REDAUX»"], None, _quote_right),
    (["«SREDAUX»"], None, _quote_right),
    (["<<|>>"], None, _keep),
    (["[+%&~\\^|\\\\\\u00a6\\u00a7\\u00a8\\u00a9\\u00ac\\u00ae\\u00af\\u00b0-\\u00b3\\u00b4-\\u00ba\\u00d7\\u00f7"
      "\\u0387\\u05be\\u05c0\\u05c3\\u05c6\\u05f3\\u05f4\\u0600-\\u0603\\u0606-\\u060a\\u060c\\u0614\\u061b\\u061e"
      "\\u066a\\u066d\\u0703-\\u070d\\u07f6\\u07f7\\u07f8\\u0964\\u0965\\u0e4f\\u1fbd\\u2016\\u2017\\u2020-\\u2025"
      "\\u2030-\\u2038\\u203b\\u203c\\u2043\\u203e-\\u2042\\u2044\\u207a-\\u207f\\u208a-\\u208e\\u2100-\\u214f"
      "\\u2190-\\u21ff\\u2200-\\u2bff\\u3001-\\u3006\\u3008-\\u3020\\u30fb\\uff01-\\uff0f\\uff1a-\\uff20"
      "\\uff3b-\\uff40\\uff5b-\\uff65]"], None, _keep),
]

_SKIP = re.compile("[ \\t\\u00a0\\u2000-\\u200b\\u200e\\u200f\\u3000\\ufeff\\x00]+")


def _expand(pattern, macros):
    for _ in range(10):
        new = re.sub("«([A-Z0-9]+)»", lambda m: macros[m.group(1)], pattern)
        if new == pattern:
            return new
        pattern = new
    raise AssertionError("macro expansion did not terminate")  # pragma: no cover


def _tables():
    global _TABLES
    if _TABLES is None:
        macros = dict(_MACROS)
        macros["LC"] = _class_body(_is_letter)
        macros["DC"] = _class_body(_is_digit)
        macros["UC"] = _class_body(lambda c: c.isupper())
        rules = []
        for alts, ctx, action in _RULES:
            compiled = []
            for alt in alts:
                pat = "(?P<t>" + _expand(alt, macros) + ")"
                if ctx is not None:
                    pat += "(?P<c>" + _expand(ctx, macros) + ")"
                compiled.append(re.compile(pat))
            rules.append((compiled, action))
        fast = re.compile("[A-Za-z]+(?=[ \\n,;]|$)")
        _TABLES = (rules, fast)
    return _TABLES


def _lex(text):
    """Yields PTB tokens of `text` (original case); '\\n' yields None (a line break)."""
    rules, fast = _tables()
    pos, n = 0, len(text)
    while pos < n:
        m = _SKIP.match(text, pos)
        if m:
            pos = m.end()
            continue
        if text[pos] == "\n":
            yield None
            pos += 1
            continue
        m = fast.match(text, pos)
        if m and m.group().lower() != "cannot":
            yield m.group()
            pos = m.end()
            continue
        best_len, best = 0, None
        for compiled, action in rules:
            for rx in compiled:
                m = rx.match(text, pos)
                if m is not None and m.end() - pos > best_len:
                    best_len, best = m.end() - pos, (m.group("t"), action)
        if best is None:  # untokenizable character: deleted (option untokenizable=firstDelete)
            pos += 1
            continue
        tok, consumed = best[1](best[0])
        if tok is not None:
            yield tok
        pos += max(consumed, 1)


def ptb_tokenize_lines(lines, coco=True):
    """Tokenizes captions the way coco-caption does: one run over the lines joined by '\\n'
    (so trailing contexts may look into the next line, as in Java), `-lowerCase`, then (coco=True)
    the removal of coco-caption's punctuation tokens. Returns one space-joined string per line."""
    clean = [_LINE_BREAKS.sub(" ", str(s)) for s in lines]
    out, cur = [], []
    for tok in _lex("\n".join(clean)):
        if tok is None:
            out.append(cur)
            cur = []
        else:
            cur.append(tok)
    out.append(cur)
    result = []
    for toks in out[:len(clean)]:
        toks = [t.lower() for t in toks]  # -lowerCase happens in Java, before the wrapper's filter
        result.append(" ".join(t for t in toks if not (coco and t in COCO_PUNCTUATIONS)))
    return result


def ptb_tokenize(text, coco=True):
    """PTB-tokenizes one caption (str) or a list of captions, lower-cased; with coco=True the
    punctuation tokens coco-caption drops are removed. 'A woman (in white).' -> 'a woman -lrb- in
    white -rrb-'."""
    if isinstance(text, str):
        return ptb_tokenize_lines([text], coco=coco)[0]
    return ptb_tokenize_lines(list(text), coco=coco)
