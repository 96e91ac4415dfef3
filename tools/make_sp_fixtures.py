"""Make the SentencePiece unigram / SigLIP fixtures of tests/test_sentencepiece.py.

No unigram model (SigLIP's or T5's spiece.model) can be fetched here, so this script trains
small ones with the sentencepiece library on a deterministic corpus and records what the
library (and transformers' SiglipTokenizer) output for a varied string set:

    python tools/make_sp_fixtures.py            # writes tests/data/tokenizers/sp_*
    python tools/make_sp_fixtures.py --check    # re-derives every record, compares, writes nothing

Dev-only dependencies: sentencepiece (0.2.x), protobuf (to patch flags into a model), and
transformers (SiglipTokenizer). mmsuite itself never imports any of them.

Corpus: the `text` fields of tests/data/tokenizers/clip.jsonl (captions, VQA prompts and the
multilingual / edge-case strings of the shared tokenizer fixtures) plus 3000 sentences drawn
with random.Random(0) from their ASCII words. Training is single-threaded with a fixed seed,
so a re-run gives the same models (--check verifies the records against the stored models).
"""
import argparse
import json
import os
import random
import sys
import tempfile
import unicodedata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "tokenizers")

# name -> trainer arguments (besides input / model_prefix) and flags patched in afterwards.
MODELS = {
    # T5 / SigLIP layout: pad 0, eos 1, unk 2, no bos; nmt_nfkc charsmap; unknown -> <unk>.
    "sp_unigram_nfkc": dict(
        train=dict(model_type="unigram", vocab_size=800, normalization_rule_name="nmt_nfkc",
                   character_coverage=0.995, pad_id=0, eos_id=1, unk_id=2, bos_id=-1),
        patch={}),
    # Identity normalizer, byte fallback, user-defined and control symbols, spaces kept.
    "sp_unigram_bytefb": dict(
        train=dict(model_type="unigram", vocab_size=1000, normalization_rule_name="identity",
                   character_coverage=0.995, byte_fallback=True, remove_extra_whitespaces=False,
                   user_defined_symbols=["<mask>", "[IMG]", "{}"], control_symbols=["<ctrl>"]),
        patch={}),
    # Byte fallback, no dummy prefix, '▁' as a suffix, digits split, a user-defined symbol.
    "sp_unigram_suffix": dict(
        subset=True, train=dict(model_type="unigram", vocab_size=600, normalization_rule_name="identity",
                   character_coverage=0.99, byte_fallback=True, add_dummy_prefix=False,
                   treat_whitespace_as_suffix=True, split_digits=True, user_defined_symbols=["<mask>"]),
        patch={}),
    # The byte-fallback model with escape_whitespaces off (patched in: training needs it on).
    "sp_unigram_noescape": dict(
        base="sp_unigram_bytefb", subset=True,
        patch={"escape_whitespaces": False}),
    # The same with every 5th multi-character piece marked UNUSED (never output by unigram).
    "sp_unigram_unused": dict(
        base="sp_unigram_bytefb", subset=True, unused_every=5,
        patch={}),
    # A small BPE model without byte fallback: unknown runs -> one <unk>, frozen user symbol.
    "sp_bpe_small": dict(
        train=dict(model_type="bpe", vocab_size=500, normalization_rule_name="identity",
                   character_coverage=0.99, user_defined_symbols=["<mask>"]),
        patch={}),
    # The BPE model with every 4th multi-character piece UNUSED: merges through them are
    # split back into the two symbols they came from (the library's resegment).
    "sp_bpe_unused": dict(
        base="sp_bpe_small", subset=True, unused_every=4,
        patch={}),
}
SIGLIP_MODEL = "sp_unigram_nfkc"
SIGLIP_MAX_LENGTH = 64

