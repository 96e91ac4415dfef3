"""GPT-2 / OPT byte-level BPE and Hugging Face tokenizer.json tokenizers (csrc/tokenizer_hf*.c,
mmsuite._C.HFTokenizer, GPT2Tokenizer, HFTokenizer, StreamDecoder) against their references
(tests/data/tokenizers, see tests/data/README.md): every record of the openai/gpt-2 and OPT
fixtures, every record transformers 5.24 gives for the hf_* tokenizer.json fixtures
(tools/make_hf_tokenizer_fixtures.py), the Mistral SentencePiece fixtures, streaming decode,
batches, loading and dispatch, refused features, threads, leaks."""
import gc
import hashlib
import json
import os
import random
import shutil
import sys
import threading

import numpy as np
import pytest

from mmsuite import _C
from mmsuite.errors import FormatError, UnsupportedError
from mmsuite.tokenizer import (CLIPTokenizer, GPT2Tokenizer, HFTokenizer, SentencePieceTokenizer, StreamDecoder,
                               load_tokenizer)

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data", "tokenizers")
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
from make_hf_tokenizer_fixtures import QWEN_CHAT_TEMPLATE, assemble  # noqa: E402

GPT2_DIR = os.path.join(DATA, "gpt2")
GPT2_VOCAB, GPT2_MERGES = os.path.join(GPT2_DIR, "encoder.json"), os.path.join(GPT2_DIR, "vocab.bpe")
OPT_VOCAB = os.path.join(DATA, "opt", "vocab.json")
SHA256 = {  # shared/tokenizers/manifest.json
    GPT2_VOCAB: "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    GPT2_MERGES: "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    OPT_VOCAB: "a57ebd0a6577730ca7bfe59463cde875fbccc87f8ea581233388f16efb546dc4",
}
HF_NAMES = ["gpt2", "llama", "llama_legacy", "qwen2", "llama3", "misc_meta", "misc_bytes"]
OPT_SPECIALS = dict(bos_token="</s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>")


