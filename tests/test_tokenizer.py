"""CLIP tokenizer against the openai/CLIP reference fixtures (tests/data/tokenizers, see
tests/data/README.md): every record of clip.jsonl and clip.decode.jsonl, the HF
vocab.json + merges.txt layout, bad inputs, and concurrent use from several threads."""
import gzip
import json
import os
import threading

import numpy as np
import pytest

from mmsuite import _C
from mmsuite.errors import FormatError, UnsupportedError
from mmsuite.tokenizer import CLIPTokenizer, load_tokenizer

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tokenizers")
VOCAB_GZ = os.path.join(DATA, "bpe_simple_vocab_16e6.txt.gz")


def _jsonl(name):
    with open(os.path.join(DATA, name), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


RECORDS = _jsonl("clip.jsonl")
DECODE_RECORDS = _jsonl("clip.decode.jsonl")
SOT, EOT = 49406, 49407


@pytest.fixture(scope="module")
def tok():
    t = CLIPTokenizer.from_pretrained(VOCAB_GZ, use_ftfy=True)
    assert t.use_ftfy
    return t


@pytest.fixture(scope="module")
def tok_noftfy():
    return CLIPTokenizer.from_pretrained(VOCAB_GZ, use_ftfy=False)


def _hf_files(directory, pad_token="<|endoftext|>", reverse_vocab=False):
    """Write HF CLIPTokenizer files for the OpenAI vocabulary, built the way the reference
    builds it (independently of the C loader)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + len(cs) - 188)
    symbols = [chr(c) for c in cs]
    lines = gzip.open(VOCAB_GZ).read().decode("utf-8").split("\n")[1:48894 + 1]
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in lines]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    entries = list(zip(vocab, range(len(vocab))))
    if reverse_vocab:  # ids must come from the file, not from its order
        entries.reverse()
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(dict(entries), f, ensure_ascii=False)
    with open(os.path.join(directory, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(lines) + "\n")
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True,
                   "pad_token": {"content": pad_token, "lstrip": False, "__type": "AddedToken"}}, f)
    with open(os.path.join(directory, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": pad_token,
                   "unk_token": "<|endoftext|>"}, f)
    return directory


def _context_row(ids, n):
    """clip.tokenize's row: SOT + ids + EOT, cut to n with EOT last, padded with 0."""
    row = [SOT] + ids + [EOT]
    if len(row) > n:
        row = row[:n - 1] + [EOT]
    return row + [0] * (n - len(row))


# ---- the reference fixtures --------------------------------------------------------------


def test_fixture_files_complete():
    assert len(RECORDS) == 416
    assert len(DECODE_RECORDS) == 9
    assert sum(r["exceeds_context_77"] for r in RECORDS) > 0
    assert sum(r["ftfy_changes_ids"] for r in RECORDS) > 0


def test_core_properties(tok):
    assert (tok.vocab_size, tok.sot_token_id, tok.eot_token_id) == (49408, SOT, EOT)
    assert tok.core.n_merges == 48894 == _C.CLIP_N_MERGES
    assert (tok.model_max_length, tok.pad_token_id) == (77, 0)
    assert _C.UNICODE_VERSION == "15.0.0"
    assert tok.core.id_to_token(0) == "!" and tok.core.id_to_token(256) == "!</w>"
    assert tok.core.token_to_id("cat</w>") == 2368 and tok.core.token_to_id("no such") is None


@pytest.mark.parametrize("rec", RECORDS, ids=[r["id"] for r in RECORDS])
def test_encode_record(tok, tok_noftfy, rec):
    assert tok.clean(rec["text"]) == rec["normalized"]
    ids = tok.encode(rec["text"], add_special_tokens=False)
    assert ids == rec["ids"]
    assert [tok.core.id_to_token(i) for i in ids] == rec["tokens"]
    assert tok.encode(rec["text"]) == rec["ids_sot_eot"]
    assert tok_noftfy.clean(rec["text"]) == rec["normalized_noftfy"]
    assert tok_noftfy.encode(rec["text"], add_special_tokens=False) == rec["ids_noftfy"]
    assert (rec["ids"] != rec["ids_noftfy"]) == rec["ftfy_changes_ids"]


@pytest.mark.parametrize("rec", RECORDS, ids=[r["id"] for r in RECORDS])
def test_decode_record(tok, rec):
    assert tok.decode(rec["ids"]) == rec["decoded"]
    assert tok.decode(rec["ids_sot_eot"]) == rec["decoded_sot_eot"]
    assert tok.decode(rec["ids_noftfy"]) == rec["decoded_noftfy"]
    plain = [i for i in rec["ids"] if i not in (SOT, EOT)]  # texts may spell special tokens
    expect = rec["decoded"] if plain == rec["ids"] else tok.decode(plain)
    assert tok.decode(rec["ids_sot_eot"], skip_special_tokens=True) == expect
    assert tok.decode(np.asarray(rec["ids_sot_eot"], dtype=np.int64)) == rec["decoded_sot_eot"]


@pytest.mark.parametrize("rec", DECODE_RECORDS, ids=[r["id"] for r in DECODE_RECORDS])
def test_decode_only_record(tok, rec):
    assert tok.decode(rec["ids"]) == rec["decoded"]


def test_context_77_batch(tok):
    out = tok([r["text"] for r in RECORDS])  # one batch: the parallel path
    ids, mask = out["input_ids"], out["attention_mask"]
    assert ids.dtype == np.int64 and mask.dtype == np.int64
    assert ids.shape == mask.shape == (len(RECORDS), 77)
    for i, rec in enumerate(RECORDS):
        assert ids[i].tolist() == rec["context_77"] == _context_row(rec["ids"], 77), rec["id"]
        used = min(len(rec["ids_sot_eot"]), 77)
        assert mask[i].tolist() == [1] * used + [0] * (77 - used), rec["id"]


@pytest.mark.parametrize("rec", RECORDS, ids=[r["id"] for r in RECORDS])
def test_context_77_row(tok, rec):
    assert tok(rec["text"])["input_ids"][0].tolist() == rec["context_77"]
    if rec["exceeds_context_77"]:
        n = len(rec["ids_sot_eot"])
        with pytest.raises(ValueError, match=f"text 0 has {n} tokens, more than the context length 77"):
            tok(rec["text"], truncation=False)
    else:
        assert tok(rec["text"], truncation=False)["input_ids"][0].tolist() == rec["context_77"]


def test_truncation_off_names_first_long_text(tok):
    first = next(i for i, r in enumerate(RECORDS) if r["exceeds_context_77"])
    n = len(RECORDS[first]["ids_sot_eot"])
    with pytest.raises(ValueError, match=f"^text {first} has {n} tokens"):
        tok([r["text"] for r in RECORDS], truncation=False)


def test_padding_longest_and_pad_id(tok):
    out = tok(["a", "a photo of a cat"], padding="longest")
    assert out["input_ids"].tolist() == [[SOT, 320, EOT, 0, 0, 0, 0], [SOT, 320, 1125, 539, 320, 2368, EOT]]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 0, 0, 0, 0], [1] * 7]
    ids, mask = tok.core.encode_batch(["a cat"], context_length=6, pad_id=EOT)
    assert ids.tolist() == [[SOT, 320, 2368, EOT, EOT, EOT]] and mask.tolist() == [[1, 1, 1, 1, 0, 0]]
    ids, mask = tok.core.encode_batch(["a photo of a cat"], context_length=3, add_special=False)
    assert ids.tolist() == [[320, 1125, 539]] and mask.tolist() == [[1, 1, 1]]
    assert tok([], padding="longest")["input_ids"].shape == (0, 0)
    assert tok("a cat", return_tensors=None)["input_ids"][0][:4] == [SOT, 320, 2368, EOT]


