"""SentencePiece tokenizers (csrc/sentencepiece*.c, mmsuite._C.SentencePiece, SiglipTokenizer)
against the sentencepiece library's outputs (tests/data/tokenizers, see tests/data/README.md):
every record of the Mistral BPE fixtures (sentencepiece 0.1.97), the unigram / BPE models
trained by tools/make_sp_fixtures.py (sentencepiece 0.2.3) and transformers' SiglipTokenizer;
batch rows, loading through load_tokenizer, corrupt and mutated model files, threads, leaks."""
import gc
import hashlib
import json
import os
import random
import struct
import threading

import numpy as np
import pytest

from mmsuite import _C
from mmsuite.errors import FormatError, UnsupportedError
from mmsuite.tokenizer import SentencePieceTokenizer, SiglipTokenizer, T5Tokenizer, load_tokenizer

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tokenizers")
MISTRAL = {
    "v1": ("mistral_tokenizer.model.v1", "dadfd56d766715c61d2ef780a525ab43b8e6da4de6865bda3d95fdef5e134055"),
    "v3": ("mistral_instruct_tokenizer_240323.model.v3",
           "9addc8bdce5988448ae81b729336f43a81262160ae8da760674badab9d4c7d33"),
}
TRAINED = ["sp_unigram_nfkc", "sp_unigram_bytefb", "sp_unigram_suffix", "sp_unigram_noescape",
           "sp_unigram_unused", "sp_bpe_small", "sp_bpe_unused"]