def _jsonl(name):
    with open(os.path.join(DATA, name), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


GPT2_RECORDS = _jsonl("gpt2.jsonl")
OPT_RECORDS = _jsonl("opt.jsonl")


@pytest.fixture(scope="module")
def gpt2():
    return GPT2Tokenizer.from_files(GPT2_VOCAB, GPT2_MERGES)


@pytest.fixture(scope="module")
def opt():
    return GPT2Tokenizer.from_files(OPT_VOCAB, GPT2_MERGES, add_bos_token=True, **OPT_SPECIALS)


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    """hf_<name> directories with full tokenizer.json files (skeletons assembled)."""
    tmp = str(tmp_path_factory.mktemp("hf"))
    return {name: assemble(DATA, name, tmp) for name in HF_NAMES}


_hf_cache = {}


def hf(hf_dirs, name):
    if name not in _hf_cache:
        _hf_cache[name] = HFTokenizer.from_pretrained(hf_dirs[name])
    return _hf_cache[name]


# ---- GPT-2 and OPT: every record -----------------------------------------------------------------


def test_assets():
    for path, digest in SHA256.items():
        with open(path, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest, path


def test_gpt2_every_record(gpt2):
    assert (gpt2.vocab_size, gpt2.eos_token_id, gpt2.core.template) == (50257, 50256, ([], []))
    for r in GPT2_RECORDS:
        # The reference reads "<|endoftext|>" in text as text: split_special_tokens.
        assert gpt2.encode(r["text"], split_special_tokens=True) == r["ids"], r["id"]
        if "<|endoftext|>" not in r["text"]:
            assert gpt2.encode(r["text"]) == r["ids"], r["id"]
        assert gpt2.convert_ids_to_tokens(r["ids"]) == r["tokens"], r["id"]
        assert gpt2.convert_tokens_to_ids(r["tokens"]) == r["ids"], r["id"]
        assert gpt2.decode(r["ids"]) == r["decoded"], r["id"]
    for r in _jsonl("gpt2.decode.jsonl"):
        assert gpt2.decode(r["ids"]) == r["decoded"], r["note"]


def test_gpt2_special_tokens_in_text(gpt2):
    assert gpt2.encode("a<|endoftext|>b") == [64, 50256, 65]
    assert gpt2.decode([64, 50256, 65]) == "a<|endoftext|>b"
    assert gpt2.decode([64, 50256, 65], skip_special_tokens=True) == "ab"
    assert gpt2.encode("a<|endoftext|>b", split_special_tokens=True) == [64, 27, 91, 437, 1659, 5239, 91, 29, 65]


def test_opt_every_record(opt):
    assert (opt.bos_token_id, opt.pad_token_id, opt.core.template) == (2, 1, ([2], []))
    for r in OPT_RECORDS:
        assert opt.encode(r["text"]) == r["ids"], r["id"]
        assert opt.encode(r["text"], add_special_tokens=False) == r["ids_no_bos"], r["id"]
        assert opt.decode(r["ids_no_bos"]) == r["decoded"], r["id"]
        assert opt.decode(r["ids"]) == r["decoded_with_bos"], r["id"]
        assert opt.decode(r["ids"], skip_special_tokens=True) == r["decoded"], r["id"]
    for r in _jsonl("opt.decode.jsonl"):
        assert opt.decode(r["ids"]) == r["decoded"], r["note"]
    # The published OPT / RoBERTa test vector.
    assert opt.encode("Hello world! cécé herlolip") == [2, 31414, 232, 328, 740, 1140, 12695, 69, 46078, 1588]


def test_gpt2_layouts(tmp_path):
    """encoder.json + vocab.bpe and vocab.json + merges.txt (+ an OPT tokenizer_config.json)."""
    t = load_tokenizer(GPT2_DIR)
    assert type(t) is GPT2Tokenizer and t.encode("Hello world") == [15496, 995]
    assert type(load_tokenizer(GPT2_VOCAB)) is GPT2Tokenizer
    d = tmp_path / "opt"
    d.mkdir()
    shutil.copy(OPT_VOCAB, d / "vocab.json")
    shutil.copy(GPT2_MERGES, d / "merges.txt")
    (d / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "GPT2Tokenizer", "add_bos_token": True, "model_max_length": 2048, "errors": "replace",
        "bos_token": {"content": "</s>", "lstrip": False}, "eos_token": "</s>", "unk_token": "</s>",
        "pad_token": "<pad>"}))
    t = load_tokenizer(str(d))
    assert type(t) is GPT2Tokenizer and t.model_max_length == 2048 and t.pad_token_id == 1
    r = OPT_RECORDS[40]
    assert t.encode(r["text"]) == r["ids"] and t.decode(r["ids"], skip_special_tokens=True) == r["decoded"]
    assert t.encode("x</s>y") == [2, 1178, 2, 219]  # special tokens of the config are matched in text
    (d / "tokenizer_config.json").unlink()  # no config, not CLIP's vocabulary: still GPT-2 BPE
    assert type(load_tokenizer(str(d))) is GPT2Tokenizer


# ---- tokenizer.json fixtures: every record transformers gives ------------------------------------


@pytest.mark.parametrize("name", HF_NAMES)
def test_hf_every_record(hf_dirs, name):
    tok = hf(hf_dirs, name)
    recs = _jsonl(f"hf_{name}.jsonl")
    meta = recs[0]
    assert tok.core.template == (meta["prefix"], meta["suffix"])
    assert tok.vocab_size == meta["vocab_size"]
    n_pre, n_suf = len(meta["prefix"]), len(meta["suffix"])
    for r in recs[1:]:
        if "text" in r:
            ids = tok.encode(r["text"])
            assert ids == r["ids"], r["case"]
            plain = r.get("ids_plain", r["ids"][n_pre:len(r["ids"]) - n_suf])
            assert tok.encode(r["text"], add_special_tokens=False) == plain, r["case"]
            split = tok.encode(r["text"], add_special_tokens=False, split_special_tokens=True)
            assert split == r.get("ids_split", plain), r["case"]
        assert tok.decode(r["ids"]) == r["decoded"], r["case"]
        assert tok.decode(r["ids"], skip_special_tokens=True) == r.get("decoded_skip", r["decoded"]), r["case"]


