"""T5 / Flan-T5 tokenizer (mmsuite/tokenizer_t5.py) against transformers 5's T5Tokenizer
(= T5TokenizerFast): every record of tests/data/tokenizers/t5.jsonl (tools/make_t5_tokenizer_fixtures.py,
see tests/data/README.md) on the two stored directories and the variants rebuilt from them;
sentinel ids, load_tokenizer routing, error cases, threads."""
import json
import os
import shutil
import threading

import numpy as np
import pytest

from mmsuite.errors import FormatError, UnsupportedError
from mmsuite.tokenizer import SentencePieceTokenizer, T5Tokenizer, load_tokenizer

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tokenizers")
N_PIECES = 800  # sp_unigram_nfkc.model


def _records():
    with open(os.path.join(DATA, "t5.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


RECORDS = _records()
META = RECORDS[0]
NAMES = META["dirs"] + list(META["variants"])


def _make_variant(spec, out_dir):
    """tools/make_t5_tokenizer_fixtures.py make_variant: copy `keep`, write / patch JSON files."""
    base = os.path.join(DATA, spec["base"])
    os.makedirs(out_dir, exist_ok=True)
    for name in spec.get("keep", []):
        shutil.copyfile(os.path.join(base, name), os.path.join(out_dir, name))
    for name, content in spec.get("write", {}).items():
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            json.dump(content, f)
    for name, updates in spec.get("copy_set", {}).items():
        with open(os.path.join(base, name), encoding="utf-8") as f:
            obj = json.load(f)
        for k, v in updates.items():
            if v is None:
                obj.pop(k, None)
            elif k == "added_tokens_decoder":
                obj.setdefault(k, {}).update(v)
            else:
                obj[k] = v
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            json.dump(obj, f)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("t5_variants")
    out = {name: os.path.join(DATA, name) for name in META["dirs"]}
    for name, spec in META["variants"].items():
        out[name] = str(tmp / name)
        _make_variant(spec, out[name])
    return out


@pytest.fixture(scope="module")
def toks(dirs):
    return {name: load_tokenizer(path) for name, path in dirs.items()}


def _of(name, kind):
    return [r for r in RECORDS[1:] if r["dir"] == name and r["id"].split("/")[1].startswith(kind)]


def _check_all(pairs, what):
    bad = [(rid, field, want, got) for rid, field, want, got in pairs if want != got]
    assert not bad, f"{len(bad)} {what} mismatches, first: {bad[:3]}"


# ---- every record --------------------------------------------------------------------------------


def test_fixture_files():
    assert META["reference"]["transformers"].startswith("5.")
    for name in META["dirs"]:
        files = sorted(os.listdir(os.path.join(DATA, name)))
        assert "spiece.model" in files and "tokenizer_config.json" in files
        assert all(os.path.getsize(os.path.join(DATA, name, f)) < 1 << 20 for f in files)
    counts = {n: len(_of(n, "text")) for n in NAMES}
    assert counts["t5"] > 600 and counts["t5_image"] == counts["t5"] and all(counts.values())


@pytest.mark.parametrize("name", NAMES)
def test_meta(name, toks):
    tok = toks[name]
    (m,) = _of(name, "meta")
    assert type(tok) is T5Tokenizer and isinstance(tok, SentencePieceTokenizer)
    assert (tok.vocab_size, len(tok)) == (m["vocab_size"], m["len"])
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id, tok.bos_token_id) == (
        m["pad_token_id"], m["eos_token_id"], m["unk_token_id"], m["bos_token_id"])
    assert tok.clean_up_tokenization_spaces == m["clean_up_tokenization_spaces"]


@pytest.mark.parametrize("name", NAMES)
def test_encode_records(name, toks):
    tok = toks[name]
    pairs = []
    for r in _of(name, "text"):
        pairs.append((r["id"], "ids", r["ids"], tok.encode(r["text"])))
        pairs.append((r["id"], "ids_raw", r["ids_raw"], tok.encode(r["text"], add_special_tokens=False)))
    _check_all(pairs, "encode")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", ["text", "decode"])
def test_decode_records(name, kind, toks):
    tok = toks[name]
    pairs = []
    for r in _of(name, kind):
        ids = r["ids"]
        pairs.append((r["id"], "decoded", r["decoded"], tok.decode(ids)))
        pairs.append((r["id"], "decoded_skip", r["decoded_skip"], tok.decode(ids, skip_special_tokens=True)))
        pairs.append((r["id"], "decoded_clean", r.get("decoded_clean", r["decoded"]),
                      tok.decode(ids, clean_up_tokenization_spaces=True)))
        pairs.append((r["id"], "decoded np", r["decoded"], tok.decode(np.asarray(ids, dtype=np.int64))))
    _check_all(pairs, "decode")


@pytest.mark.parametrize("name", NAMES)
def test_batch_records(name, toks):
    tok = toks[name]
    for r in _of(name, "batch"):
        out = tok(r["texts"], context_length=r["max_length"], padding=r["padding"], truncation=r["truncation"],
                  return_tensors=None)
        assert out == {"input_ids": r["input_ids"], "attention_mask": r["attention_mask"]}, r["id"]
        arr = tok(r["texts"], context_length=r["max_length"], padding=r["padding"], truncation=r["truncation"])
        assert arr["input_ids"].dtype == np.int64 and arr["input_ids"].tolist() == r["input_ids"], r["id"]
        assert arr["attention_mask"].tolist() == r["attention_mask"], r["id"]


def test_hf4_disagreements_are_recorded():
    """transformers 4's slow class disagrees with the fast one (decode spacing around specials,
    no second '</s>', sentencepiece's normalizer); the records keep those outputs next to the
    reference, which mmsuite matches (the fast tokenizer's)."""
    slow = [r for r in RECORDS[1:] if "hf4_slow" in r]
    fast = [r for r in RECORDS[1:] if "hf4_fast" in r]
    assert slow and len(fast) < len(slow)
    (eos,) = [r for r in _of("t5", "text") if r["text"] == "a cat </s>"]
    assert eos["ids"][-2:] == [1, 1] and eos["hf4_slow"]["ids"][-2:] != [1, 1]


# ---- vocabulary --------------------------------------------------------------------------------


def test_sentinel_ids(toks):
    tok = toks["t5_image"]
    for i in range(100):
        sid = N_PIECES + 100 - 1 - i
        assert tok.token_to_id(f"<extra_id_{i}>") == sid and tok.id_to_token(sid) == f"<extra_id_{i}>"
        assert tok.encode(f"<extra_id_{i}>") == [sid, 1]
    assert tok.token_to_id("<image>") == 900
    assert tok.encode("<image><image>a", add_special_tokens=False)[:2] == [900, 900]
    assert tok.token_to_id("<extra_id_100>") is None and len(toks["t5"]) == 900 and len(tok) == 901
    assert tok.tokenize("a cat <extra_id_0>") == ["\u2581a", "\u2581cat", "<extra_id_0>"]


def test_extra_ids_option(tmp_path):
    d = tmp_path / "t5"
    d.mkdir()
    shutil.copyfile(os.path.join(DATA, "t5", "spiece.model"), d / "spiece.model")
    (d / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5TokenizerFast", "extra_ids": 3}))
    tok = load_tokenizer(str(d))
    assert type(tok) is T5Tokenizer and tok.vocab_size == len(tok) == N_PIECES + 3
    assert [tok.token_to_id(f"<extra_id_{i}>") for i in range(3)] == [802, 801, 800]
    assert T5Tokenizer.from_pretrained(str(d), extra_ids=0).vocab_size == N_PIECES
    bare = T5Tokenizer.from_pretrained(str(d / "spiece.model"))  # a model file alone: 100 sentinels
    assert bare.vocab_size == N_PIECES + 100 and bare.encode("a <extra_id_0>") == [5, 899, 1]


# ---- load_tokenizer ------------------------------------------------------------------------------


def test_load_tokenizer_routes_t5(tmp_path):
    assert type(load_tokenizer(os.path.join(DATA, "t5_image"))) is T5Tokenizer  # tokenizer.json is not read
    assert load_tokenizer(os.path.join(DATA, "t5_image")).model_max_length == 512
    want = load_tokenizer(os.path.join(DATA, "t5_image")).encode("<image> Question: what is it? Answer:")
    # A BLIP-2 Flan-T5 directory: no tokenizer_class, config.json with a T5 text_config.
    blip2 = tmp_path / "blip2"
    shutil.copytree(os.path.join(DATA, "t5_image"), blip2)
    config = json.loads((blip2 / "tokenizer_config.json").read_text())
    del config["tokenizer_class"]
    (blip2 / "tokenizer_config.json").write_text(json.dumps(config))
    (blip2 / "config.json").write_text(json.dumps({"model_type": "blip-2", "text_config": {"model_type": "t5"}}))
    tok = load_tokenizer(str(blip2))
    assert type(tok) is T5Tokenizer and tok.encode("<image> Question: what is it? Answer:") == want
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copyfile(os.path.join(DATA, "t5", "spiece.model"), plain / "spiece.model")
    (plain / "config.json").write_text(json.dumps({"model_type": "t5"}))
    assert type(load_tokenizer(str(plain))) is T5Tokenizer
    (plain / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert type(load_tokenizer(str(plain))) is SentencePieceTokenizer  # sentencepiece semantics


def test_missing_spiece_model(tmp_path):
    only_json = tmp_path / "only_json"
    only_json.mkdir()
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(os.path.join(DATA, "t5_image", f), only_json / f)
    with pytest.raises(FileNotFoundError, match="spiece.model") as e:
        load_tokenizer(str(only_json))
    assert "tokenizer.json" in str(e.value) and e.value.filename.endswith("spiece.model")
    with pytest.raises(FileNotFoundError, match="spiece.model"):
        T5Tokenizer.from_pretrained(str(only_json))
    os.remove(only_json / "tokenizer_config.json")  # named by config.json only
    (only_json / "config.json").write_text(json.dumps({"model_type": "blip-2", "text_config": {"model_type": "t5"}}))
    with pytest.raises(FileNotFoundError, match="spiece.model"):
        load_tokenizer(str(only_json))
    with pytest.raises(FileNotFoundError):
        T5Tokenizer.from_pretrained(str(tmp_path / "nowhere"))


# ---- errors --------------------------------------------------------------------------------------


def test_decode_bad_ids(toks):
    tok = toks["t5"]
    assert tok.decode([899, 5]) == "<extra_id_0> a"
    for bad in ([900], [-1], [10**12], [5, 900, 5]):
        with pytest.raises(ValueError, match="not in the vocabulary"):
            tok.decode(bad)
    with pytest.raises(ValueError, match="901"):
        toks["t5_image"].decode([901])
    for bad in ([1.5], ["a"], [None]):
        with pytest.raises(TypeError):
            tok.decode(bad)
    with pytest.raises(ValueError):
        tok.id_to_token(900)


def test_call_and_encode_errors(toks):
    tok = toks["t5"]  # no model_max_length
    with pytest.raises(TypeError):
        tok.encode(None)
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        tok(["a", 3], context_length=8)
    with pytest.raises(ValueError, match="context_length"):
        tok(["a"])  # max_length padding needs a length
    assert tok(["a", "a b"], padding="longest", return_tensors=None)["input_ids"] == [[5, 1, 0], [5, 54, 1]]
    with pytest.raises(ValueError, match="truncation"):
        tok(["a b c d e f"], context_length=4, truncation=False)
    with pytest.raises(ValueError, match=">= 1"):
        tok(["a"], context_length=0)
    with pytest.raises(ValueError, match="padding"):
        tok(["a"], context_length=4, padding="do_not_pad")
    assert tok("a", context_length=4)["input_ids"].shape == (1, 4)


def _copy_t5(tmp_path, name="bad"):
    d = tmp_path / name
    shutil.copytree(os.path.join(DATA, "t5"), d)
    return d


def _patch_config(d, **updates):
    config = json.loads((d / "tokenizer_config.json").read_text())
    config.update(updates)
    (d / "tokenizer_config.json").write_text(json.dumps(config))


def test_bad_files(tmp_path):
    d = _copy_t5(tmp_path)
    _patch_config(d, extra_ids=50)  # additional_special_tokens lists 100 sentinels
    with pytest.raises(FormatError, match="extra_ids"):
        T5Tokenizer.from_pretrained(str(d))
    d = _copy_t5(tmp_path, "badkey")
    _patch_config(d, added_tokens_decoder={"x": {"content": "<a>"}})
    with pytest.raises(FormatError, match="added_tokens_decoder"):
        T5Tokenizer.from_pretrained(str(d))
    d = _copy_t5(tmp_path, "moved")
    _patch_config(d, added_tokens_decoder={"5": {"content": "<extra_id_0>", "special": True}})
    with pytest.raises(FormatError, match="<extra_id_0>"):
        T5Tokenizer.from_pretrained(str(d))
    d = _copy_t5(tmp_path, "eos")
    _patch_config(d, eos_token="<eos>")
    with pytest.raises(FormatError, match="eos_token"):
        T5Tokenizer.from_pretrained(str(d))
    d = _copy_t5(tmp_path, "bpe")
    shutil.copyfile(os.path.join(DATA, "sp_bpe_small.model"), d / "spiece.model")
    with pytest.raises(UnsupportedError, match="unigram"):
        T5Tokenizer.from_pretrained(str(d))
    d = _copy_t5(tmp_path, "json")
    (d / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(FormatError):
        T5Tokenizer.from_pretrained(str(d))


# ---- threads -------------------------------------------------------------------------------------


def test_threads(toks):
    tok = toks["t5_image"]
    texts = [r["text"] for r in _of("t5_image", "text")]
    want = [r["ids"] for r in _of("t5_image", "text")]
    results, errors = [None] * 4, []

    def work(k):
        try:
            results[k] = [tok.encode(t) for t in texts[k % 2::2]]
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(results[k] == want[k % 2::2] for k in range(4))


# ---- the C tokenizer (mmsuite._C.T5Tokenizer, csrc/tokenizer_t5.h) --------------------------------


def _model_bytes(name="t5"):
    with open(os.path.join(DATA, name, "spiece.model"), "rb") as f:
        return f.read()


def test_c_binding_basics(toks):
    from mmsuite import _C
    tok = toks["t5_image"]
    c = tok._c
    assert (c.n_pieces, c.vocab_size, c.extra_ids, c.eos_id, c.unk_id, c.has_charsmap) == (N_PIECES, 900, 100, 1, 2,
                                                                                            True)
    assert c.normalize("\ufb01\u0301 \uff21") == "fi A"  # shortest charsmap prefix of the cluster, then NFKC
    text = "<image> Question: ＜/s＞ what is it? Answer:"
    assert c.encode(text) == tok.encode(text) and c.encode(text, add_eos=False) == tok.encode(text)[:-1]
    assert c.encode(text.encode("utf-8")) == c.encode(text)  # bytes are taken as UTF-8
    # Defaults: eos_id -1 is the piece "</s>", no added tokens (so "</s>" is segmented by the model).
    bare = _C.T5Tokenizer(_model_bytes())
    assert bare.eos_id == 1 and bare.vocab_size == 900 and bare.encode("a") == [5, 1]
    assert bare.encode("</s>", add_eos=False) == [3, 1]  # "▁" "</s>": the Viterbi sees control pieces too
    # A Unicode 15 spacing mark ends a cluster transformers' segmenter builds (Unicode 14 data would
    # have normalized "e\u0301" as one cluster).
    assert tok.encode("ze\u0301\u0cf3") == [3, 210, 32, 2, 1]


def test_c_binding_batch(toks):
    tok = toks["t5_flags"]
    texts = [r["text"] for r in _of("t5_flags", "text")]
    assert len(texts) >= 32  # the parallel path
    want = [tok.encode(t) for t in texts]
    ids, mask, lengths = tok._c.encode_batch(texts, 16, True, 0, True, return_lengths=True)
    assert ids.shape == mask.shape == (len(texts), 16) and lengths.tolist() == [len(w) for w in want]
    for row, m, w in zip(ids.tolist(), mask.tolist(), want):
        n = min(len(w), 16)
        assert row[:n] == w[:n - 1] + [1] and row[n:] == [0] * (16 - n) and m == [1] * n + [0] * (16 - n)
    with pytest.raises(ValueError, match="text 0 has"):
        tok._c.encode_batch(["a b c d e f g"], 4, False)
    ids, mask = tok._c.encode_batch([], 8)
    assert ids.shape == (0, 8)


def test_c_binding_errors(toks):
    from mmsuite import _C
    model = _model_bytes()
    c = toks["t5"]._c
    for bad in (b"a\xffb", b"\xe2\x96", b"\xed\xa0\x80"):  # stray byte, truncated, surrogate
        with pytest.raises(ValueError, match="UTF-8"):
            c.encode(bad)
        with pytest.raises(ValueError, match="UTF-8"):
            c.normalize(bad)
    with pytest.raises(ValueError, match="text 1"):
        c.encode_batch(["a", b"\xff"], 8)
    with pytest.raises(TypeError):
        c.encode(None)
    with pytest.raises(TypeError, match="single str"):
        c.encode_batch("abc", 8)
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        c.encode_batch(["a", 3], 8)
    with pytest.raises(ValueError, match="context_length"):
        c.encode_batch(["a"], 0)
    with pytest.raises(UnicodeEncodeError):
        c.encode("\ud800")  # a lone surrogate has no UTF-8 (transformers refuses it too)
    # Construction.
    with pytest.raises(TypeError):
        _C.T5Tokenizer("not bytes")
    with pytest.raises(FormatError):
        _C.T5Tokenizer(b"\x0a\xff", name="junk.model")
    with open(os.path.join(DATA, "sp_bpe_small.model"), "rb") as f:
        with pytest.raises(UnsupportedError, match="unigram"):
            _C.T5Tokenizer(f.read())
    with pytest.raises(TypeError, match=r"added_tokens\[0\]"):
        _C.T5Tokenizer(model, ["<a>"])
    with pytest.raises(TypeError, match=r"added_tokens\[0\]"):
        _C.T5Tokenizer(model, [("<a>", 5, 0, 0, 0, 0)])
    with pytest.raises(TypeError, match=r"added_tokens\[0\]\[1\]"):
        _C.T5Tokenizer(model, [("<a>", "5", 0, 0, 0, 0, 0)])
    with pytest.raises(TypeError, match=r"added_tokens\[1\]\[0\]"):
        _C.T5Tokenizer(model, [("<a>", 5, 0, 0, 0, 0, 0), (b"<b>", 6, 0, 0, 0, 0, 0)])
    for kwargs, what in (({"added_tokens": [("<a>", -1, 0, 0, 0, 0, 0)]}, "id -1"),
                         ({"added_tokens": [("<a>", 10**30, 0, 0, 0, 0, 0)]}, "id -1"),
                         ({"extra_ids": -1}, "extra_ids"), ({"eos_id": 900}, "eos_id"), ({"unk_id": -5}, "unk_id")):
        with pytest.raises(ValueError, match=what):
            _C.T5Tokenizer(model, **kwargs)
    # Without a charsmap the normalizer is the identity.
    with open(os.path.join(DATA, "sp_unigram_noescape.model"), "rb") as f:
        plain = _C.T5Tokenizer(f.read(), extra_ids=0)
    assert not plain.has_charsmap and plain.normalize("\ufb01 \uff21") == "\ufb01 \uff21"


def test_c_binding_threads(toks):
    """One C handle used from several threads at once (encode and encode_batch release the GIL)."""
    c = toks["t5_flags"]._c
    texts = [r["text"] for r in _of("t5_flags", "text")]
    want = [c.encode(t) for t in texts]
    want_batch = c.encode_batch(texts, 24)[0].tolist()
    results, errors = [None] * 6, []

    def work(k):
        try:
            if k % 2:
                results[k] = [c.encode(t) for t in texts]
            else:
                results[k] = c.encode_batch(texts, 24)[0].tolist()
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(results[k] == (want if k % 2 else want_batch) for k in range(6))


def test_gcb_tables_fresh():
    """csrc/unicode_gcb_tables.h is what tools/make_gcb_tables.py writes (unicodedata2 15.0.0 is a
    test dependency installed by tools/setup.sh)."""
    import unicodedata2 as ud
    assert ud.unidata_version == "15.0.0", f"unicodedata2 {ud.unidata_version}: run tools/setup.sh"
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, os.path.join(root, "tools", "make_gcb_tables.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