# Strings beyond clip.jsonl: whitespace rules, charsmap cases, specials written in text.
EXTRA_TEXTS = [
    "  leading and trailing  ", "a\u00a0b\u3000c", "tab\there\nnewline", "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
    "\ufb01 ligature \u2460\u2461 \u00bd \u2126", "zero\u200bwidth\u200d joiners", "\u2581literal\u2581 \u2581",
    "<mask> and [IMG] and {} and <ctrl>", "<unk> <s> </s> <pad>", "hello</s>world", "a cat </s>", "</s>",
    "x" * 300, "word " * 40, "A photo of a CAT, on a mat!", "don't stop-believing (1999)...",
    "\u00c5ngstr\u00f6m \u212b", "\u1100\u1161\u11a8 \uac01", "e\u0301 \u00e9", "\x00nul\x01ctrl\x7f",
    "\ud7ff\ue000\uffff", "\U0001F600\U0001F469\u200d\U0001F52C", "MiXeD CaSe ẞ \u0130stanbul", "   ",
    "\u2581", " \u2581 ", "{}{}{}", "<mask><mask>", "123456 7890", "\u0660\u0661\u0662 \uff11\uff12",
]
# Byte strings (ill-formed UTF-8): the library replaces each bad byte with U+FFFD.
EXTRA_BYTES = [b"ab\xffcd", b"\xe2\x82", b"ok \xc0\x80 \xed\xa0\x80 end", b"\xf0\x9f\x98"]


def _corpus(texts):
    rng = random.Random(0)
    words = " ".join(t for t in texts if t.isascii()).split()
    lines = [" ".join(t.split()) for t in texts if t.strip()]
    for _ in range(3000):
        lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(3, 15))))
    return "\n".join(lines) + "\n"


def _clip_texts():
    with open(os.path.join(OUT, "clip.jsonl"), encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def _escape(s):
    """JSON with every control / format / separator / private-use / unassigned character as
    \\uXXXX (as the shared fixtures), so a record never breaks a line."""
    out = json.dumps(s, ensure_ascii=False)
    return "".join(json.dumps(c)[1:-1] if unicodedata.category(c)[0] in "CZ" and c != " " else c for c in out)


def _dump(obj):
    """One JSON line: keys in order, strings escaped by _escape."""
    parts = []
    for k, v in obj.items():
        if isinstance(v, str):
            parts.append(f"{json.dumps(k)}: {_escape(v)}")
        elif isinstance(v, list) and v and isinstance(v[0], str):
            parts.append(f"{json.dumps(k)}: [" + ", ".join(_escape(x) for x in v) + "]")
        else:
            parts.append(f"{json.dumps(k)}: {json.dumps(v)}")
    return "{" + ", ".join(parts) + "}"


def train(corpus_path, name, spec, tmp):
    import sentencepiece as spm
    spm.set_random_generator_seed(0)
    prefix = os.path.join(tmp, name)
    spm.SentencePieceTrainer.train(input=corpus_path, model_prefix=prefix, num_threads=1, minloglevel=2,
                                   **spec["train"])
    with open(prefix + ".model", "rb") as f:
        return f.read()


def patch(model_bytes, name, flags, unused_every=0):
    """Set NormalizerSpec flags in a serialized ModelProto (protobuf's generated module), and
    replace the temporary corpus path / prefix the trainer stored, so a re-run is identical."""
    from sentencepiece import sentencepiece_model_pb2 as pb
    m = pb.ModelProto()
    m.ParseFromString(model_bytes)
    del m.trainer_spec.input[:]
    m.trainer_spec.input.append("corpus.txt")
    m.trainer_spec.model_prefix = name
    for k, v in flags.items():
        setattr(m.normalizer_spec, k, v)
    if unused_every:
        multi = [p for p in m.pieces if p.type == pb.ModelProto.SentencePiece.NORMAL and len(p.piece) > 1]
        for p in multi[::unused_every]:
            p.type = pb.ModelProto.SentencePiece.UNUSED
    return m.SerializeToString()


def _str(x):
    """The library answers bytes for bytes input; its output is UTF-8 after normalization."""
    return x.decode("utf-8", "replace") if isinstance(x, bytes) else x


def records(model_path, texts):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=model_path)
    out = []
    for i, t in enumerate(texts):
        r = {"id": f"text-{i:03d}"}
        if isinstance(t, bytes):
            r["bytes_hex"] = t.hex()
        else:
            r["text"] = t
        r["normalized"] = _str(sp.normalize(t))
        r["ids"] = sp.encode(t)
        pieces = [_str(p) for p in sp.encode(t, out_type=str)]
        if pieces != [sp.id_to_piece(i) for i in r["ids"]]:  # unknown runs keep their text
            r["pieces"] = pieces
        r["decoded"] = sp.decode(r["ids"])
        out.append(r)
    # Decode-only cases: random id runs over every piece type (control, unk, byte, user).
    rng = random.Random(1)
    n = sp.get_piece_size()
    special = [i for i in range(n) if sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i)]
    for k in range(40):
        pool = special if k % 2 else list(range(n))
        ids = [rng.choice(pool) if rng.random() < 0.5 else rng.randrange(n) for _ in range(rng.randint(1, 12))]
        out.append({"id": f"decode-{k:03d}", "ids": ids, "decoded": sp.decode(ids)})
    meta = {"id": "model", "vocab_size": n, "unk_id": sp.unk_id(), "bos_id": sp.bos_id(), "eos_id": sp.eos_id(),
            "pad_id": sp.pad_id(), "byte_fallback": any(sp.is_byte(i) for i in range(n))}
    return [meta] + out


