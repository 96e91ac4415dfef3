"""LLaVA 1.5 / NeXT end to end on the fixture checkpoints: the Python API (forward, generate,
ask/chat with streaming, image cache, batching, beam search) and its error handling. The
fixtures' numbers themselves are checked by the conformance runner (test_models.py)."""
import os

import numpy as np
import pytest

import mmsuite
from mmsuite import _C
from mmsuite.generation import GenerationConfig

HERE = os.path.dirname(__file__)
L15 = os.path.join(HERE, "data", "conformance", "llava", "tiny_llava15")
NEXT = os.path.join(HERE, "data", "conformance", "llava_next", "tiny_mistral_anyres")


class CharTokenizer:
    """A stand-in tokenizer for the fixtures (they ship none): printable ASCII <-> ids 3..97,
    '<image>' <-> the image token, other ids decode to '<id>'."""

    def __init__(self, image_id, vocab):
        self.image_id, self.vocab = image_id, vocab
        self.bos_token_id, self.eos_token_id = 1, 2

    def encode(self, text, add_special_tokens=True):
        ids = [1] if add_special_tokens else []
        i = 0
        while i < len(text):
            if text.startswith("<image>", i):
                ids.append(self.image_id)
                i += 7
                continue
            c = ord(text[i])
            ids.append(3 + (c - 32) if 32 <= c < 127 else 3)
            i += 1
        return ids

    def decode(self, ids, skip_special_tokens=False):
        out = []
        for t in ids:
            t = int(t)
            if t in (0, 1, 2) and skip_special_tokens:
                continue
            out.append(chr(t - 3 + 32) if 3 <= t < 98 else f"<{t}>")
        return "".join(out)


def load(path, **kw):
    cfg = mmsuite.load(os.path.join(path, "model"))
    tok = CharTokenizer(cfg.image_token_id, cfg.info["vocab_size"])
    cfg.unload()
    return mmsuite.load(os.path.join(path, "model"), tokenizer=tok, **kw)


@pytest.fixture(scope="module")
def llava15():
    return load(L15)


@pytest.fixture(scope="module")
def llava_next():
    return load(NEXT)


def test_load_types(llava15, llava_next):
    assert isinstance(llava15, mmsuite.Llava) and not llava15.vision["next"]
    assert llava_next.vision["next"] and llava_next.info["num_kv_heads"] == 2
    assert llava15.memory()["weights_owned"] < llava15.memory()["weights_mapped"]


@pytest.mark.parametrize("case", [L15, NEXT])
def test_forward_from_image_file_matches_fixture(case, request):
    m = request.getfixturevalue("llava15" if case == L15 else "llava_next")
    ids = np.load(os.path.join(case, "input_ids.npy"))[0]
    ref = np.load(os.path.join(case, "logits.npy"))[0]
    img = [os.path.join(case, f) for f in os.listdir(case) if f.endswith(".png")]
    got = m.forward(input_ids=ids, images=img)
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()
    # from the fixture's pixel_values too
    px = np.load(os.path.join(case, "pixel_values.npy"))
    sizes = np.load(os.path.join(case, "image_sizes.npy")) if m.vision["next"] else None
    got2 = m.forward(input_ids=ids, pixel_values=px, image_sizes=sizes)
    assert np.abs(got2 - ref).max() <= 1e-4 * np.abs(ref).max()


@pytest.mark.parametrize("case", [L15, NEXT])
def test_generate_ids_matches_golden(case, request):
    m = request.getfixturevalue("llava15" if case == L15 else "llava_next")
    ids = np.load(os.path.join(case, "input_ids.npy"))[0]
    gold = np.load(os.path.join(case, "generated_new_ids.npy"))[0].tolist()
    img = [os.path.join(case, f) for f in os.listdir(case) if f.endswith(".png")]
    out = m.generate(ids.tolist(), images=img, max_new_tokens=8, eos_token_id=[])
    assert out.sequences[0] == gold
    assert out.finish_reasons == ["length"]
    # collapsed placeholder (one <image> token) is expanded to the processor's count
    n_img = int((ids == m.image_token_id).sum())
    first = int(np.flatnonzero(ids == m.image_token_id)[0])
    collapsed = ids[:first].tolist() + [m.image_token_id] + ids[first + n_img:].tolist()
    assert m.generate(collapsed, images=img, max_new_tokens=8, eos_token_id=[]).sequences[0] == gold


def test_image_cache_skips_vision_tower(llava15):
    img = os.path.join(L15, "astronaut_64x80.png")
    a = llava15.encode_images([img])[0]
    misses = llava15.cache_misses
    b = llava15.encode_images([img])[0]
    assert llava15.cache_misses == misses and llava15.cache_hits >= 1
    assert np.array_equal(a, b)


