"""SigLIP end to end through MultimodalSuite: checkpoint dir with spiece.model (SentencePiece
unigram, nmt_nfkc) + the tiny random SigLIP fixture weights, whose text embedding is widened to
the tokenizer's vocabulary. Checks the wiring: tokenizer dispatch, max_length padding without an
attention mask, sigmoid scores with logit_bias."""
import json
import os
import shutil
import struct

import numpy as np
import pytest

import mmsuite
from mmsuite import MultimodalSuite

DATA = os.path.join(os.path.dirname(__file__), "data")
SIGLIP = os.path.join(DATA, "conformance", "siglip", "tiny_model", "model")
SPM = os.path.join(DATA, "tokenizers", "sp_unigram_nfkc.model")
IMAGE = os.path.join(DATA, "clip_preprocess", "openai224_chelsea", "chelsea.png")


def read_st(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32"
        b0, b1 = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + b0:8 + n + b1], np.float32).reshape(info["shape"])
    return out


def write_st(path, tensors):
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        b = np.ascontiguousarray(arr, np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + b"".join(blobs))


@pytest.fixture(scope="module")
def siglip_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("siglip")
    vocab = mmsuite._C.SentencePiece.from_file(SPM).vocab_size
    t = read_st(os.path.join(SIGLIP, "model.safetensors"))
    rng = np.random.default_rng(0)
    t["text_model.embeddings.token_embedding.weight"] = rng.standard_normal(
        (vocab, t["text_model.embeddings.token_embedding.weight"].shape[1])).astype(np.float32) * 0.2
    write_st(str(d / "model.safetensors"), t)
    cfg = json.load(open(os.path.join(SIGLIP, "config.json")))
    cfg["text_config"]["vocab_size"] = vocab
    (d / "config.json").write_text(json.dumps(cfg))
    shutil.copy(os.path.join(SIGLIP, "preprocessor_config.json"), d)
    shutil.copy(SPM, d / "spiece.model")
    (d / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "SiglipTokenizer", "model_max_length": 12}))
    return str(d)


def test_siglip_suite_classify(siglip_dir):
    suite = MultimodalSuite(models={"clip": siglip_dir})
    m = suite.model("clip")
    assert isinstance(m, mmsuite.SigLIP)
    assert type(m.tokenizer).__name__ == "SiglipTokenizer"
    enc = m.tokenize(["A photo of a cat!", "a dog"])
    assert set(enc) == {"input_ids"} and enc["input_ids"].shape == (2, 12)   # no mask, max_length padding
    r = suite.classify(IMAGE, ["cat", "dog"])
    img = m.encode_image(images=[IMAGE])["image_embeds"]
    txt = m.encode_text(input_ids=m.tokenize(["cat", "dog"])["input_ids"])["text_embeds"]
    logits = img @ txt.T * np.exp(m.config["logit_scale"]) + m.config["logit_bias"]
    np.testing.assert_allclose(r["probs"], 1 / (1 + np.exp(-logits[0])), rtol=1e-5, atol=1e-6)
    assert not np.isclose(float(r["probs"].sum()), 1.0)   # independent sigmoids, not a softmax
    mod = suite.moderate(IMAGE, ["violence"], threshold=0.0)
    assert mod["flagged"] and 0.0 <= mod["scores"]["violence"] <= 1.0