def siglip_records(model_path, texts):
    import warnings
    from transformers import SiglipTokenizer
    tok = SiglipTokenizer(vocab_file=model_path)
    out = [{"id": "config", "pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id,
            "unk_token_id": tok.unk_token_id, "model_max_length": tok.model_max_length}]
    for i, t in enumerate(texts):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "This sequence already has </s>"
            enc = tok(t, padding="max_length", max_length=SIGLIP_MAX_LENGTH, truncation=True)
            full = tok(t)["input_ids"]
        n_tok = sum(enc["attention_mask"])
        # Stored unpadded: input_ids = tokens + pad_token_id up to 64; attention_mask = 1s, 0s.
        assert enc["attention_mask"] == [1] * n_tok + [0] * (SIGLIP_MAX_LENGTH - n_tok)
        assert enc["input_ids"][n_tok:] == [tok.pad_token_id] * (SIGLIP_MAX_LENGTH - n_tok)
        r = {"id": f"text-{i:03d}", "text": t, "input_ids": enc["input_ids"][:n_tok]}
        if full != r["input_ids"]:
            r["input_ids_untruncated"] = full
        out.append(r)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the stored files, write nothing")
    args = ap.parse_args()
    import sentencepiece as spm
    import transformers
    texts = _clip_texts() + EXTRA_TEXTS
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            f.write(_corpus(_clip_texts()))
        models = {}
        for name, spec in MODELS.items():
            path = os.path.join(OUT, name + ".model")
            if args.check:
                with open(path, "rb") as f:
                    models[name] = f.read()
                continue
            base = models[spec["base"]] if "base" in spec else train(corpus, name, spec, tmp)
            models[name] = patch(base, name, spec["patch"], spec.get("unused_every", 0))
            with open(path, "wb") as f:
                f.write(models[name])
        files = {}
        for name, spec in MODELS.items():
            path = os.path.join(OUT, name + ".model")
            # Variants of a model get every third string, to keep the fixtures small.
            subset = texts[::3] + EXTRA_TEXTS if spec.get("subset") else texts
            files[name + ".jsonl"] = records(path, subset + EXTRA_BYTES)
        files["sp_siglip.jsonl"] = siglip_records(os.path.join(OUT, SIGLIP_MODEL + ".model"), texts)
    bad = 0
    for fname, recs in files.items():
        text = "".join(_dump(r) + "\n" for r in recs)
        path = os.path.join(OUT, fname)
        if args.check:
            with open(path, encoding="utf-8") as f:
                same = f.read() == text
            print(f"{fname}: {'same' if same else 'DIFFERENT'} ({len(recs)} records)")
            bad += not same
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            print(f"{fname}: {len(recs)} records, {len(text.encode())} bytes")
    print(f"sentencepiece {spm.__version__}, transformers {transformers.__version__}, python {sys.version.split()[0]}")
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT) if f.startswith("sp_"))
    print(f"total size of sp_* files: {total / 1e6:.2f} MB")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