def _jsonl(name):
    with open(os.path.join(DATA, name), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _path(name):
    return os.path.join(DATA, name)


_cores = {}


def core(name):
    """One loaded model per file for the whole module (they are immutable)."""
    if name not in _cores:
        _cores[name] = _C.SentencePiece.from_file(_path(name if "." in name else name + ".model"))
    return _cores[name]


def _text(r):
    return r["text"] if "text" in r else bytes.fromhex(r["bytes_hex"])


# ---- Mistral (BPE + byte fallback): every record ---------------------------------------------


@pytest.mark.parametrize("v", ["v1", "v3"])
def test_mistral_assets(v):
    with open(_path(MISTRAL[v][0]), "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == MISTRAL[v][1]
    sp = core(MISTRAL[v][0])
    assert sp.model_type == "bpe" and sp.byte_fallback and not sp.has_charsmap
    assert (sp.unk_id, sp.bos_id, sp.eos_id) == (0, 1, 2)
    assert sp.add_dummy_prefix and not sp.remove_extra_whitespaces and sp.escape_whitespaces
    assert sp.vocab_size == len(sp) == {"v1": 32000, "v3": 32768}[v]
    assert sp.id_to_piece(3 if v == "v1" else 771) == "<0x00>" and sp.piece_type(3 if v == "v1" else 771) == "byte"
    if v == "v3":
        assert sp.piece_type(sp.piece_to_id("[INST]")) == "control"
        assert sp.piece_type(sp.piece_to_id("[REFERENCE_DOC_0]")) == "user_defined"


@pytest.mark.parametrize("v", ["v1", "v3"])
def test_mistral_every_record(v):
    sp = core(MISTRAL[v][0])
    records = _jsonl(f"mistral_{v}.jsonl")
    assert len(records) == 416
    for r in records:
        ids = sp.encode(r["text"])
        assert ids == r["ids"], r["id"]
        assert sp.encode(r["text"], add_bos=True) == r["ids_bos"], r["id"]
        assert [sp.id_to_piece(i) for i in ids] == r["pieces"], r["id"]
        assert sp.decode(r["ids"]) == r["decoded"], r["id"]
        assert sp.decode(r["ids_bos"]) == r["decoded_bos"], r["id"]
        assert any(sp.piece_type(i) == "byte" for i in ids) == r["byte_fallback"], r["id"]
    assert sum(r["byte_fallback"] for r in records) > 20  # the byte path is exercised


@pytest.mark.parametrize("v", ["v1", "v3"])
def test_mistral_decode_records(v):
    sp = core(MISTRAL[v][0])
    records = _jsonl(f"mistral_{v}.decode.jsonl")
    assert len(records) == 13
    for r in records:
        assert [sp.id_to_piece(i) for i in r["ids"]] == r["pieces"], r["id"]
        assert sp.decode(r["ids"]) == r["decoded"], r["id"]


def test_mistral_rules():
    sp = core(MISTRAL["v3"][0])
    assert sp.encode("") == [] and sp.decode([]) == ""
    assert sp.normalize("a  b") == "\u2581a\u2581\u2581b"  # identity normalizer, spaces kept
    # control pieces are not matched in text; user-defined ones are one frozen symbol
    assert sp.piece_to_id("[INST]") not in sp.encode("[INST]")
    assert sp.encode("x[REFERENCE_DOC_0]y").count(sp.piece_to_id("[REFERENCE_DOC_0]")) == 1
    # one U+FFFD per invalid byte piece, and the leading-'▁' rule
    b = [sp.piece_to_id(f"<0x{x:02X}>") for x in (0xF0, 0x9F, 0x98)]
    assert sp.decode(b) == "\ufffd" * 3
    hello = sp.piece_to_id("\u2581Hello")
    assert sp.decode([1, hello]) == "Hello"
    assert sp.decode([sp.piece_to_id("\u2581"), hello]) == " Hello"
    assert sp.decode([sp.piece_to_id("<0x41>"), hello]) == "A Hello"
    assert sp.decode([sp.unk_id]) == " \u2047 "
    # bytes input: ill-formed UTF-8 is one U+FFFD per byte, as the library
    assert sp.normalize(b"a\xffb") == "\u2581a\ufffdb"


# ---- trained unigram / BPE models: every record ------------------------------------------------


@pytest.mark.parametrize("name", TRAINED)
def test_trained_models_every_record(name):
    sp = core(name)
    records = _jsonl(name + ".jsonl")
    meta, records = records[0], records[1:]
    assert (sp.vocab_size, sp.unk_id, sp.bos_id, sp.eos_id, sp.pad_id) == (
        meta["vocab_size"], meta["unk_id"], meta["bos_id"], meta["eos_id"], meta["pad_id"])
    assert sp.byte_fallback == meta["byte_fallback"]
    n_text = n_unk = 0
    for r in records:
        if "normalized" in r:
            n_text += 1
            t = _text(r)
            assert sp.normalize(t) == r["normalized"], (r["id"], t)
            ids = sp.encode(t)
            assert ids == r["ids"], (r["id"], t)
            if "pieces" in r:  # a run of unknown characters keeps its text as its piece
                assert len(r["pieces"]) == len(ids)
                for i, p in zip(ids, r["pieces"]):
                    assert p == sp.id_to_piece(i) or i == sp.unk_id
                n_unk += 1
        assert sp.decode(r["ids"]) == r["decoded"], r["id"]
    assert n_text > 150 and len(records) - n_text == 40
    assert (n_unk > 0) == (not sp.byte_fallback)


def test_trained_model_settings():
    nfkc = core("sp_unigram_nfkc")
    assert nfkc.model_type == "unigram" and nfkc.has_charsmap and nfkc.normalizer_name == "nmt_nfkc"
    assert nfkc.add_dummy_prefix and nfkc.remove_extra_whitespaces and not nfkc.byte_fallback
    assert (nfkc.pad_id, nfkc.eos_id, nfkc.unk_id, nfkc.bos_id) == (0, 1, 2, -1)
    assert nfkc.normalize("  ｆｕｌｌ\u00a0 width  ") == "\u2581full\u2581width"  # NFKC + whitespace rules
    assert nfkc.normalize("\ufb01") == "\u2581fi" and nfkc.normalize("   ") == ""
    suffix = core("sp_unigram_suffix")
    assert suffix.treat_whitespace_as_suffix and not suffix.add_dummy_prefix and not suffix.has_charsmap
    noesc = core("sp_unigram_noescape")
    assert not noesc.escape_whitespaces and noesc.normalize("a b") == " a b"
    bytefb = core("sp_unigram_bytefb")
    assert bytefb.piece_type(bytefb.piece_to_id("<mask>")) == "user_defined"
    assert bytefb.piece_type(bytefb.piece_to_id("<ctrl>")) == "control"
    assert bytefb.piece_to_id("<mask>") in bytefb.encode("x<mask>y")
    assert bytefb.piece_to_id("<ctrl>") not in bytefb.encode("<ctrl>")
    unused = core("sp_unigram_unused")
    unused_ids = {i for i in range(unused.vocab_size) if unused.piece_type(i) == "unused"}
    assert len(unused_ids) > 50
    for r in _jsonl("sp_unigram_unused.jsonl")[1:]:
        if "normalized" in r:
            assert not unused_ids.intersection(r["ids"])  # unused pieces are never produced
    assert unused.score(5) == pytest.approx(core("sp_unigram_bytefb").score(5))
    with pytest.raises(IndexError):
        unused.score(10**6)
    assert unused.id_to_piece(-1) is None and unused.id_to_piece(2**70) is None and unused.piece_type(10**9) is None
    assert unused.piece_to_id("no such piece at all") is None


def test_bpe_unused_pieces_are_resegmented():
    small, unused = core("sp_bpe_small"), core("sp_bpe_unused")
    unused_ids = {i for i in range(unused.vocab_size) if unused.piece_type(i) == "unused"}
    changed = 0
    for r in _jsonl("sp_bpe_unused.jsonl")[1:]:
        if "text" in r:
            assert not unused_ids.intersection(r["ids"])
            changed += small.encode(r["text"]) != r["ids"]
    assert changed > 20  # merges through unused pieces happened and were split back


# ---- batch rows ----------------------------------------------------------------------------------


def _row(ids, L, bos=None, eos=None, pad=0):
    row = ([bos] if bos is not None else []) + ids + ([eos] if eos is not None else [])
    n = len(row)
    if n > L:
        row = row[:L]
        if eos is not None:
            row[-1] = eos
    return row + [pad] * (L - len(row)), min(n, L), n


@pytest.mark.parametrize("name,bos,eos", [("mistral_tokenizer.model.v1", True, False),
                                          ("mistral_tokenizer.model.v1", True, True),
                                          ("sp_unigram_nfkc", False, True), ("sp_bpe_small", False, False)])
def test_encode_batch_rows(name, bos, eos):
    sp = core(name)
    texts = [r["text"] for r in _jsonl("sp_unigram_nfkc.jsonl")[1:] if "text" in r]
    L = 24
    ids, mask, lengths = sp.encode_batch(texts, L, True, 7, bos, eos, return_lengths=True)
    assert ids.shape == mask.shape == (len(texts), L) and ids.dtype == mask.dtype == np.int64
    n_cut = 0
    for i, t in enumerate(texts):
        row, used, n = _row(sp.encode(t), L, sp.bos_id if bos else None, sp.eos_id if eos else None, 7)
        assert ids[i].tolist() == row, t
        assert mask[i].tolist() == [1] * used + [0] * (L - used)
        assert lengths[i] == n
        n_cut += n > L
    assert n_cut > 10
    ids2, mask2 = sp.encode_batch(texts, L, pad_id=7, add_bos=bos, add_eos=eos)  # without lengths
    assert (ids2 == ids).all() and (mask2 == mask).all()


def test_encode_batch_errors():
    sp = core("sp_unigram_nfkc")
    with pytest.raises(ValueError, match="text 1 has"):
        sp.encode_batch(["a", "word " * 80, "b"], 16, truncate=False)
    with pytest.raises(ValueError, match="BOS"):
        sp.encode_batch(["a"], 8, add_bos=True)  # T5 layout: no BOS piece
    with pytest.raises(ValueError, match="BOS"):
        sp.encode("a", add_bos=True)
    with pytest.raises(ValueError, match="context_length"):
        core("mistral_tokenizer.model.v1").encode_batch(["a"], 1, add_bos=True, add_eos=True)
    with pytest.raises(TypeError):
        sp.encode_batch("not a list", 8)
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        sp.encode_batch(["a", 3], 8)
    ids, mask = sp.encode_batch([], 8)
    assert ids.shape == (0, 8)
    with pytest.raises(ValueError, match="position 1"):
        sp.decode([0, sp.vocab_size])
    with pytest.raises(TypeError):
        sp.decode("abc")


# ---- SigLIP ------------------------------------------------------------------------------------------


def _siglip_dir(tmp_path, config=True):
    d = tmp_path / "siglip"
    d.mkdir()
    with open(_path("sp_unigram_nfkc.model"), "rb") as f:
        (d / "spiece.model").write_bytes(f.read())
    if config:
        (d / "tokenizer_config.json").write_text(json.dumps({
            "tokenizer_class": "SiglipTokenizer", "model_max_length": 64, "do_lower_case": True,
            "eos_token": "</s>", "pad_token": "</s>", "unk_token": "<unk>",
            "added_tokens_decoder": {"1": {"content": "</s>", "lstrip": True, "rstrip": True, "special": True},
                                     "2": {"content": "<unk>", "lstrip": True, "rstrip": True, "special": True}}}))
    else:
        (d / "config.json").write_text(json.dumps({"model_type": "siglip"}))
    return str(d)


@pytest.mark.parametrize("config", [True, False])
def test_siglip_every_record(tmp_path, config):
    records = _jsonl("sp_siglip.jsonl")
    cfg, records = records[0], records[1:]
    tok = load_tokenizer(_siglip_dir(tmp_path, config))
    assert isinstance(tok, SiglipTokenizer)
    assert (tok.pad_token_id, tok.eos_token_id, tok.model_max_length) == (
        cfg["pad_token_id"], cfg["eos_token_id"], cfg["model_max_length"])
    out = tok([r["text"] for r in records])
    assert out["input_ids"].shape == (len(records), 64) and out["input_ids"].dtype == np.int64
    for i, r in enumerate(records):
        n = len(r["input_ids"])
        assert out["input_ids"][i].tolist() == r["input_ids"] + [cfg["pad_token_id"]] * (64 - n), r["text"]
        assert out["attention_mask"][i].tolist() == [1] * n + [0] * (64 - n)
        assert tok.encode(r["text"]) == r.get("input_ids_untruncated", r["input_ids"]), r["text"]
    assert sum("input_ids_untruncated" in r for r in records) >= 3  # truncation happened
    assert sum("</s>" in r["text"] or "<unk>" in r["text"] for r in records) >= 4  # special-token path


def test_siglip_call_options(tmp_path):
    tok = load_tokenizer(_siglip_dir(tmp_path))
    texts = ["A photo of a cat.", "a dog </s>", "word " * 100]
    full = [tok.encode(t) for t in texts]
    longest = tok(texts[:2], padding="longest", return_tensors=None)
    L = max(len(f) for f in full[:2])
    assert longest["input_ids"] == [f + [tok.pad_token_id] * (L - len(f)) for f in full[:2]]
    assert longest["attention_mask"] == [[1] * len(f) + [0] * (L - len(f)) for f in full[:2]]
    with pytest.raises(ValueError, match="text 2 has"):
        tok(texts, truncation=False)
    short = tok(texts, context_length=8)
    assert short["input_ids"][2].tolist() == full[2][:7] + [tok.eos_token_id]
    assert tok.canonicalize_text("  Hello,   WORLD!! ") == "hello world"
    assert tok.decode(tok.encode("a photo of a cat")) == "a photo of a cat"
    assert "SiglipTokenizer" in repr(tok)


def test_load_tokenizer_sentencepiece_kinds(tmp_path):
    llama = tmp_path / "llama"
    llama.mkdir()
    with open(_path(MISTRAL["v1"][0]), "rb") as f:
        (llama / "tokenizer.model").write_bytes(f.read())
    (llama / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizerFast"}))
    tok = load_tokenizer(str(llama))
    assert type(tok) is SentencePieceTokenizer and tok.add_bos and not tok.add_eos
    r = _jsonl("mistral_v1.jsonl")[120]
    assert tok.encode(r["text"]) == r["ids_bos"] and tok.decode(r["ids_bos"]) == r["decoded_bos"]
    out = tok([r["text"], "hi"], context_length=10)
    assert out["input_ids"][0].tolist() == _row(r["ids"], 10, 1, None, 0)[0]

    t5 = tmp_path / "t5"
    t5.mkdir()
    with open(_path("sp_unigram_nfkc.model"), "rb") as f:
        (t5 / "spiece.model").write_bytes(f.read())
    (t5 / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer", "model_max_length": 32}))
    tok = load_tokenizer(str(t5))
    assert type(tok) is T5Tokenizer and tok.add_eos and tok.model_max_length == 32  # tests/test_tokenizer_t5.py
    assert tok.encode("a cat") == core("sp_unigram_nfkc").encode("a cat") + [1]
    assert tok(["a cat"])["input_ids"].shape == (1, 32)

    bare = load_tokenizer(_path("sp_bpe_small.model"))
    assert type(bare) is SentencePieceTokenizer and not bare.add_bos and not bare.add_eos
    assert bare.encode("hello world") == core("sp_bpe_small").encode("hello world")
    with pytest.raises(ValueError, match="context_length"):
        bare(["x"])  # no model_max_length known
    assert load_tokenizer(_path(MISTRAL["v3"][0])).vocab_size == 32768

    other = tmp_path / "other"
    other.mkdir()
    (other / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer"}))
    with pytest.raises(UnsupportedError, match="BertTokenizer"):
        load_tokenizer(str(other))
    nomodel = tmp_path / "nomodel"
    nomodel.mkdir()
    (nomodel / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "SiglipTokenizer"}))
    with pytest.raises(FileNotFoundError, match="spiece.model"):
        load_tokenizer(str(nomodel))


# ---- bad model files ------------------------------------------------------------------------------


def _varint(x):
    out = bytearray()
    while True:
        b = x & 0x7F
        x >>= 7
        out.append(b | (0x80 if x else 0))
        if not x:
            return bytes(out)


def _field(num, payload):
    if isinstance(payload, int):
        return _varint(num << 3) + _varint(payload)
    if isinstance(payload, float):
        return _varint(num << 3 | 5) + struct.pack("<f", payload)
    if isinstance(payload, str):
        payload = payload.encode()
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _piece(text, score=0.0, type_=1):
    return _field(1, _field(1, text) + _field(2, score) + _field(3, type_))


def _model(pieces, trainer=b"", normalizer=b""):
    return b"".join(pieces) + _field(2, trainer) + _field(3, normalizer)


BASIC = [_piece("<unk>", 0.0, 2), _piece("<s>", 0.0, 3), _piece("</s>", 0.0, 3), _piece("\u2581", -1.0),
         _piece("a", -2.0), _piece("b", -2.0), _piece("ab", -1.5), _piece("\u2581ab", -1.0)]


def test_handmade_models():
    uni = _C.SentencePiece(_model(BASIC))  # unigram by default
    assert uni.model_type == "unigram" and uni.encode("ab ab") == [7, 7]
    assert uni.encode("abc") == [7, 0]  # 'c' -> unk
    assert uni.encode("cc") == [3, 0]  # a run of unknowns is one unk
    bpe = _C.SentencePiece(_model(BASIC, trainer=_field(3, 2)))
    assert bpe.model_type == "bpe" and bpe.encode("ab") == [7]
    # equal scores: the leftmost pair merges first ("aaa" -> "aa" + "a")
    ties = _C.SentencePiece(_model(BASIC + [_piece("aa", -1.0)], trainer=_field(3, 2),
                                   normalizer=_field(3, 0)))  # no dummy prefix
    assert ties.encode("aaa") == [8, 4]
    # a user-defined piece is a frozen symbol in BPE; in unigram it scores
    # len(bytes) * max_score - 0.1 (max_score -0.01 here, from "zz")
    ud = BASIC + [_piece("b\u2581a", 0.0, 4), _piece("zz", -0.01)]
    assert _C.SentencePiece(_model(ud, trainer=_field(3, 2))).encode("ab ab") == [3, 4, 8, 5]
    assert _C.SentencePiece(_model(ud)).encode("b a") == [3, 8]
    assert _C.SentencePiece(_model(ud)).encode("ab ab") == [7, 7]
    # unknown fields and wire types are skipped, a repeated spec is merged
    extra = _field(99, "ignored") + _field(98, 5) + _varint(97 << 3 | 1) + b"\0" * 8
    m = _C.SentencePiece(_model(BASIC, trainer=extra + _field(3, 2)) + _field(2, _field(35, 0)), name="x")
    assert m.model_type == "bpe"
    # unk_surface and special ids come from the trainer spec
    s = _C.SentencePiece(_model(BASIC, trainer=_field(44, "<?>") + _field(42, 5)))
    assert s.decode([0, 4]) == "<?>a" and s.eos_id == 2


@pytest.mark.parametrize("data,match,exc", [
    (b"", "no pieces", FormatError),
    (b"\x0a\x00", "empty", FormatError),
    (b"\x0a\x05\x0a\x01", "malformed", FormatError),           # truncated piece
    (b"\x0f", "malformed", FormatError),                        # wire type 7
    (b"\x08" + b"\xff" * 11, "malformed", FormatError),         # varint too long
    (_model(BASIC[1:]), "unk is not defined", FormatError),
    (_model(BASIC + [_piece("<unk>", 0.0, 2)]), "already defined", FormatError),
    (_model(BASIC + [_piece("ab", 0.0)]), "already defined", FormatError),
    (_model(BASIC + [_piece("<0x41>", 0.0, 6)]), "byte_fallback is false", FormatError),
    (_model(BASIC + [_piece("<0x41>", 0.0, 6)], trainer=_field(35, 1)), "0x00", FormatError),
    (_model(BASIC + [_piece("<0xzz>", 0.0, 6)], trainer=_field(35, 1)), "invalid", FormatError),
    (_model(BASIC, trainer=_field(3, 3)), "WORD", UnsupportedError),
    (_model(BASIC, normalizer=_field(2, b"\x01\x02\x03")), "charsmap", FormatError),
    (_model(BASIC, normalizer=_field(2, b"\xff\x00\x00\x00abcd")), "charsmap", FormatError),
])
def test_bad_models(data, match, exc):
    with pytest.raises(exc, match=match):
        _C.SentencePiece(data, name="bad.model")
    with pytest.raises(exc, match="bad.model"):
        _C.SentencePiece(data, name="bad.model")


def _charsmap(value, strings):
    """A darts-clone double array mapping the byte 'a' to the string at `value`."""
    units = [0] * 98
    units[0] = 1 << 10                                  # root: offset 1 -> child of 'a' at 1 ^ 0x61 = 96
    units[96] = (1 << 10) | (1 << 8) | 0x61            # label 'a', has a leaf at 96 ^ 1 = 97
    units[97] = (1 << 31) | value                      # the leaf: offset of the replacement
    blob = b"".join(struct.pack("<I", u) for u in units)
    return struct.pack("<I", len(blob)) + blob + strings


def test_handmade_charsmap():
    sp = _C.SentencePiece(_model(BASIC, normalizer=_field(2, _charsmap(0, b"b\0"))), name="cm.model")
    assert sp.has_charsmap and sp.normalize("a a") == "\u2581b\u2581b" and sp.normalize("ba") == "\u2581bb"
    assert sp.encode("a") == [3, 5]
    bad = _C.SentencePiece(_model(BASIC, normalizer=_field(2, _charsmap(1000, b"b\0"))), name="cm.model")
    assert bad.normalize("b") == "\u2581b"  # rules that do not match are never read
    with pytest.raises(FormatError, match="cm.model: precompiled_charsmap"):
        bad.encode("xa")


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.model"):
        _C.SentencePiece.from_file(str(tmp_path / "nope.model"))
    p = tmp_path / "trunc.model"
    with open(_path("sp_bpe_small.model"), "rb") as f:
        p.write_bytes(f.read()[:1001])
    with pytest.raises(FormatError, match="trunc.model"):
        _C.SentencePiece.from_file(str(p))
    with pytest.raises(FormatError, match="trunc.model"):
        load_tokenizer(str(p))
    d = tmp_path / "dir"
    d.mkdir()
    (d / "tokenizer.model").write_bytes(b"\x0a\x00")
    with pytest.raises(FormatError, match="tokenizer.model"):
        load_tokenizer(str(d))


def _exercise(sp):
    try:
        for t in ("Hello world", "  a\u00a0b  ", "\u00e9\U0001F600x", "<unk></s>", ""):
            ids = sp.encode(t)
            assert all(0 <= i < sp.vocab_size for i in ids)
            sp.decode(ids)
            sp.normalize(t)
        sp.decode(list(range(min(sp.vocab_size, 300))))
    except FormatError as e:  # a mutated charsmap can point outside its strings
        assert "fuzz.model" in str(e) and "charsmap" in str(e)


def test_fuzz_truncated_and_mutated_models():
    """Truncated / mutated model bytes load or raise FormatError / UnsupportedError; what loads
    encodes and decodes without crashing (the charsmap is mutated too)."""
    rng = random.Random(1234)
    outcomes = {"ok": 0, "error": 0}

    def attempt(data):
        try:
            sp = _C.SentencePiece(data, name="fuzz.model")
        except (FormatError, UnsupportedError) as e:
            assert "fuzz.model" in str(e)
            outcomes["error"] += 1
            return
        outcomes["ok"] += 1
        _exercise(sp)

    for name in ("sp_bpe_small.model", "sp_unigram_suffix.model"):
        with open(_path(name), "rb") as f:
            data = f.read()
        for cut in sorted(rng.sample(range(len(data)), 120)) + [0, 1, 2, len(data) - 1]:
            attempt(data[:cut])
        for _ in range(150):
            b = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            attempt(bytes(b))
    with open(_path("sp_unigram_nfkc.model"), "rb") as f:
        data = f.read()
    start = data.index(b"nmt_nfkc") + 10  # inside the normalizer spec: the charsmap blob
    for _ in range(60):
        b = bytearray(data)
        for _ in range(rng.randint(1, 16)):
            b[start + rng.randrange(len(data) - start)] = rng.randrange(256)
        attempt(bytes(b))
    assert outcomes["ok"] > 50 and outcomes["error"] > 50


# ---- threads and memory ---------------------------------------------------------------------------


def test_threads_share_one_tokenizer():
    cases = []
    for name, file in (("sp_unigram_nfkc", "sp_unigram_nfkc.jsonl"), (MISTRAL["v3"][0], "mistral_v3.jsonl")):
        sp = core(name)
        recs = [r for r in _jsonl(file) if "text" in r and "ids" in r]
        recs = [r for r in recs if r["id"] != "model"][:150]
        cases.append((sp, recs))
    errors = []

    def work(seed):
        try:
            rng = random.Random(seed)
            for _ in range(3):
                sp, recs = cases[rng.randrange(2)]
                for r in rng.sample(recs, 60):
                    assert sp.encode(r["text"]) == r["ids"]
                    assert sp.decode(r["ids"]) == r["decoded"]
                batch = [r["text"] for r in recs[:80]]
                ids, _ = sp.encode_batch(batch, 48)
                assert ids[5, :3].tolist() == (sp.encode(batch[5]) + [0, 0, 0])[:3]
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_no_leaks(tmp_path):
    gc.collect()
    start = _C.memory_stats()["live_blocks"]
    for name in ("sp_unigram_nfkc.model", "sp_bpe_unused.model", MISTRAL["v3"][0]):
        sp = _C.SentencePiece.from_file(_path(name))
        texts = ["Hello world", "\U0001F600 \u00e9", "x" * 500, ""]
        for t in texts:
            sp.decode(sp.encode(t))
            sp.normalize(t)
        sp.encode_batch(texts * 20, 16)
        with pytest.raises(ValueError):
            sp.encode_batch(texts, 4, truncate=False)
        with pytest.raises(ValueError):
            sp.decode([-1])
        del sp
    for data in (b"\x0a\x00", _model(BASIC[1:]), _model(BASIC, normalizer=_field(2, b"\x01\x02\x03"))):
        with pytest.raises(FormatError):
            _C.SentencePiece(data)
    tok = load_tokenizer(_siglip_dir(tmp_path))
    tok(["a photo </s> of a cat", "dog"])
    del tok
    gc.collect()
    assert _C.memory_stats()["live_blocks"] == start