def test_hf_gpt2_equals_reference(hf_dirs, gpt2):
    """tokenizer.json merges one pair at a time (HF); openai/gpt-2 a pass per rank: same ids."""
    tok = hf(hf_dirs, "gpt2")
    for r in GPT2_RECORDS:
        assert tok.encode(r["text"], split_special_tokens=True) == r["ids"], r["id"]


@pytest.mark.parametrize("name", ["llama", "llama_legacy"])
def test_hf_llama_equals_sentencepiece(hf_dirs, name):
    """The Mistral v1 model converted to tokenizer.json gives sentencepiece's ids, except where
    transformers' own tokenizer.json differs from sentencepiece (Metaspace "first" adds no '▁'
    before a leading space; HF merges by rank where sentencepiece merges by score): there our
    ids are the transformers reference's, so the differences are listed, not ours. (Decoding
    ill-formed byte runs differs by design: HF's ByteFallback replaces every byte of the run.)"""
    tok = hf(hf_dirs, name)
    ref = {r["case"]: r for r in _jsonl(f"hf_{name}.jsonl")[1:] if "text" in r}
    differ = []
    for r in _jsonl("mistral_v1.jsonl"):
        ids = tok.encode(r["text"], add_special_tokens=False, split_special_tokens=True)
        rec = ref[r["id"]]
        want = rec.get("ids_split", rec.get("ids_plain", rec["ids"][1:]))
        assert ids == want, r["id"]
        if want != r["ids"]:
            differ.append(r["id"])
        else:
            assert ids == r["ids"], r["id"]
        assert tok.decode(r["ids"]) == r["decoded"], r["id"]
        assert tok.decode(r["ids_bos"], skip_special_tokens=True) == r["decoded_bos"], r["id"]
    # Leading / repeated spaces and a literal '▁' only: 14 (Metaspace "first") or 4 (legacy) of 416.
    assert len(differ) == {"llama": 14, "llama_legacy": 4}[name], differ


def test_hf_pretrained_attributes(hf_dirs):
    q = hf(hf_dirs, "qwen2")
    assert q.chat_template == QWEN_CHAT_TEMPLATE and q.model_max_length == 32768
    assert q.bos_token_id is None and q.eos_token == "<|im_end|>" and q.pad_token == "<|endoftext|>"
    start = q.convert_tokens_to_ids("<|im_start|>")
    assert q.core.is_special(start) and start != q.eos_token_id
    assert q.encode("<|im_start|>user") == [start] + q.encode("user")
    assert q.core.is_special(q.eos_token_id) and not q.core.is_special(q.convert_tokens_to_ids("<tool_call>"))
    ll = hf(hf_dirs, "llama_legacy")
    assert (ll.bos_token_id, ll.eos_token_id, ll.unk_token_id, ll.pad_token_id) == (1, 2, 0, 32001)
    assert ll.padding_side == "left" and ll.model_max_length == 4096
    assert ll.core.decoders == ["Replace", "ByteFallback", "Fuse", "Strip"] and q.core.decoders == ["ByteLevel"]
    assert ll.convert_ids_to_tokens(32000) == "<image>" and ll.convert_tokens_to_ids("nope-nope") == 0
    assert ll.encode("USER: <image>\nHi")[:1] == [1] and 32000 in ll.encode("USER: <image>\nHi")
    l3 = hf(hf_dirs, "llama3")
    assert l3.bos_token_id == l3.core.template[0][0] and l3.eos_token == "<|eot_id|>"
    assert "HFTokenizer" in repr(l3)
    added = {a["content"]: a for a in hf(hf_dirs, "misc_meta").core.added_tokens}
    assert added["[MASK]"]["lstrip"] and added["[MASK]"]["rstrip"] and added["hello"]["single_word"]
    assert added["hello"]["normalized"] and not added["hello"]["special"]


