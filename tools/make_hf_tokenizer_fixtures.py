#!/usr/bin/env python3
"""Write the Hugging Face tokenizer.json fixtures of tests/test_tokenizer_hf.py
(tests/data/tokenizers/hf_*/ and hf_*.jsonl) with transformers 5.x and HF tokenizers.

Each hf_<name>/ holds what transformers' save_pretrained writes (tokenizer.json,
tokenizer_config.json, chat_template.jinja when there is one); hf_<name>.jsonl holds the
reference outputs of the tokenizer transformers' AutoTokenizer loads back from that directory:

* ``hf_gpt2``      GPT2Tokenizer (= the fast one in v5) from the GPT-2 assets (gpt2/encoder.json + vocab.bpe)
* ``hf_llama``     LlamaTokenizer converted from mistral_tokenizer.model.v1 (add_bos_token=True):
                   Metaspace "first", byte fallback, ByteFallback / Fuse / Strip decoders
* ``hf_llama_legacy`` the same vocabulary with the legacy (LLaVA-1.5 / Llama 2 era) pipeline:
                   Prepend + Replace normalizers, no pre-tokenizer, <s> template, <image> / <pad> tokens
* ``hf_qwen2``     Qwen2Tokenizer (NFC, the Qwen2 split regex, ByteLevel) on a small GPT-2-derived
                   vocabulary, <|im_start|> / <|im_end|> and a chat template
* ``hf_llama3``    a Llama 3 style tokenizer.json (Llama 3 regex, ignore_merges, ByteLevel, template
                   with <|begin_of_text|>) on the same small vocabulary
* ``hf_misc_meta`` small Metaspace vocabulary: NFD / Lowercase / Strip / Replace normalizers,
                   Metaspace(split) + Digits, unk without fuse_unk, RobertaProcessing, added tokens
                   with lstrip / rstrip / single_word / normalized
* ``hf_misc_bytes`` small byte-level vocabulary: NFC + Replace, Split string patterns with every
                   behavior, Digits, ByteLevel(add_prefix_space), BertProcessing, no decoder

Large vocabularies are not stored twice: hf_gpt2 and hf_llama_legacy keep a
``tokenizer.skeleton.json`` (the tokenizer.json without model.vocab / model.merges); tests rebuild
tokenizer.json with ``assemble()`` below from gpt2/encoder.json + vocab.bpe and from
hf_llama/tokenizer.json. tokenizer.json files are stored minified (same content).

Records (one JSON object per line): ``case``, ``text``, ``ids`` = tok(text)["input_ids"],
``ids_plain`` (add_special_tokens=False; only when it is not ``ids`` without the template ids),
``ids_split`` (split_special_tokens=True, no specials; only when != ids_plain), ``decoded`` =
decode(ids), ``decoded_skip`` (skip_special_tokens=True; only when different); then decode-only
records ``decode-NNN`` (``ids``, ``decoded``, ``decoded_skip``) of random id runs over special,
byte and ordinary tokens. The first line is ``{"case": "meta", ...}`` with the template ids.

    python tools/make_hf_tokenizer_fixtures.py            # (re)writes the fixtures
    python tools/make_hf_tokenizer_fixtures.py --check    # compare with the stored files
"""
import argparse
import copy
import json
import os
import random
import shutil
import sys
import tempfile
import warnings



def _import_hf():
    """transformers and tokenizers, needed to generate only: the tests import assemble() alone."""
    global tokenizers, transformers, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    global AutoTokenizer, GPT2Tokenizer, LlamaTokenizer, PreTrainedTokenizerFast, Qwen2Tokenizer
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import tokenizers
    import transformers
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import AutoTokenizer, GPT2Tokenizer, LlamaTokenizer, PreTrainedTokenizerFast, Qwen2Tokenizer


ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DATA = os.path.join(ROOT, "tests", "data", "tokenizers")
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN_CHAT_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                      "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
                      "{% endif %}")

# Strings beyond the shared corpus: special tokens written in text, whitespace, digits, case.
EXTRA = [
    "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n", "<s>Hello</s>", " <s> x </s> ", "<s><s></s>",
    "[INST] hi [/INST]", "Hello <unk> world", "<image>\nWhat is in the picture?", "a<image>b", " <image> ",
    "USER: <image>\nDescribe it. ASSISTANT:",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<|endoftext|><|endoftext|>", "x<|endoftext|>y", "<tool_call>{}</tool_call>", "hello world hello",
    "Hello helloworld hello! ahello hello_x", "[MASK] x [MASK]", "  [MASK]  y", "x[MASK]y", "world  worldly world",
    "ab cab abc", "<mask> a<mask> <mask>b", "12345 3.14159 1,000,000", "a-b--c,d,,e.f..g\nh\n\ni",
    "a\r\n\r\nb", "\n\n\nx", "  lead", "trail  ", "\t\ttab\tx", "e\u0301 \u1100\u1161\u11a8 \u212b \u00c5",
    "I'M YOU'RE he'S it'\u017f", "\u039f\u0394\u039f\u03a3 \u0130STANBUL \u1e9e", "``quoted''", "\u00bd \u00b2 \u2167",
]


def jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def corpus():
    """(case, text): the shared GPT-2 fixture strings, then EXTRA."""
    out = [(r["id"], r["text"]) for r in jsonl(os.path.join(DATA, "gpt2.jsonl"))]
    return out + [(f"extra-{i:03d}", t) for i, t in enumerate(EXTRA)]


# ---- small vocabularies (deterministic: cut from the real ones, never trained) ------------------


def gpt2_vocab_merges():
    with open(os.path.join(DATA, "gpt2", "encoder.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(DATA, "gpt2", "vocab.bpe"), encoding="utf-8") as f:
        merges = [tuple(line.split()) for line in f.read().split("\n")[1:] if line]
    return vocab, merges


def small_bytelevel(n_merges=1500):
    """GPT-2's 256 byte symbols and its first n_merges merges, ids renumbered densely."""
    _, merges = gpt2_vocab_merges()
    vocab = {}
    for c in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[c] = len(vocab)
    kept = merges[:n_merges]
    for a, b in kept:
        vocab.setdefault(a + b, len(vocab))
    return vocab, [list(m) for m in kept]


def small_metaspace(llama_json, n=1200):
    """The converted Mistral vocabulary's first n ids (specials, 256 byte tokens, best pieces) and
    its one-character pieces, renumbered densely, and the merges among them."""
    kept = sorted((i, t) for t, i in llama_json["model"]["vocab"].items() if i < n or len(t) == 1)
    vocab = {t: k for k, (_, t) in enumerate(kept)}
    merges = [m for m in llama_json["model"]["merges"] if m[0] in vocab and m[1] in vocab and m[0] + m[1] in vocab]
    return vocab, merges


# ---- building each tokenizer -------------------------------------------------------------------


def build_gpt2(tmp):
    src = os.path.join(tmp, "gpt2_src")
    os.makedirs(src)
    shutil.copy(os.path.join(DATA, "gpt2", "encoder.json"), os.path.join(src, "vocab.json"))
    shutil.copy(os.path.join(DATA, "gpt2", "vocab.bpe"), os.path.join(src, "merges.txt"))
    return GPT2Tokenizer.from_pretrained(src)


def build_llama(tmp):
    src = os.path.join(tmp, "llama_src")
    os.makedirs(src)
    shutil.copy(os.path.join(DATA, "mistral_tokenizer.model.v1"), os.path.join(src, "tokenizer.model"))
    return LlamaTokenizer.from_pretrained(src, add_bos_token=True)


def build_llama_legacy(llama_json):
    j = copy.deepcopy(llama_json)
    j["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"}, {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
    j["pre_tokenizer"] = None
    j["model"]["unk_token"] = "<unk>"
    tk = Tokenizer.from_str(json.dumps(j))
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                      special_tokens=[("<s>", 1)])
    tk.add_special_tokens([tokenizers.AddedToken("<image>", special=True, normalized=False),
                           tokenizers.AddedToken("<pad>", special=True, normalized=False)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", padding_side="left", model_max_length=4096)


def build_qwen2():
    vocab, merges = small_bytelevel()
    tok = Qwen2Tokenizer(vocab=vocab, merges=[tuple(m) for m in merges], unk_token=None, bos_token=None,
                         eos_token="<|im_end|>", pad_token="<|endoftext|>", model_max_length=32768)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.add_tokens([tokenizers.AddedToken("<tool_call>", special=False, normalized=False),
                    tokenizers.AddedToken("</tool_call>", special=False, normalized=False)])
    tok.chat_template = QWEN_CHAT_TEMPLATE
    return tok


def build_llama3():
    vocab, merges = small_bytelevel()
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m) for m in merges], ignore_merges=True))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tk.decoder = decoders.ByteLevel()
    names = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    names += [f"<|reserved_special_token_{i}|>" for i in range(4)]
    tk.add_special_tokens([tokenizers.AddedToken(t, special=True, normalized=False) for t in names])
    bos = tk.token_to_id("<|begin_of_text|>")
    tk.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                      special_tokens=[("<|begin_of_text|>", bos)])])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                   model_max_length=8192)


