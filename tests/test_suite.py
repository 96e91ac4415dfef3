"""MultimodalSuite and the command line, on the random-weight demo CLIP (real vocabulary)."""
import json
import os

import numpy as np
import pytest

import mmsuite
from mmsuite import MultimodalSuite
from mmsuite.__main__ import main as cli_main

DATA = os.path.join(os.path.dirname(__file__), "data")
IMAGES = [os.path.join(DATA, "clip_preprocess", "openai224_chelsea", "chelsea.png"),
          os.path.join(DATA, "clip_preprocess", "openai224_astronaut", "astronaut_crop.png"),
          os.path.join(DATA, "clip_preprocess", "openai224_chelsea", "chelsea_q90.jpg")]


@pytest.fixture(scope="module")
def demo_path(tmp_path_factory):
    os.environ["MMSUITE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    from mmsuite._demo import demo_checkpoint
    return demo_checkpoint()


@pytest.fixture(scope="module")
def suite(demo_path):
    return MultimodalSuite(device="cpu", models={"clip": demo_path})


def test_lazy_load_and_unload(demo_path):
    s = MultimodalSuite(models={"clip": demo_path}, lazy_load=True)
    assert s.loaded == []
    s.embed(text="a cat")
    assert s.loaded == ["clip"]
    s.unload("clip")
    assert s.loaded == []
    s.embed(text="a cat")               # reloads on next use
    assert s.loaded == ["clip"]
    with pytest.raises(KeyError):
        s.unload("blip2")
    eager = MultimodalSuite(models={"clip": demo_path}, lazy_load=False)
    assert eager.loaded == ["clip"]


def test_embed_single_and_batched(suite):
    one = suite.embed(image_path=IMAGES[0], text="a photo of a cat")
    assert one["image"].shape == (32,) and one["text"].shape == (32,)
    assert abs(np.linalg.norm(one["image"]) - 1) < 1e-5 and abs(np.linalg.norm(one["text"]) - 1) < 1e-5
    full = suite.embed(images=IMAGES, texts=["a cat", "an astronaut"])
    small = suite.embed(images=IMAGES, texts=["a cat", "an astronaut"], batch_size=2)
    assert full["image"].shape == (3, 32) and full["text"].shape == (2, 32)
    np.testing.assert_allclose(full["image"], small["image"], atol=1e-5)
    np.testing.assert_allclose(one["image"], full["image"][0], atol=1e-5)


def test_image_sources_agree(suite):
    from mmsuite.image_processor import decode_image
    by_path = suite.embed(image_path=IMAGES[1])["image"]
    by_bytes = suite.embed(image_path=open(IMAGES[1], "rb").read())["image"]
    by_array = suite.embed(image_path=np.asarray(decode_image(IMAGES[1])))["image"]
    np.testing.assert_array_equal(by_path, by_bytes)
    np.testing.assert_array_equal(by_path, by_array)


def test_pre_made_inputs(suite):
    m = suite.model("clip")
    px = m.image_processor(IMAGES[:2])
    ids = m.tokenize(["a cat"])["input_ids"]
    e = suite.embed(pixel_values=px, input_ids=ids)
    np.testing.assert_allclose(e["image"], suite.embed(images=IMAGES[:2])["image"], atol=1e-6)
    np.testing.assert_allclose(e["text"][0], suite.embed(text="a cat")["text"], atol=1e-6)


def test_similarity(suite):
    sim = suite.similarity(IMAGES, ["a cat", "a dog"])
    assert sim.shape == (3, 2)
    e = suite.embed(images=IMAGES, texts=["a cat", "a dog"])
    np.testing.assert_allclose(sim, e["image"] @ e["text"].T, atol=1e-6)
    s = suite.similarity(IMAGES[0], "a cat")
    assert isinstance(s, float) and abs(s - sim[0, 0]) < 1e-6


def test_classify(suite):
    r = suite.classify(IMAGES[0], ["cat", "dog", "car"])
    assert r["labels"] == ["cat", "dog", "car"]
    assert abs(float(r["probs"].sum()) - 1) < 1e-5
    ps = [p for _, p in r["top"]]
    assert ps == sorted(ps, reverse=True) and len(ps) == 3
    many = suite.classify(IMAGES, ["cat", "dog"], templates=["a photo of a {}."], top_k=1)
    assert len(many) == 3 and all(len(x["top"]) == 1 for x in many)
    # prompt ensembling = normalized mean of the template embeddings
    cls = suite.class_embeddings(["cat"], templates=["a {}.", "the {}."])
    t = suite.embed(texts=["a cat.", "the cat."])["text"].mean(0)
    np.testing.assert_allclose(cls[0], t / np.linalg.norm(t), atol=1e-5)


def test_moderate(suite):
    r = suite.moderate(IMAGES[0], ["violence", "gore"], threshold=0.0)
    assert r["flagged"] and r["flagged_categories"] == ["violence", "gore"]
    r = suite.moderate(IMAGES[0], ["violence", "gore"], threshold=1.0)
    assert set(r["scores"]) == {"violence", "gore"} and all(0 <= v <= 1 for v in r["scores"].values())
    assert r["flagged"] == bool(r["flagged_categories"])


@pytest.mark.parametrize("call,exc", [
    (lambda s: s.classify(IMAGES[0], []), ValueError),
    (lambda s: s.moderate(IMAGES[0], ["x"], threshold=2), ValueError),
    (lambda s: s.embed(), ValueError),
    (lambda s: s.embed(texts=[1, 2]), TypeError),
    (lambda s: s.embed(images=[]), ValueError),
    (lambda s: s.embed(text="x", model="nope"), KeyError),
    (lambda s: s.embed(image_path="/nonexistent.png"), FileNotFoundError),
    (lambda s: s.embed(images=IMAGES, batch_size=0), ValueError),
])
def test_suite_errors(suite, call, exc):
    with pytest.raises(exc):
        call(suite)


def test_corrupt_image_error_names_file(suite, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(open(IMAGES[0], "rb").read()[:200])
    with pytest.raises(mmsuite.FormatError, match="broken.png"):
        suite.embed(image_path=str(bad))


def test_long_text_truncates_or_raises(suite):
    m = suite.model("clip")
    long = "word " * 200
    assert suite.embed(text=long)["text"].shape == (32,)
    with pytest.raises(ValueError, match="context length"):
        m.encode_text(texts=[long], truncate=False)


def test_cli_classify(demo_path, tmp_path, capsys):
    out = tmp_path / "r.json"
    folder = os.path.dirname(IMAGES[0])
    assert cli_main(["classify", folder, "--labels", "a cat,a dog", "--model", demo_path, "--json", str(out)]) == 0
    r = json.load(open(out))
    assert len(r["results"]) == 2 and r["results"][0]["top"][0][0] in ("a cat", "a dog")
    assert "2 images x 2 labels" in capsys.readouterr().out


def test_cli_embed(demo_path, tmp_path):
    out = tmp_path / "e.npz"
    assert cli_main(["embed", IMAGES[0], "--texts", "a,b", "--model", demo_path, "--out", str(out)]) == 0
    z = np.load(out)
    assert z["image"].shape == (1, 32) and z["text"].shape == (2, 32)