def test_regex_ignorecase_quirks(tok):
    # The reference regex runs with IGNORECASE: U+0345 (folds to iota) matches no
    # alternative and is dropped; long s (U+017F) matches 's' in "'s" and the special strings.
    enc = tok.core.encode
    assert tok.decode(enc("a\u0345b")) == "a b "
    assert tok.decode(enc("a\u0345\u0345")) == "a "
    assert tok.decode(enc("it'\u017f")) == "it '\u017f "  # one piece "'ſ", not "'" + "ſ"
    assert tok.decode(enc("IT'S")) == "IT 'S "  # case-insensitive "'s"; lowering is clean()'s job
    ids = enc("<|\u017ftartoftext|>")
    assert SOT not in ids and tok.decode(ids) == "<|\u017ftartoftext|> "
    assert enc("x<|startoftext|>y<|endoftext|>") == enc("x") + [SOT] + enc("y") + [EOT]


# ---- Hugging Face layout -------------------------------------------------------------------


def test_hf_directory_gives_same_ids(tok, tmp_path):
    hf = CLIPTokenizer.from_pretrained(_hf_files(str(tmp_path / "ckpt"), reverse_vocab=True), use_ftfy=True)
    assert (hf.vocab_size, hf.sot_token_id, hf.eot_token_id, hf.core.n_merges) == (49408, SOT, EOT, 48894)
    assert hf.pad_token_id == EOT and hf.model_max_length == 77
    for rec in RECORDS:
        assert hf.encode(rec["text"], add_special_tokens=False) == rec["ids"], rec["id"]
        assert hf.decode(rec["ids_sot_eot"]) == rec["decoded_sot_eot"], rec["id"]
    for i in range(hf.vocab_size):
        assert hf.core.id_to_token(i) == tok.core.id_to_token(i)
    row = hf("a photo of a cat")["input_ids"][0]
    assert row[:7].tolist() == [SOT, 320, 1125, 539, 320, 2368, EOT] and set(row[7:].tolist()) == {EOT}