def build_misc_meta(llama_json):
    vocab, merges = small_metaspace(llama_json)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m) for m in merges], unk_token="<unk>", fuse_unk=False,
                              byte_fallback=False))
    tk.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.Lowercase(), normalizers.Strip(),
                                          normalizers.Replace("''", '"')])
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True),
        pre_tokenizers.Digits(individual_digits=True)])
    tk.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tk.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 1))
    tk.add_special_tokens([tokenizers.AddedToken("<s>", special=True), tokenizers.AddedToken("</s>", special=True),
                           tokenizers.AddedToken("[MASK]", special=True, lstrip=True, rstrip=True),
                           tokenizers.AddedToken("<image>", special=True, normalized=False)])
    tk.add_tokens([tokenizers.AddedToken("hello", single_word=True, normalized=True),
                   tokenizers.AddedToken("world", rstrip=True, normalized=False),
                   tokenizers.AddedToken("ab", normalized=False)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def build_misc_bytes():
    vocab, merges = small_bytelevel(1000)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m) for m in merges]))
    tk.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace("\t", "  ")])
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split("\n", behavior="removed"), pre_tokenizers.Split(",", behavior="merged_with_next"),
        pre_tokenizers.Split("-", behavior="contiguous"), pre_tokenizers.Split(".", behavior="merged_with_previous"),
        pre_tokenizers.Digits(individual_digits=False),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)])
    tk.add_special_tokens([tokenizers.AddedToken("[CLS]", special=True), tokenizers.AddedToken("[SEP]", special=True),
                           tokenizers.AddedToken("<mask>", special=True, single_word=True, lstrip=True)])
    tk.post_processor = processors.BertProcessing(("[SEP]", tk.token_to_id("[SEP]")),
                                                  ("[CLS]", tk.token_to_id("[CLS]")))
    return PreTrainedTokenizerFast(tokenizer_object=tk, cls_token="[CLS]", sep_token="[SEP]", mask_token="<mask>")


