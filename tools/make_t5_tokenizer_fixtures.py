"""Make the T5 / Flan-T5 tokenizer fixtures of tests/test_tokenizer_t5.py.

No T5 checkpoint can be fetched here, so the tokenizer directories are built the way T5 /
Flan-T5 / BLIP-2 checkpoints were, from the unigram model that tools/make_sp_fixtures.py trained
(tests/data/tokenizers/sp_unigram_nfkc.model: T5 layout, pad 0 / eos 1 / unk 2, nmt_nfkc):

* ``t5/``: ``T5Tokenizer(vocab_file=..., extra_ids=100)`` (transformers 4.x, sentencepiece),
  ``save_pretrained``: spiece.model, tokenizer_config.json (added_tokens_decoder with the
  slow class's ``lstrip/rstrip=True`` sentinels), special_tokens_map.json, added_tokens.json.
* ``t5_image/``: ``T5TokenizerFast(vocab_file=..., extra_ids=100, from_slow=True,
  add_prefix_space=True, model_max_length=512)`` plus ``<image>`` added as BLIP-2's processor
  does (``AddedToken("<image>", normalized=False, special=True)``, id 900 = 800 pieces + 100
  sentinels), ``save_pretrained``: the same files plus tokenizer.json (0.4 MB).

(transformers 5 has no slow class and its ``T5Tokenizer(vocab_file=...)`` ignores the file, so
the directories come from transformers 4.57.1; 4.57.1 without ``add_prefix_space=True`` writes a
tokenizer.json whose Metaspace never prepends '▁', unlike real checkpoints.)

Then it records, for a varied string set (tests/data/tokenizers/clip.jsonl texts + T5 /
BLIP-2 cases below, seeded random strings), what transformers 5.x's ``T5Tokenizer`` (=
``T5TokenizerFast``, the tokenizers backend, the reference mmsuite matches) returns: ids with
and without ``</s>`` (``ids``, ``ids_raw``), decode with / without ``skip_special_tokens``
(``decoded``, ``decoded_skip``: the directory's own clean_up_tokenization_spaces flag) and with
``clean_up_tokenization_spaces=True`` (``decoded_clean``, stored only where it differs from
``decoded``), padded batches, decode-only id lists. Besides the two directories it records a few variants
the tests rebuild in a temporary directory from the same files (``VARIANTS``: a bare
spiece.model, a pre-4.34 layout without added_tokens_decoder, unusual AddedToken flags).

With ``--tf4-python`` (an interpreter with transformers 4.57.1 + sentencepiece + protobuf) it
also records transformers 4's slow ``T5Tokenizer`` and ``T5TokenizerFast`` on the same inputs,
stored per record only where they differ from the reference (``hf4_slow`` / ``hf4_fast``), and
it can (re)build the directories:

    python -m venv /tmp/tf4 && /tmp/tf4/bin/pip install transformers==4.57.1 sentencepiece protobuf
    python tools/make_t5_tokenizer_fixtures.py --tf4-python /tmp/tf4/bin/python   # build + record
    python tools/make_t5_tokenizer_fixtures.py --check [--tf4-python ...]          # re-derive, compare

``--check`` writes nothing: it re-derives every transformers 5 field from the stored
directories (and, with --tf4-python, rebuilds the directories in a temporary directory and
compares them byte for byte, and re-derives the hf4_* fields). Dev-only dependencies:
transformers 5.x, tokenizers, sentencepiece, protobuf; mmsuite itself imports none of them.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import unicodedata
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "tokenizers")
SP_MODEL = os.path.join(DATA, "sp_unigram_nfkc.model")
OUT_JSONL = os.path.join(DATA, "t5.jsonl")
DIRS = ("t5", "t5_image")
KEEP = ("spiece.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "tokenizer.json")
MAX_KEPT_BYTES = 1 << 20

# T5 / BLIP-2 strings beyond clip.jsonl: sentinels, <image> placeholders, specials written in
# text, whitespace runs, '▁' in text, charsmap (NFKC) cases where tokenizers' grapheme-wise
# Precompiled normalizer differs from sentencepiece's, fullwidth brackets that normalize into
# '<extra_id_0>' or '</s>' (pieces of the tokenizers Unigram vocabulary), single-word edges.
T5_TEXTS = [
    "Question: what is in the image? Answer:", "Question: how many dogs are there? Short answer:",
    "a photo of <extra_id_0> on the beach", "<extra_id_0> a dog <extra_id_1> frisbee <extra_id_2>",
    "a<extra_id_0>b", "a <extra_id_0> b", "a  <extra_id_0>  b", "<extra_id_99>", "<extra_id_100> <extra_id_-1>",
    "<extra_id_0><extra_id_1>", " <extra_id_5> ", "x\t<extra_id_3>\ny", "The <extra_id_0> walks in <extra_id_1> park",
    "<image>", "<image><image><image>Question: what is this? Answer:", "<image> <image> a cat", "a<image>b",
    "a <image> b", "a  <image>  b", "<image>\nQuestion: x", " <image>", "<image> ", "caption: <image>.",
    "<image><extra_id_0><image>", "<image>\u3000<image>", "<IMAGE> <image", "image>", "<<image>>",
    "</s>", "hello</s>world", "a cat </s>", "<pad> <unk> </s>", "<unk>", "a<unk>b", "x <pad>y", "</s></s>",
    "  leading and trailing  ", "a\u00a0b\u3000c", "tab\there\nnewline",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
    "\ufb01 ligature \u2460\u2461 \u00bd \u2126", "zero\u200bwidth\u200d joiners", "\u2581literal\u2581 \u2581",
    "\u2581", " \u2581 ", "\u2581\u2581a", "a\u2581b", "x\u2581\u2581\u2581y", "\u2581 \u2581\u2581",
    "e\u0301 \u00e9", "\x00nul\x01ctrl\x7f", "\U0001F600\U0001F469\u200d\U0001F52C",
    "word " * 40, "x" * 300, "   ", "", " ", "a", "a  b   c    d", "\n\n", "a\r\nb", "\r\n", "end.  ",
    "a\x85b", "a\u1680b", "a\u2028b\u2029c", "a\x0bb\x0cc", "a\x1cb\x1fc", "a\u200ab\u202fc\u205fd",
    "Hello , world ! It ' s n't a test .", "a . b , c ! d ? e 's f n't", "do n't", "i 'm", "he 'd",
    "they 're", "we 've", "you 'll", "a ' b", "\u00c5ngstr\u00f6m \u212b", "MiXeD CaSe \u1e9e \u0130stanbul",
    "\u3042\u3044\u3046 \u4e2d\u6587", "\u0660\u0661\u0662 \uff11\uff12",
    "\ufb01\u0301", "\u00aa\u0301", "\u00aa\u0903", "x\ufb01\u0301y", "a\u0323\u0302", "a\u0323\u0308\u0301",
    "\u1100\u1161\u11a8 \uac01", "\u0600\u0661", "\u06001", "\u0915\u094d\u0937", "1\ufe0f\u20e3",
    "\uff1c/s\uff1e", "\uff1cextra_id_0\uff1e", "\uff1cimage\uff1e", "a \uff1cpad\uff1e b", "\ufe64unk\ufe65",
    "<mask>", "Mask<image>me", "_<image>_", "\u00e9<image>\u00e9", "a\u0301<image>", "<image>\u0301",
]
# Seeded random strings (fuzz_texts): runs drawn from these pools and the added tokens.
FUZZ_POOLS = [
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,!?'\"-_()<>/",
    "\u00e0\u00e9\u00ee\u00f5\u00fc\u00e7\u00f1\u00c5\u00df\u00aa\u00ba\u00b2\u00bd\u00a0\u00ad\u00b4\u00b8",
    "\u0300\u0301\u0302\u0303\u0308\u0323\u0327\u0331\u034f\u0361\u1ab0\u1dc0\u20d0\u20e3\ufe0f\ufe0e\u200d\u200c"
    "\u200b\u2060\ufeff",
    "\t\n\r\x0b\x0c\x85\u1680\u2000\u2007\u200a\u2028\u2029\u202f\u205f\u3000\x1c\x1f\x00\x01\x7f",
    "\u4e2d\u6587\u65e5\u672c\u3042\u30a2\uff71\uff9e\uff9f\uac00\uac01\u1100\u1161\u11a8\u3131",
    "\uff10\uff21\uff41\uff1c\uff1e\uff0f\u2460\u2122\u2126\u212b\ufb01\ufb02\u2153\u00bc\u33a1\u3300",
    "\U0001F600\U0001F469\U0001F52C\U0001F3FB\U0001F1FA\U0001F1F8\u2764\u00a9\u00ae\u203c",
    "\u0915\u094d\u0937\u093f\u0903\u0b47\u0b3e\u0e01\u0e33\u0600\u0661\u06dd\u05d0\u05b7\u0627\u0644",
    "\u2581\u2581\u2581 \u2581",
]
FUZZ_TOKENS = ["<extra_id_0>", "<extra_id_17>", "<image>", "</s>", "<pad>", "<unk>", "<obj>", "\ufb01x", "fix"]
N_FUZZ = 200


def fuzz_texts():
    """N_FUZZ strings of 1-8 runs: an added token (15%) or 1-8 characters of one pool."""
    rng = random.Random(5)
    out = []
    for _ in range(N_FUZZ):
        parts = []
        for _ in range(rng.randint(1, 8)):
            if rng.random() < 0.15:
                parts.append(rng.choice(FUZZ_TOKENS))
            else:
                pool = rng.choice(FUZZ_POOLS)
                parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 8))))
        out.append("".join(parts))
    return out


# (texts, padding, max_length, truncation) of the padded-batch records, on every directory.
BATCHES = [
    (["a photo of a cat", "Question: what is in the image? Answer:", "", "x" * 60], "longest", None, False),
    (["a photo of a cat", "Question: what is in the image? Answer:", "", "x" * 60], "max_length", 16, True),
    (["a photo of a cat", "Question: what is in the image? Answer:", "", "x" * 60], "longest", 8, True),
    (["<image>" * 4 + "Question: how many? Answer:", "<image>" * 4 + "a", "a cat </s>"], "max_length", 24, True),
    (["<extra_id_0> a dog <extra_id_1>", "</s>", "a"], "max_length", 3, True),
    (["one", "two words", "and three words"], "max_length", 1, True),
]
# Variants the tests rebuild in tmp_path: copy `keep` from `base`, then set top-level keys of the
# JSON files in `set` (a value None deletes the key; "added_tokens_decoder" entries are merged).
VARIANTS = {
    # The minimum that names the class: spiece.model + tokenizer_class (extra_ids default 100).
    "t5_bare": {"base": "t5", "keep": ["spiece.model"],
                "write": {"tokenizer_config.json": {"tokenizer_class": "T5Tokenizer"}}},
    # Pre-4.34 layout (the original Flan-T5 / BLIP-2 files): no added_tokens_decoder; the
    # sentinels come from additional_special_tokens, <image> from added_tokens.json;
    # clean_up_tokenization_spaces true (the old default, written by those versions).
    "t5_legacy": {"base": "t5_image", "keep": ["spiece.model", "special_tokens_map.json", "added_tokens.json"],
                  "copy_set": {"tokenizer_config.json": {"added_tokens_decoder": None,
                                                         "clean_up_tokenization_spaces": True}}},
    # Unusual AddedToken flags: a normalized single-word <image> stripping left, a non-special
    # rstrip <obj>, a normalized special that normalizes differently ('ﬁx' -> 'fix').
    "t5_flags": {"base": "t5_image", "keep": ["spiece.model", "special_tokens_map.json"],
                 "copy_set": {"tokenizer_config.json": {
                     "clean_up_tokenization_spaces": True,
                     "added_tokens_decoder": {
                         "900": {"content": "<image>", "lstrip": True, "normalized": True, "rstrip": False,
                                 "single_word": True, "special": True},
                         "901": {"content": "<obj>", "lstrip": False, "normalized": False, "rstrip": True,
                                 "single_word": False, "special": False},
                         "902": {"content": "\ufb01x", "lstrip": False, "normalized": True, "rstrip": False,
                                 "single_word": False, "special": True}}}}},
}
VARIANT_TEXTS_EXTRA = [
    "<obj>", "a <obj> b", "a<obj>  b", "<obj><obj>", "fix the \ufb01x", "\ufb01x", "fix", "<image><obj>",
    "a<image>", "<image>a", "a <image>", "x\u3000<image>\u3000y", "\uff1cimage\uff1e", "\uff1cimage\uff1e b",
]


# ---- files ----------------------------------------------------------------------------------------


def _clip_texts():
    with open(os.path.join(DATA, "clip.jsonl"), encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def texts_for(name):
    """The string set recorded for a directory or variant (variants: the T5 cases only)."""
    if name in DIRS:
        seen, out = set(), []
        for t in _clip_texts() + T5_TEXTS + fuzz_texts():
            if t not in seen:
                seen.add(t)
                out.append(t)
        return out
    return T5_TEXTS + VARIANT_TEXTS_EXTRA + fuzz_texts()[:60]


def make_variant(base_dir, spec, out_dir):
    """Build a VARIANTS directory from a stored one (tests/test_tokenizer_t5.py does the same)."""
    os.makedirs(out_dir, exist_ok=True)
    for name in spec.get("keep", []):
        shutil.copyfile(os.path.join(base_dir, name), os.path.join(out_dir, name))
    for name, content in spec.get("write", {}).items():
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            json.dump(content, f, indent=2, ensure_ascii=False)
    for name, updates in spec.get("copy_set", {}).items():
        with open(os.path.join(base_dir, name), encoding="utf-8") as f:
            obj = json.load(f)
        for k, v in updates.items():
            if v is None:
                obj.pop(k, None)
            elif k == "added_tokens_decoder":
                obj.setdefault(k, {}).update(v)
            else:
                obj[k] = v
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)


def _escape(s):
    """JSON with every control / format / separator / private-use / unassigned character as
    \\uXXXX, so a record never breaks a line (as tools/make_sp_fixtures.py)."""
    out = json.dumps(s, ensure_ascii=False)
    return "".join(json.dumps(c)[1:-1] if unicodedata.category(c)[0] in "CZ" and c != " " else c for c in out)


def _dump(v):
    """One JSON line: keys in order, every string escaped by _escape."""
    if isinstance(v, str):
        return _escape(v)
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_dump(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_dump(x) for x in v) + "]"
    return json.dumps(v)


# ---- reference outputs (run under transformers 5.x, or 4.x for the hf4_* fields) --------------------


def _decode_fields(tok, ids):
    return {"decoded": tok.decode(ids), "decoded_skip": tok.decode(ids, skip_special_tokens=True),
            "decoded_clean": tok.decode(ids, clean_up_tokenization_spaces=True)}


def _decode_lists(tok, n_total, seed):
    """Decode-only id lists: specials in every position, runs of '▁' pieces, random ids."""
    piece = tok.convert_tokens_to_ids
    under = piece("\u2581")
    lists = [[], [0, 0, 0], [1], [2], [5, 1, 0, 0], [n_total - 1], [under], [under, under, 5],
             [1, under, 5], [piece("<extra_id_0>"), 5, piece("<extra_id_1>"), 54, 1], [2, 2, 5, 2],
             [0, under, 0, 5, 1], [4, 4, 4], [5, 4, under, 4, 54]]
    rng = random.Random(seed)
    for k in range(30):
        pool = range(n_total) if k % 3 else list(range(0, 3)) + list(range(n_total - 110, n_total))
        lists.append([rng.choice(pool) if rng.random() < 0.4 else rng.randrange(n_total)
                      for _ in range(rng.randint(1, 14))])
    return lists


def reference_outputs(tok, name):
    """Everything recorded for one directory, by one tokenizer object (any transformers version)."""
    out = {"meta": {"vocab_size": tok.vocab_size, "len": len(tok), "pad_token_id": tok.pad_token_id,
                    "eos_token_id": tok.eos_token_id, "unk_token_id": tok.unk_token_id,
                    "bos_token_id": tok.bos_token_id,
                    "clean_up_tokenization_spaces": bool(tok.clean_up_tokenization_spaces),
                    "all_special_ids": sorted(tok.all_special_ids)},
           "texts": [], "batches": [], "decodes": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in texts_for(name):
            ids = tok(t)["input_ids"]
            r = {"ids": ids, "ids_raw": tok(t, add_special_tokens=False)["input_ids"]}
            r.update(_decode_fields(tok, ids))
            out["texts"].append(r)
        for texts, padding, max_length, truncation in BATCHES:
            kw = {"padding": padding, "truncation": truncation}
            if max_length is not None:
                kw["max_length"] = max_length
            enc = tok(texts, **kw)
            out["batches"].append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
        for ids in _decode_lists(tok, len(tok), seed=DIRS.index(name) if name in DIRS else 7):
            r = {"ids": ids}
            r.update(_decode_fields(tok, ids))
            out["decodes"].append(r)
    return out


def hf4_worker(job_path):
    """Under transformers 4.x: build the directories (job["build"]) and/or record the slow and
    fast classes on the given directories (job["dirs"]); answers JSON on stdout."""
    import transformers
    from transformers import AddedToken, T5Tokenizer, T5TokenizerFast
    assert transformers.__version__.startswith("4."), transformers.__version__
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    answer = {"version": transformers.__version__}
    if job.get("build"):
        build_dirs(job["build"], AddedToken, T5Tokenizer, T5TokenizerFast)
    for name, path in job.get("dirs", {}).items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            slow = T5Tokenizer.from_pretrained(path)
            fast = T5TokenizerFast.from_pretrained(path)
        answer[name] = {"slow": reference_outputs(slow, name), "fast": reference_outputs(fast, name)}
    json.dump(answer, sys.stdout)


def build_dirs(out, AddedToken, T5Tokenizer, T5TokenizerFast):
    """The two directories, as checkpoints of each kind were written (transformers 4.x)."""
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        slow = T5Tokenizer(vocab_file=SP_MODEL, extra_ids=100)
        slow.save_pretrained(os.path.join(tmp, "t5"))
        fast = T5TokenizerFast(vocab_file=SP_MODEL, extra_ids=100, from_slow=True, add_prefix_space=True,
                               model_max_length=512)
        fast.add_tokens([AddedToken("<image>", normalized=False, special=True)], special_tokens=True)
        fast.save_pretrained(os.path.join(tmp, "t5_image"))
        for name in DIRS:
            dst = os.path.join(out, name)
            shutil.rmtree(dst, ignore_errors=True)
            os.makedirs(dst)
            for f in sorted(os.listdir(os.path.join(tmp, name))):
                src = os.path.join(tmp, name, f)
                if f in KEEP and os.path.getsize(src) < MAX_KEPT_BYTES:
                    shutil.copyfile(src, os.path.join(dst, f))
            with open(os.path.join(dst, "tokenizer_config.json"), encoding="utf-8") as f:
                assert tmp not in f.read(), "a temporary path leaked into tokenizer_config.json"


def run_hf4(python, job):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(job, f)
    try:
        res = subprocess.run([python, os.path.abspath(__file__), "--hf4-worker", f.name], cwd=ROOT,
                             capture_output=True, text=True, env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"})
    finally:
        os.unlink(f.name)
    if res.returncode:
        sys.exit(f"the transformers 4 worker failed:\n{res.stderr[-4000:]}")
    return json.loads(res.stdout)


def hf5_outputs(dirs):
    import transformers
    from transformers import T5TokenizerFast
    assert transformers.__version__.startswith("5."), "run with transformers 5.x (the reference)"
    out = {}
    for name, path in dirs.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tok = T5TokenizerFast.from_pretrained(path)
        out[name] = reference_outputs(tok, name)
    return out


def _versions():
    import tokenizers
    import transformers
    return {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__}


# ---- records --------------------------------------------------------------------------------------


def _compact(rec):
    """A record without ``decoded_clean`` where the clean-up changes nothing (most of them)."""
    if rec.get("decoded_clean") == rec.get("decoded"):
        del rec["decoded_clean"]
    return rec


def _diff(ref, other):
    """The fields of `other` that differ from `ref` (the hf4_* entries of a record)."""
    return {k: v for k, v in other.items() if ref.get(k) != v}


def assemble(ref, hf4, versions):
    """The jsonl records: one meta per directory, then its texts, batches and decodes."""
    recs = [{"id": "meta", "reference": versions, "dirs": list(DIRS), "variants": VARIANTS,
             "note": "ids/decoded*: transformers 5 T5Tokenizer (= T5TokenizerFast); hf4_slow / hf4_fast: "
                     "transformers 4 T5Tokenizer / T5TokenizerFast, only the fields that differ"}]
    for name in list(DIRS) + list(VARIANTS):
        r5 = ref[name]
        m = {"id": f"{name}/meta", "dir": name, **r5["meta"]}
        for cls in ("slow", "fast"):
            if hf4 and _diff(r5["meta"], hf4[name][cls]["meta"]):
                m[f"hf4_{cls}"] = _diff(r5["meta"], hf4[name][cls]["meta"])
        recs.append(m)
        for i, (t, r) in enumerate(zip(texts_for(name), r5["texts"])):
            rec = _compact({"id": f"{name}/text-{i:03d}", "dir": name, "text": t, **r})
            for cls in ("slow", "fast"):
                if hf4:
                    d = _diff(r, hf4[name][cls]["texts"][i])
                    if d:
                        rec[f"hf4_{cls}"] = d
            recs.append(rec)
        for i, ((texts, padding, max_length, truncation), r) in enumerate(zip(BATCHES, r5["batches"])):
            rec = {"id": f"{name}/batch-{i:02d}", "dir": name, "texts": texts, "padding": padding,
                   "max_length": max_length, "truncation": truncation, **r}
            for cls in ("slow", "fast"):
                if hf4:
                    d = _diff(r, hf4[name][cls]["batches"][i])
                    if d:
                        rec[f"hf4_{cls}"] = d
            recs.append(rec)
        for i, r in enumerate(r5["decodes"]):
            rec = _compact({"id": f"{name}/decode-{i:02d}", "dir": name, **r})
            for cls in ("slow", "fast"):
                if hf4:
                    d = _diff(r, hf4[name][cls]["decodes"][i])
                    if d:
                        rec[f"hf4_{cls}"] = d
            recs.append(rec)
    return recs


def all_dirs(root, tmp):
    """name -> path of the two stored directories and the variants built from them in tmp."""
    dirs = {name: os.path.join(root, name) for name in DIRS}
    for name, spec in VARIANTS.items():
        dirs[name] = os.path.join(tmp, name)
        make_variant(dirs[spec["base"]], spec, dirs[name])
    return dirs


def summary(recs):
    n = {"text": 0, "batch": 0, "decode": 0}
    diff = {"hf4_slow": 0, "hf4_fast": 0}
    for r in recs:
        kind = r["id"].rsplit("/", 1)[-1].split("-")[0]
        if kind in n:
            n[kind] += 1
        for k in diff:
            diff[k] += k in r
    return n, diff


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="re-derive every record and compare; write nothing")
    ap.add_argument("--tf4-python", help="a Python with transformers 4.x: build the directories, record hf4_*")
    ap.add_argument("--hf4-worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.hf4_worker:
        return hf4_worker(args.hf4_worker)
    if not args.check and not args.tf4_python:
        sys.exit("writing needs --tf4-python (the directories are built with transformers 4.x)")

    with tempfile.TemporaryDirectory() as tmp:
        root = DATA
        if args.tf4_python:
            build = os.path.join(tmp, "built")
            run_hf4(args.tf4_python, {"build": build})
            if args.check:
                for name in DIRS:
                    a, b = sorted(os.listdir(os.path.join(DATA, name))), sorted(os.listdir(os.path.join(build, name)))
                    assert a == b, f"{name}: stored files {a} != rebuilt {b}"
                    for f in a:
                        with open(os.path.join(DATA, name, f), "rb") as x:
                            with open(os.path.join(build, name, f), "rb") as y:
                                assert x.read() == y.read(), f"{name}/{f} differs from a rebuild"
                print("directories: identical to a rebuild")
            else:
                root = build
        dirs = all_dirs(root, os.path.join(tmp, "variants"))
        ref = hf5_outputs(dirs)
        hf4 = run_hf4(args.tf4_python, {"dirs": dirs}) if args.tf4_python else None
        versions = _versions()
        if hf4:
            versions["hf4_transformers"] = hf4.pop("version")
        recs = assemble(ref, hf4, versions)

        if args.check:
            with open(OUT_JSONL, encoding="utf-8") as f:
                stored = [json.loads(line) for line in f if line.strip()]
            if not hf4:  # compare without the fields only transformers 4 can re-derive
                stored = [{k: v for k, v in r.items() if not k.startswith("hf4_")} for r in stored]
                stored[0]["reference"].pop("hf4_transformers", None)
            bad = [(a.get("id"), b.get("id")) for a, b in zip(stored, recs) if a != json.loads(_dump(b))]
            if len(stored) != len(recs) or bad:
                sys.exit(f"t5.jsonl: {len(bad)} records differ (first: {bad[:3]}), "
                         f"{len(stored)} stored vs {len(recs)} re-derived records")
            print(f"t5.jsonl: all {len(recs)} records re-derived identically"
                  f"{'' if hf4 else ' (hf4_* fields not checked: no --tf4-python)'}")
            return
        for name in DIRS:
            dst = os.path.join(DATA, name)
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(os.path.join(root, name), dst)
        with open(OUT_JSONL, "w", encoding="utf-8") as f:
            for r in recs:
                f.write(_dump(r) + "\n")
    n, diff = summary(recs)
    print(f"wrote {len(recs)} records to {os.path.relpath(OUT_JSONL, ROOT)}: {n}; records where transformers 4 "
          f"differs: {diff}")


if __name__ == "__main__":
    main()