def test_hf_pad_token_and_loader(tmp_path):
    d = _hf_files(str(tmp_path / "laion"), pad_token="!")
    t = load_tokenizer(d)
    assert isinstance(t, CLIPTokenizer) and t.pad_token_id == 0
    assert isinstance(load_tokenizer(VOCAB_GZ), CLIPTokenizer)
    assert load_tokenizer(os.path.join(d, "vocab.json")).vocab_size == 49408


def test_load_tokenizer_open_clip_dir(tmp_path):
    (tmp_path / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": {"embed_dim": 24, "text_cfg": {"context_length": 12, "vocab_size": 49408}}}))
    t = load_tokenizer(str(tmp_path))
    assert t.model_max_length == 12 and t.pad_token_id == 0
    assert t("a photo of a cat")["input_ids"].tolist() == [[SOT, 320, 1125, 539, 320, 2368, EOT, 0, 0, 0, 0, 0]]
    (tmp_path / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": {"text_cfg": {"hf_tokenizer_name": "xlm-roberta-base"}}}))
    with pytest.raises(UnsupportedError, match="open_clip_config.json"):
        load_tokenizer(str(tmp_path))


def test_load_tokenizer_dispatch_errors(tmp_path):
    """SentencePiece files now dispatch to the SentencePiece loader, which names the bad file."""
    from mmsuite import FormatError
    sp = tmp_path / "sp"
    sp.mkdir()
    (sp / "tokenizer.model").write_bytes(b"\x0a\x00")
    with pytest.raises(FormatError, match="tokenizer.model"):
        load_tokenizer(str(sp))
    other = tmp_path / "llama"
    other.mkdir()
    (other / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer"}))
    with pytest.raises(FileNotFoundError, match="tokenizer.model"):
        load_tokenizer(str(other))
    (tmp_path / "x.model").write_bytes(b"")
    with pytest.raises(FormatError, match="x.model"):
        load_tokenizer(str(tmp_path / "x.model"))
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer"}))
    with pytest.raises(UnsupportedError, match="BertTokenizer"):
        load_tokenizer(str(bert))


# ---- bad inputs -------------------------------------------------------------------------------


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt.gz"):
        CLIPTokenizer.from_pretrained(str(tmp_path / "nope.txt.gz"))
    with pytest.raises(FileNotFoundError, match="nothing"):
        load_tokenizer(str(tmp_path / "nothing"))
    d = tmp_path / "half"
    d.mkdir()
    (d / "vocab.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="merges.txt"):
        CLIPTokenizer.from_pretrained(str(d))
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        _C.BPETokenizer.from_hf_files(str(tmp_path / "vocab.json"), str(d / "vocab.json"))


def test_corrupt_merges(tmp_path):
    d = _hf_files(str(tmp_path / "bad"))
    merges = os.path.join(d, "merges.txt")
    with open(merges, "a", encoding="utf-8") as f:
        f.write("three fields here\n")
    with pytest.raises(FormatError, match="merges line 48896: expected two symbols"):
        CLIPTokenizer.from_pretrained(d)
    with open(merges, "w", encoding="utf-8") as f:
        f.write("#version: 0.2\ni n\nq\u00e9\u00e9 x\n")
    with pytest.raises(FormatError, match="merges line 3: 'q\u00e9\u00e9' is not in the vocabulary"):
        CLIPTokenizer.from_pretrained(d)
    with open(os.path.join(d, "vocab.json"), "w") as f:
        f.write('{"a": 0, "b": ')
    with pytest.raises(FormatError, match="vocab.json"):
        CLIPTokenizer.from_pretrained(d)
    assert issubclass(FormatError, ValueError)
    # OpenAI layout: too few merge lines, a bad line, a corrupt gzip stream.
    with pytest.raises(FormatError, match="expected 48894 merges"):
        _C.BPETokenizer("header\ni n\n", n_merges=48894)
    with pytest.raises(FormatError, match="merges line 2"):
        _C.BPETokenizer("header\ni\n", n_merges=1)
    gz = gzip.open(VOCAB_GZ).read()
    (tmp_path / "trunc.txt.gz").write_bytes(gzip.compress(gz)[:5000])
    with pytest.raises(FormatError, match="trunc.txt.gz"):
        CLIPTokenizer.from_pretrained(str(tmp_path / "trunc.txt.gz"))
    # Not a CLIP vocabulary (no "</w>" symbols): refused, not silently wrong.
    with pytest.raises(FormatError, match="byte symbol"):
        _C.BPETokenizer("#version: 0.2\n", vocab_json=json.dumps({"!": 0, "<|startoftext|>": 1}))


def test_bad_ids_and_arguments(tok):
    for ids in ([49408], [0, -1], [2**70], [1, 2, 10**9]):
        with pytest.raises(ValueError):
            tok.decode(ids)
    with pytest.raises(ValueError, match="position 1"):
        tok.decode([320, 49408])
    with pytest.raises(TypeError):
        tok.decode("abc")
    with pytest.raises(TypeError):
        tok.core.encode(b"bytes")
    with pytest.raises(TypeError):
        tok.core.encode_batch(["ok", 3])
    with pytest.raises(ValueError):
        tok(["a"], context_length=1)
    with pytest.raises(ValueError):
        tok(["a"], padding="do_not_pad")


# ---- threads ------------------------------------------------------------------------------------


def test_thread_safety():
    # A fresh tokenizer, so that its word cache fills while 4 threads race on it.
    t = CLIPTokenizer.from_pretrained(VOCAB_GZ, use_ftfy=False)
    texts = [r["normalized_noftfy"] for r in RECORDS]
    expected = [r["ids_noftfy"] for r in RECORDS]
    start = threading.Barrier(4)
    results, errors = [None] * 4, []

    def work(k):
        try:
            start.wait()
            got = []
            for rep in range(3):
                order = texts if (k + rep) % 2 == 0 else texts[::-1]
                enc = [t.core.encode(s) for s in order]
                got.append(enc if (k + rep) % 2 == 0 else enc[::-1])
                ids, _ = t.core.encode_batch(texts, context_length=77)
                got.append([row.tolist() for row in ids])
            results[k] = got
        except Exception as e:  # reported below: a failing thread must fail the test
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    rows77 = [_context_row(ids, 77) for ids in expected]
    for got in results:
        for i, run in enumerate(got):
            assert run == (expected if i % 2 == 0 else rows77)