def test_ask_and_stream(llava15):
    img = os.path.join(L15, "astronaut_64x80.png")
    text = llava15.ask(img, "What is in the picture?", max_new_tokens=12, eos_token_id=[])
    assert isinstance(text, str) and text
    deltas = list(llava15.ask(img, "What is in the picture?", max_new_tokens=12, eos_token_id=[], stream=True))
    assert "".join(deltas) == text
    # the rendered prompt is the LLaVA-1.5 template
    prompt = llava15._render([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}])
    assert prompt.startswith("USER: <image>") and prompt.rstrip().endswith("ASSISTANT:")


def test_ask_via_suite(llava_next):
    suite = mmsuite.MultimodalSuite(models={"llava": llava_next})
    img = os.path.join(NEXT, "astronaut_50x80.png")
    a = suite.ask(img, "Describe it.", max_new_tokens=6, eos_token_id=[])
    b = suite.chat([{"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": "Describe it."}]}],
                   max_new_tokens=6, eos_token_id=[])
    assert a == b


def test_sampling_is_seeded(llava15):
    img = os.path.join(L15, "astronaut_64x80.png")
    kw = dict(max_new_tokens=10, eos_token_id=[], temperature=1.5, top_k=0)
    a = llava15.ask(img, "Hi?", seed=1, **kw)
    b = llava15.ask(img, "Hi?", seed=1, **kw)
    c = [llava15.ask(img, "Hi?", seed=s, **kw) for s in (2, 3, 4)]
    assert a == b and any(x != a for x in c)


def test_stop_conditions(llava15):
    img = os.path.join(L15, "astronaut_64x80.png")
    full = llava15.generate("USER: <image>\nHi ASSISTANT:", images=[img], max_new_tokens=8, eos_token_id=[])
    ids = llava15.generate(llava15.tokenizer.encode("USER: <image>\nHi ASSISTANT:"), images=[img], max_new_tokens=8,
                           eos_token_id=[]).sequences[0]
    assert llava15.tokenizer.decode(ids) == full
    stop = ids[3]
    out = llava15.generate(llava15.tokenizer.encode("USER: <image>\nHi ASSISTANT:"), images=[img], max_new_tokens=8,
                           eos_token_id=[stop])
    assert out.sequences[0] == ids[:ids.index(stop) + 1] and out.finish_reasons == ["eos"]
    s = llava15.tokenizer.decode(ids[2:4])
    cut = llava15.generate("USER: <image>\nHi ASSISTANT:", images=[img], max_new_tokens=8, eos_token_id=[], stop_strings=[s])
    assert cut == full[:full.find(s)]


def test_batched_generation_equals_single(llava15):
    img = os.path.join(L15, "astronaut_64x80.png")
    qs = ["What?", "Describe the colours in detail please.", "Hi"]
    singles = [llava15.ask(img, q, max_new_tokens=6, eos_token_id=[]) for q in qs]
    assert llava15.ask_many([img] * 3, qs, max_new_tokens=6, eos_token_id=[]) == singles


def _beam_reference(m, ids, emb, nb, steps, lp=1.0):
    """Beam search recomputing every candidate with full teacher-forced forwards (no cache)."""
    beams = [([], 0.0)]
    done = []
    for cur in range(steps):
        cands = []
        for seq, sc in beams:
            full = np.concatenate([emb, m._merge(seq, []) if seq else np.zeros((0, emb.shape[1]), np.float32)])
            lg = m.forward(inputs_embeds=full)[-1].astype(np.float64)
            lg -= lg.max()
            lp_ = lg - np.log(np.exp(lg).sum())
            for t in np.argsort(-lp_)[:2 * nb]:
                cands.append((sc + lp_[t], seq + [int(t)]))
        cands.sort(key=lambda x: -x[0])
        beams = [(s, sc) for sc, s in cands[:nb]]
    best = max(beams, key=lambda b: b[1] / len(b[0]) ** lp)
    return best[0]


def test_beam_search_matches_uncached_reference(llava15):
    img = os.path.join(L15, "astronaut_64x80.png")
    prompt = llava15.tokenizer.encode("USER: <image>\nWhat? ASSISTANT:")
    ids, emb = llava15.build_prompt(prompt, [img])
    g = llava15.generate(prompt, images=[img], max_new_tokens=5, eos_token_id=[], num_beams=1)
    b1 = llava15._gen.generate([(ids, emb)], GenerationConfig(max_new_tokens=5, num_beams=1, eos_token_id=[]))
    assert b1.sequences == g.sequences
    out = llava15._gen.generate([(ids, emb)], GenerationConfig(max_new_tokens=4, num_beams=3, eos_token_id=[]))
    assert out.sequences[0] == _beam_reference(llava15, ids, emb, 3, 4)