# ---- storing and assembling --------------------------------------------------------------------


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def assemble(data_dir, name, out_dir):
    """Rebuild the directory hf_<name> in out_dir with a full tokenizer.json (skeletons get
    model.vocab / model.merges from where they were taken). Returns out_dir/hf_<name>. Used by
    the tests too."""
    src, dst = os.path.join(data_dir, f"hf_{name}"), os.path.join(out_dir, f"hf_{name}")
    os.makedirs(dst, exist_ok=True)
    for f in os.listdir(src):
        if f != "tokenizer.skeleton.json":
            shutil.copy(os.path.join(src, f), os.path.join(dst, f))
    skel_path = os.path.join(src, "tokenizer.skeleton.json")
    if os.path.exists(skel_path):
        with open(skel_path, encoding="utf-8") as f:
            j = json.load(f)
        source = j["model"].pop("vocab_merges_from")
        if source == "gpt2":
            with open(os.path.join(data_dir, "gpt2", "encoder.json"), encoding="utf-8") as f:
                j["model"]["vocab"] = json.load(f)
            with open(os.path.join(data_dir, "gpt2", "vocab.bpe"), encoding="utf-8") as f:
                j["model"]["merges"] = [line.split() for line in f.read().split("\n")[1:] if line]
        else:
            with open(os.path.join(data_dir, source, "tokenizer.json"), encoding="utf-8") as f:
                m = json.load(f)["model"]
            j["model"]["vocab"], j["model"]["merges"] = m["vocab"], m["merges"]
        with open(os.path.join(dst, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(dumps(j))
    return dst


def save(tok, name, out_dir, tmp, skeleton_from=None):
    """save_pretrained, then keep the tokenizer files (tokenizer.json minified or as a skeleton)."""
    raw = os.path.join(tmp, "raw_" + name)
    tok.save_pretrained(raw)
    dst = os.path.join(out_dir, f"hf_{name}")
    os.makedirs(dst, exist_ok=True)
    for f in ("tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        if os.path.exists(os.path.join(raw, f)):
            shutil.copy(os.path.join(raw, f), os.path.join(dst, f))
    with open(os.path.join(raw, "tokenizer.json"), encoding="utf-8") as f:
        j = json.load(f)
    if skeleton_from:
        full = j
        j = copy.deepcopy(j)
        del j["model"]["vocab"], j["model"]["merges"]
        j["model"]["vocab_merges_from"] = skeleton_from
        with open(os.path.join(dst, "tokenizer.skeleton.json"), "w", encoding="utf-8") as f:
            f.write(dumps(j))
        check = os.path.join(tmp, "check_" + name)
        with open(os.path.join(assemble(out_dir, name, check), "tokenizer.json"), encoding="utf-8") as f:
            assert json.load(f) == full, f"{name}: the skeleton does not reassemble to the saved tokenizer.json"
    else:
        with open(os.path.join(dst, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(dumps(j))


# ---- references -------------------------------------------------------------------------------


def records(directory, strings, seed):
    tok = AutoTokenizer.from_pretrained(directory)
    split = AutoTokenizer.from_pretrained(directory, split_special_tokens=True)
    probe, probe_plain = tok("a")["input_ids"], tok("a", add_special_tokens=False)["input_ids"]
    k = next(k for k in range(len(probe)) if probe[k:k + len(probe_plain)] == probe_plain)
    prefix, suffix = probe[:k], probe[k + len(probe_plain):]
    meta = {"case": "meta", "class": type(tok).__name__, "prefix": prefix, "suffix": suffix, "vocab_size": len(tok),
            "transformers": transformers.__version__, "tokenizers": tokenizers.__version__}
    out = [meta]
    for case, text in strings:
        ids = tok(text)["input_ids"]
        plain = tok(text, add_special_tokens=False)["input_ids"]
        rec = {"case": case, "text": text, "ids": ids}
        if ids != prefix + plain + suffix:
            rec["ids_plain"] = plain
        ids_split = split(text, add_special_tokens=False)["input_ids"]
        if ids_split != plain:
            rec["ids_split"] = ids_split
        rec["decoded"] = tok.decode(ids)
        skip = tok.decode(ids, skip_special_tokens=True)
        if skip != rec["decoded"]:
            rec["decoded_skip"] = skip
        out.append(rec)
    # Decode-only: random runs over special, byte and ordinary ids.
    rng = random.Random(seed)
    specials = sorted(set(tok.all_special_ids))
    some_bytes = (0x41, 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80, 0x0A, 0xFF)
    byte_ids = [i for i in (tok.convert_tokens_to_ids(f"<0x{b:02X}>") for b in some_bytes)
                if isinstance(i, int) and i != tok.unk_token_id]
    pool = specials + byte_ids + [rng.randrange(len(tok)) for _ in range(40)]
    for k in range(40):
        ids = [rng.choice(pool) for _ in range(rng.randint(1, 10))]
        rec = {"case": f"decode-{k:03d}", "ids": ids, "decoded": tok.decode(ids)}
        skip = tok.decode(ids, skip_special_tokens=True)
        if skip != rec["decoded"]:
            rec["decoded_skip"] = skip
        out.append(rec)
    return out


def generate(out_dir, tmp):
    strings = corpus()
    shared = [s for s in strings if not s[0].startswith("extra")]
    every_third = shared[::3] + strings[len(shared):]
    save(build_gpt2(tmp), "gpt2", out_dir, tmp, skeleton_from="gpt2")
    save(build_llama(tmp), "llama", out_dir, tmp)
    with open(os.path.join(out_dir, "hf_llama", "tokenizer.json"), encoding="utf-8") as f:
        llama_json = json.load(f)
    save(build_llama_legacy(llama_json), "llama_legacy", out_dir, tmp, skeleton_from="hf_llama")
    save(build_qwen2(), "qwen2", out_dir, tmp)
    save(build_llama3(), "llama3", out_dir, tmp)
    save(build_misc_meta(llama_json), "misc_meta", out_dir, tmp)
    save(build_misc_bytes(), "misc_bytes", out_dir, tmp)
    plan = [("gpt2", strings), ("llama", strings), ("llama_legacy", strings), ("qwen2", strings),
            ("llama3", strings), ("misc_meta", every_third), ("misc_bytes", every_third)]
    for seed, (name, texts) in enumerate(plan):
        directory = assemble(out_dir, name, os.path.join(tmp, "assembled"))
        with open(os.path.join(out_dir, f"hf_{name}.jsonl"), "w", encoding="utf-8") as f:
            for rec in records(directory, texts, seed):
                f.write(json.dumps(rec, ensure_ascii=True) + "\n")
        print(f"hf_{name}: {len(texts)} strings")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="regenerate in a temporary directory and compare")
    args = ap.parse_args()
    _import_hf()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.check:
            generate(DATA, tmp)
            return
        out = os.path.join(tmp, "out")
        shutil.copytree(DATA, out)
        generate(out, tmp)
        stale = []
        for root, _, files in os.walk(out):
            for f in files:
                rel = os.path.relpath(os.path.join(root, f), out)
                with open(os.path.join(root, f), "rb") as a, open(os.path.join(DATA, rel), "rb") as b:
                    if a.read() != b.read():
                        stale.append(rel)
        print("up to date" if not stale else "stale: " + ", ".join(stale))
        sys.exit(1 if stale else 0)


if __name__ == "__main__":
    main()