def test_add_bos_eos_override(hf_dirs, tmp_path):
    """tokenizer_config.json's add_bos_token / add_eos_token rebuild the template, as transformers."""
    d = tmp_path / "l"
    shutil.copytree(hf_dirs["llama_legacy"], d)
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    ids = hf(hf_dirs, "llama_legacy").encode("Hi there", add_special_tokens=False)
    for bos, eos, expect in ((True, True, [1] + ids + [2]), (False, True, ids + [2]), (False, False, ids)):
        (d / "tokenizer_config.json").write_text(json.dumps({**cfg, "add_bos_token": bos, "add_eos_token": eos}))
        assert HFTokenizer.from_pretrained(str(d)).encode("Hi there") == expect
    t = HFTokenizer.from_pretrained(str(d), add_bos_token=True, bos_token="</s>")
    assert t.encode("Hi there") == [2] + ids
    # A special token the config names but the file lacks is added (next free id).
    t = HFTokenizer.from_pretrained(str(d), pad_token="<PAD2>")
    assert t.pad_token_id == 32002 and t.encode("a<PAD2>", add_special_tokens=False)[-1] == 32002


# ---- streaming decode --------------------------------------------------------------------------


def _stream(tok, ids, skip=False):
    dec = StreamDecoder(tok, skip_special_tokens=skip)
    parts = [dec.push(i) for i in ids]
    final = dec.flush()
    return parts, final


def _check_stream(tok, ids, skip=False):
    parts, final = _stream(tok, ids, skip)
    want = tok.decode(ids, skip_special_tokens=skip)
    assert "".join(parts) + final == want, (ids, parts, final)
    return parts


@pytest.mark.parametrize("kind", ["gpt2", "opt", "mistral_v1", "mistral_v3"])
def test_stream_decoder_every_fixture(kind, gpt2, opt):
    if kind == "gpt2":
        tok, cases = gpt2, [r["ids"] for r in GPT2_RECORDS] + [r["ids"] for r in _jsonl("gpt2.decode.jsonl")]
    elif kind == "opt":
        tok, cases = opt, [r["ids"] for r in OPT_RECORDS] + [r["ids"] for r in _jsonl("opt.decode.jsonl")]
    else:
        model = {"mistral_v1": "mistral_tokenizer.model.v1",
                 "mistral_v3": "mistral_instruct_tokenizer_240323.model.v3"}[kind]
        tok = SentencePieceTokenizer.from_pretrained(os.path.join(DATA, model))
        recs = _jsonl(f"{kind}.jsonl")
        cases = [r["ids_bos"] for r in recs] + [r["ids"] for r in _jsonl(f"{kind}.decode.jsonl")]
    for ids in cases:
        for skip in (False, True):
            _check_stream(tok, ids, skip)


@pytest.mark.parametrize("name", ["llama", "llama_legacy", "qwen2", "misc_meta", "misc_bytes"])
def test_stream_decoder_hf(hf_dirs, name):
    tok = hf(hf_dirs, name)
    for r in _jsonl(f"hf_{name}.jsonl")[1:]:
        _check_stream(tok, r["ids"])
        _check_stream(tok, r["ids"], skip=True)