def test_errors(llava15, tmp_path):
    img = os.path.join(L15, "astronaut_64x80.png")
    with pytest.raises(ValueError, match="image"):
        llava15.generate("USER: <image> <image> hi", images=[img], max_new_tokens=2)
    with pytest.raises(ValueError, match="image"):
        llava15.generate("USER: hi", images=[img], max_new_tokens=2)
    with pytest.raises(ValueError, match="question"):
        llava15.ask(img, "")
    small = load(L15, context_length=20)
    with pytest.raises(ValueError, match="context limit of 20"):
        small.ask(img, "What is this?", max_new_tokens=2)
    with pytest.raises(TypeError, match="unexpected generation"):
        llava15.ask(img, "x", max_tokens=3)
    with pytest.raises(ValueError, match="top_p"):
        llava15.ask(img, "x", top_p=0, temperature=1.0)
    bare = mmsuite.load(os.path.join(L15, "model"))
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        bare.ask(img, "what?")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        bare.forward(input_ids=[5, 400])
    bare.unload()
    with pytest.raises(RuntimeError, match="unloaded"):
        bare.forward(input_ids=[5])


def test_state_outlives_unload():
    m = load(L15)
    h = m._h
    st = _C.lm_state_new(h, 1, 32, "float32", 8)
    ref = m.forward(input_ids=[1, 5, 6])[-1]
    m.unload()  # the live state keeps the weights until it goes
    lg = _C.lm_forward(st, np.array([0]), np.array([3]), ids=np.array([1, 5, 6]))
    assert np.array_equal(lg[0], ref)
    with pytest.raises(RuntimeError, match="unloaded"):
        _C.lm_state_new(h, 1, 8)
    del st  # frees the weights now


# ---- with a real tokenizer.json (tools/make_llava_tokenizers.py) -------------------------------

def _with_tokenizer(case, name, tmp_path):
    d = tmp_path / name
    d.mkdir()
    for f in os.listdir(os.path.join(case, "model")):
        os.symlink(os.path.join(case, "model", f), d / f)
    tdir = os.path.join(HERE, "data", "llava_tokenizers", name)
    for f in os.listdir(tdir):
        os.symlink(os.path.join(tdir, f), d / f)
    return mmsuite.load(str(d))


@pytest.mark.parametrize("case,name", [(L15, "llava15"), (NEXT, "llava_next")])
def test_ask_end_to_end_with_tokenizer_json(case, name, tmp_path):
    m = _with_tokenizer(case, name, tmp_path)
    assert type(m.tokenizer).__name__ == "HFTokenizer"
    img = [os.path.join(case, f) for f in os.listdir(case) if f.endswith(".png")][0]
    q = "What colour is the sky? \u00e9t\u00e9 \u2603"
    prompt = m._render([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}])
    ids = m.tokenizer.encode(prompt)
    assert ids.count(m.image_token_id) == 1  # "<image>" is one special token before expansion
    text = m.ask(img, q, max_new_tokens=24, eos_token_id=[])
    deltas = list(m.ask(img, q, max_new_tokens=24, eos_token_id=[], stream=True))
    assert "".join(deltas) == text
    out = m.generate(ids, images=[img], max_new_tokens=24, eos_token_id=[])
    assert m.tokenizer.decode(out.sequences[0], skip_special_tokens=True) == text
    # the expanded prompt fed to the model has the processor's image-token count
    full_ids, emb = m.build_prompt(ids, [img])
    n_ref = int((np.load(os.path.join(case, "input_ids.npy")) == m.image_token_id).sum())
    assert full_ids.count(m.image_token_id) == n_ref and emb.shape == (len(full_ids), m.info["hidden_size"])


def test_in_memory_weights_equal_mapped():
    """mmap=False reads the checkpoint into (huge-page) memory: same numbers, and the model no
    longer depends on the file."""
    ids = np.load(os.path.join(L15, "input_ids.npy"))[0]
    img = [os.path.join(L15, "astronaut_64x80.png")]
    mapped = mmsuite.load(os.path.join(L15, "model"))
    a = mapped.forward(input_ids=ids, images=img)
    m = mmsuite.load(os.path.join(L15, "model"), mmap=False)
    assert np.array_equal(m.forward(input_ids=ids, images=img), a)
    # the decoder's weights now live in process memory rather than in the file mapping
    assert mapped.memory()["weights_owned"] < 0.1 * mapped.memory()["weights_mapped"]
    assert m.memory()["weights_owned"] > 0.5 * m.memory()["weights_mapped"]