def test_stream_decoder_splits_characters(hf_dirs, gpt2):
    # GPT-2: "€" is bytes E2 82 AC over two tokens; nothing shows until the character is whole.
    ids = gpt2.encode("a€b")
    parts = _check_stream(gpt2, ids)
    assert "\ufffd" not in "".join(parts) and "€" in "".join(parts)
    # Llama byte fallback: a valid character's bytes wait for the whole run (HF ByteFallback
    # replaces every byte of an invalid run, so "é" then 0xE2 must not emit "é" early).
    ll = hf(hf_dirs, "llama")
    b = {x: ll.convert_tokens_to_ids(f"<0x{x:02X}>") for x in (0xC3, 0xA9, 0xE2, 0x82, 0xAC)}
    world = ll.convert_tokens_to_ids("▁world")
    for ids in ([b[0xC3], b[0xA9], b[0xE2], world], [b[0xE2], b[0x82], b[0xAC], world], [world, b[0xE2], b[0x82]]):
        _check_stream(ll, ids)
    dec = StreamDecoder(gpt2)
    assert [dec.push(i) for i in gpt2.encode("Hello world")] == ["Hello", " world"] and dec.flush() == ""
    clip = CLIPTokenizer.from_pretrained(os.path.join(DATA, "bpe_simple_vocab_16e6.txt.gz"), use_ftfy=False)
    for text in ("a photo of a cat", "literal </w> marker", "caf\u00e9 \U0001F600 </"):
        _check_stream(clip, clip.encode(text))


# ---- batches -----------------------------------------------------------------------------------


def test_batch_rows(hf_dirs, gpt2):
    ll = hf(hf_dirs, "llama_legacy")  # template [<s>] $A, left padding, pad 32001
    texts = ["Hello world", "a", "A much longer sentence with quite a few words in it."]
    rows = [ll.encode(t) for t in texts]
    out = ll(texts, context_length=8)
    for i, r in enumerate(rows):
        r = r[:8]
        assert out["input_ids"][i].tolist() == [32001] * (8 - len(r)) + r
        assert out["attention_mask"][i].tolist() == [0] * (8 - len(r)) + [1] * len(r)
    longest = ll(texts[:2], padding="longest", return_tensors=None)
    assert longest["input_ids"][1] == [32001] * (len(rows[0]) - len(rows[1])) + rows[1]
    with pytest.raises(ValueError, match="text 2 has"):
        ll(texts, context_length=8, truncation=False)
    mm = hf(hf_dirs, "misc_meta")  # RobertaProcessing: <s> ... </s> survive truncation
    out = mm(["one two three four five six"], context_length=5)["input_ids"][0].tolist()
    assert out[0] == 1 and out[-1] == 2 and out[1:4] == mm.encode("one two three four five six")[1:4]
    gpt2_rows = gpt2(["Hello world", "Hi"], padding="longest")  # no model_max_length, no pad token
    assert gpt2_rows["input_ids"].tolist() == [[15496, 995], [17250, 0]]
    with pytest.raises(ValueError, match="model_max_length"):
        gpt2(["Hello"])
    with pytest.raises(TypeError):
        gpt2([1, 2])
    ids, mask = gpt2.core.encode_batch(["a b c"] * 70, 2)  # parallel path
    assert ids.tolist() == [[64, 275]] * 70 and mask.sum() == 140


# ---- dispatch, files, refused features ---------------------------------------------------------


def test_load_tokenizer_dispatch(hf_dirs, tmp_path):
    assert type(load_tokenizer(hf_dirs["qwen2"])) is HFTokenizer
    assert type(load_tokenizer(os.path.join(hf_dirs["llama3"], "tokenizer.json"))) is HFTokenizer
    d = tmp_path / "llava"  # tokenizer.json next to tokenizer.model: tokenizer.json wins
    shutil.copytree(hf_dirs["llama_legacy"], d)
    shutil.copy(os.path.join(DATA, "mistral_tokenizer.model.v1"), d / "tokenizer.model")
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    (d / "tokenizer_config.json").write_text(json.dumps({**cfg, "tokenizer_class": "LlamaTokenizer"}))
    assert type(load_tokenizer(str(d))) is HFTokenizer
    (d / "tokenizer.json").unlink()
    (d / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer"}))
    assert type(load_tokenizer(str(d))) is SentencePieceTokenizer


def _minimal(**over):
    """A small tokenizer.json (HF tokenizers loads it too); keys replaced by over."""
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    j = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
         "pre_tokenizer": bl, "post_processor": None, "decoder": bl,
         "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                   "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                   "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}
    j.update(over)
    return j


def test_json_forms():
    t = _C.HFTokenizer(json.dumps(_minimal()))
    assert t.encode("abab") == [2, 2] and t.decode([2, 0]) == "aba"
    t = _C.HFTokenizer(json.dumps(_minimal(model={"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2},
                                                     "merges": [["a", "b"]]})).encode())
    assert t.encode("ab") == [2] and t.model_vocab_size == 3 and t.unk_id == -1
    # Unknown characters without unk_token vanish, as in HF (and do not break the word).
    assert t.encode("acb") == [2]


@pytest.mark.parametrize("change, exc, words", [
    ({"model": {"type": "Unigram", "vocab": [["a", 0.0]]}}, UnsupportedError, ["model type 'Unigram'"]),
    ({"model": {"type": "WordPiece", "vocab": {"a": 0}}}, UnsupportedError, ["WordPiece"]),
    ({"normalizer": {"type": "NFKC"}}, UnsupportedError, ["normalizer type 'NFKC'"]),
    ({"normalizer": {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "}}, UnsupportedError, ["\\s+"]),
    ({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\d+"}, "behavior": "Isolated"}}, UnsupportedError,
     ["Split regex '\\d+'", "Qwen2"]),
    ({"pre_tokenizer": {"type": "Whitespace"}}, UnsupportedError, ["'Whitespace'"]),
    ({"decoder": {"type": "WordPiece"}}, UnsupportedError, ["decoder type 'WordPiece'"]),
    ({"post_processor": {"type": "Custom"}}, UnsupportedError, ["post-processor type 'Custom'"]),
    ({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "dropout": 0.1}}, UnsupportedError, ["dropout"]),
    ({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "continuing_subword_prefix": "##"}},
     UnsupportedError, ["continuing_subword_prefix"]),
    ({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}}, FormatError,
     ["'ab' is not in the vocab"]),
    ({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b c"]}}, FormatError, ["merge 1"]),
    ({"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}}, FormatError, ["model.vocab"]),
    ({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "unk_token": "<unk>"}}, FormatError, ["unk_token"]),
    ({"added_tokens": [{"content": "x"}]}, FormatError, ["added_tokens"]),
    ({"pre_tokenizer": {"type": "Metaspace", "prepend_scheme": "sometimes"}}, FormatError, ["prepend_scheme"]),
])
def test_refused(tmp_path, change, exc, words):
    p = tmp_path / "tokenizer.json"
    p.write_text(json.dumps(_minimal(**change)))
    with pytest.raises(exc) as e:
        HFTokenizer.from_pretrained(str(tmp_path))
    for w in [str(p)] + words:
        assert w in str(e.value), (w, str(e.value))


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing"):
        HFTokenizer.from_pretrained(str(tmp_path / "nothing"))
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        HFTokenizer.from_pretrained(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="nope.json"):
        _C.HFTokenizer.from_file(str(tmp_path / "nope.json"))
    with pytest.raises(FileNotFoundError, match="no tokenizer.json"):
        _C.HFTokenizer.from_file(str(tmp_path))
    (tmp_path / "tokenizer.json").write_text('{"model": {"type": "BPE", ')
    with pytest.raises(FormatError, match="tokenizer.json: not a valid JSON object"):
        HFTokenizer.from_pretrained(str(tmp_path))
    (tmp_path / "tokenizer_config.json").write_text("{bad")
    with pytest.raises(FormatError, match="tokenizer_config.json"):
        load_tokenizer(str(tmp_path))
    bad_vocab = tmp_path / "v.json"
    bad_vocab.write_text('{"a": 0,')
    with pytest.raises(FormatError, match="v.json"):
        GPT2Tokenizer.from_files(str(bad_vocab), GPT2_MERGES)
    bad_merges = tmp_path / "m.txt"
    bad_merges.write_text("#version: 0.2\nĠ t\nx y z\n")
    with pytest.raises(FormatError, match="m.txt: merges line 3: expected two symbols"):
        GPT2Tokenizer.from_files(GPT2_VOCAB, str(bad_merges))
    bad_merges.write_text("#version: 0.2\nĠ t\nqq zz\n")
    with pytest.raises(FormatError, match="m.txt: merges line 3: 'qqzz' is not in the vocabulary"):
        GPT2Tokenizer.from_files(GPT2_VOCAB, str(bad_merges))
    with pytest.raises(FileNotFoundError, match="missing.bpe"):
        GPT2Tokenizer.from_files(GPT2_VOCAB, str(tmp_path / "missing.bpe"))


def test_bad_arguments(gpt2):
    with pytest.raises(ValueError, match="not valid UTF-8 at byte 1"):
        gpt2.core.encode(b"a\xff")
    with pytest.raises(ValueError, match="position 1"):
        gpt2.decode([15496, 50257])
    for ids in ([-1], [2**70]):
        with pytest.raises(ValueError):
            gpt2.decode(ids)
    with pytest.raises(TypeError):
        gpt2.encode(b"bytes")
    with pytest.raises(TypeError):
        gpt2.decode("abc")
    with pytest.raises(ValueError, match="bos token"):
        _C.HFTokenizer(json.dumps(_minimal()), add_bos=True, bos_token="<nope>")
    assert gpt2.core.id_to_token(10**9) is None and gpt2.core.token_to_id("nope nope") is None
    assert gpt2.decode(np.array([15496, 995])) == "Hello world" and gpt2.decode(995) == " world"


# ---- threads and memory ------------------------------------------------------------------------


def test_threads_share_one_tokenizer(hf_dirs, gpt2):
    cases = [(gpt2, [(r["text"], r["ids"]) for r in GPT2_RECORDS if "<|endoftext|>" not in r["text"]])]
    for name in ("llama", "qwen2"):
        recs = _jsonl(f"hf_{name}.jsonl")[1:]
        cases.append((hf(hf_dirs, name), [(r["text"], r["ids"]) for r in recs if "text" in r]))
    errors = []

    def work(seed):
        try:
            rng = random.Random(seed)
            for _ in range(3):
                tok, recs = cases[rng.randrange(len(cases))]
                for text, ids in rng.sample(recs, 60):
                    assert tok.encode(text) == ids
                    assert tok.decode(ids) == tok.decode(list(ids))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_no_leaks(hf_dirs, tmp_path):
    gc.collect()
    start = _C.memory_stats()["live_blocks"]
    for name in ("qwen2", "llama3", "misc_meta", "misc_bytes"):
        tok = HFTokenizer.from_pretrained(hf_dirs[name])
        for text in ("Hello world", "\U0001F600 e\u0301 <|im_start|> [MASK]", "x" * 500, ""):
            tok.decode(tok.encode(text))
        tok(["a", "b c"] * 40, context_length=16)
        with pytest.raises(ValueError):
            tok(["a b c d e f g h"], context_length=4, truncation=False)
        with pytest.raises(ValueError):
            tok.decode([-1])
        del tok
    t = GPT2Tokenizer.from_files(GPT2_VOCAB, GPT2_MERGES)
    t.decode(t.encode("Hello"))
    del t
    for change in ({"normalizer": {"type": "NFKC"}}, {"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}},
                   {"post_processor": {"type": "Custom"}}):
        with pytest.raises((UnsupportedError, FormatError)):
            _C.HFTokenizer(json.dumps(_minimal(**change)))
    with pytest.raises(FormatError):
        _C.HFTokenizer("{")
    gc.collect()
    assert _C.memory_stats()["live_blocks"] == start
