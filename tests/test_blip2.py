"""BLIP-2 (OPT and Flan-T5): the shared conformance cases (copied to tests/data/conformance/blip2*),
the public API end to end, the T5 pieces (relative buckets, encoder, decoder cache) and bad input."""
import os
import shutil

import numpy as np
import pytest

import mmsuite
from mmsuite import _C
from mmsuite.conformance import run_case
from mmsuite.generation import GenerationConfig

DATA = os.path.join(os.path.dirname(__file__), "data")
OPT_CASE = os.path.join(DATA, "conformance", "blip2", "tiny_opt")
T5_CASE = os.path.join(DATA, "conformance", "blip2_t5", "tiny_flant5")
IMAGE = os.path.join(OPT_CASE, "chelsea_96x64.png")


@pytest.mark.parametrize("case", [OPT_CASE, T5_CASE], ids=["opt", "flant5"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_conformance(case, dtype):
    res = run_case(case, dtype=dtype)
    assert len(res) >= 11
    failed = {k: v for k, v in res.items() if not v["passed"]}
    assert not failed, failed
    if dtype == "float32":  # well inside the fixtures' 1e-4 scaled tolerance
        worst = max(v.get("scaled_error", 0.0) or 0.0 for v in res.values())
        assert worst < 1e-5, worst


@pytest.fixture(scope="module")
def opt_dir(tmp_path_factory):
    """The tiny OPT case's model with a tokenizer (tools/make_blip2_tokenizers.py)."""
    d = tmp_path_factory.mktemp("blip2_opt")
    for f in os.listdir(os.path.join(OPT_CASE, "model")):
        os.symlink(os.path.join(OPT_CASE, "model", f), d / f)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(DATA, "blip2_tokenizers", "tiny_opt", f), d / f)
    return str(d)


@pytest.fixture(scope="module")
def opt_model(opt_dir):
    return mmsuite.load(opt_dir)


@pytest.fixture(scope="module")
def t5_model():
    return mmsuite.load(os.path.join(T5_CASE, "model"))


def test_load_dispatch_and_info(opt_model, t5_model):
    assert isinstance(opt_model, mmsuite.Blip2) and isinstance(t5_model, mmsuite.Blip2)
    assert opt_model.family == "opt" and not opt_model.encoder_decoder
    assert t5_model.family == "t5" and t5_model.encoder_decoder
    assert opt_model.num_query_tokens == 8 and opt_model.image_token_id == 299
    assert t5_model.info["t5"]["decoder_start_token_id"] == 0


def test_caption_matches_greedy_ids(opt_model):
    """caption(path) = decode of the greedy continuation of [<image> x Q] + BOS."""
    cap = opt_model.caption(IMAGE, max_new_tokens=6)
    assert isinstance(cap, str)
    feats = opt_model.encode_images([IMAGE])[0]
    ids, emb = opt_model.build_inputs(None, feats)
    assert ids == [299] * 8 + [2]
    out = opt_model._gen.generate([(ids, emb)], GenerationConfig(max_new_tokens=6))
    assert cap == opt_model.tokenizer.decode(out.sequences[0], skip_special_tokens=True).strip()
    # the image features equal the ones from processed pixels
    px = opt_model.processor([IMAGE])["pixel_values"]
    np.testing.assert_array_equal(feats, opt_model.image_features(px, intermediates=False)[0])


def test_caption_batch_equals_single(opt_model):
    img2 = np.asarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3)), dtype=np.uint8)
    single = [opt_model.caption(IMAGE, max_new_tokens=5), opt_model.caption(img2, max_new_tokens=5)]
    assert opt_model.caption([IMAGE, img2], max_new_tokens=5) == single


def test_ask_uses_question_answer_prompt(opt_model):
    ans = opt_model.ask(IMAGE, "what is in the picture?", max_new_tokens=4)
    feats = opt_model.encode_images([IMAGE])[0]
    ids, emb = opt_model.build_inputs("Question: what is in the picture? Answer:", feats)
    assert ids[:9] == [299] * 8 + [2]
    out = opt_model._gen.generate([(ids, emb)], GenerationConfig(max_new_tokens=4))
    assert ans == opt_model.tokenizer.decode(out.sequences[0], skip_special_tokens=True).strip()
    many = opt_model.ask_many([IMAGE, IMAGE], ["what is in the picture?", "what colour is it?"], max_new_tokens=4)
    assert many[0] == ans and len(many) == 2


def test_suite_caption_and_ask(opt_dir, opt_model):
    suite = mmsuite.MultimodalSuite(models={"blip2": opt_dir})
    assert suite.caption(IMAGE, max_new_tokens=5) == opt_model.caption(IMAGE, max_new_tokens=5)
    assert suite.ask(IMAGE, "what colour is it?", model="blip2", max_new_tokens=3) == \
        opt_model.ask(IMAGE, "what colour is it?", max_new_tokens=3)
    with pytest.raises(ValueError, match="stream"):
        suite.ask(IMAGE, "what?", model="blip2", stream=True)


def test_t5_generate_from_prompt_ids(t5_model):
    """generate() on the case's prompt ids (image tokens already in place) gives the golden ids."""
    ids = np.load(os.path.join(T5_CASE, "input_ids.npy"))[0]
    golden = np.load(os.path.join(T5_CASE, "generated_new_ids.npy"))[0]
    px = np.load(os.path.join(T5_CASE, "pixel_values.npy"))
    feats = t5_model.image_features(px, intermediates=False)
    _, emb = t5_model.build_inputs(ids, feats[0])
    enc = _C.t5_encode(t5_model._h, emb)
    out = t5_model._gen.generate([([0], None, enc)], GenerationConfig(max_new_tokens=8, eos_token_id=[]))
    np.testing.assert_array_equal(out.sequences[0], golden)
    # two sequences with different encoder lengths in one batch: each equals its solo run
    enc2 = _C.t5_encode(t5_model._h, emb[:12])
    solo2 = t5_model._gen.generate([([0], None, enc2)], GenerationConfig(max_new_tokens=6, eos_token_id=[]))
    both = t5_model._gen.generate([([0], None, enc), ([0], None, enc2)],
                                  GenerationConfig(max_new_tokens=6, eos_token_id=[]))
    assert both.sequences == [list(golden[:6]), solo2.sequences[0]]


def test_t5_beam_search_copies_cross_cache(t5_model):
    px = np.load(os.path.join(T5_CASE, "pixel_values.npy"))
    ids = np.load(os.path.join(T5_CASE, "input_ids.npy"))[0]
    _, emb = t5_model.build_inputs(ids, t5_model.image_features(px, intermediates=False)[0])
    enc = _C.t5_encode(t5_model._h, emb)
    cfg = GenerationConfig(max_new_tokens=5, num_beams=3, eos_token_id=[])
    out = t5_model._gen.generate([([0], None, enc)], cfg)
    # the best beam's score is its summed log-probability / length, recomputed by teacher forcing
    seq = out.sequences[0]
    st = _C.lm_state_new(t5_model._h, 1, 8, "float32", 16, enc_ctx=len(enc))
    _C.lm_state_set_encoder(st, 0, enc)
    lg = _C.lm_forward(st, np.array([0]), np.array([len(seq)]), ids=np.array([0] + seq[:-1]), logits_all=True)
    lg = lg.astype(np.float64)
    lp = lg - lg.max(1, keepdims=True)
    lp = lp - np.log(np.exp(lp).sum(1, keepdims=True))
    assert abs(sum(lp[i, t] for i, t in enumerate(seq)) / len(seq) - out.scores[0]) < 1e-4
    greedy = t5_model._gen.generate([([0], None, enc)], GenerationConfig(max_new_tokens=5, eos_token_id=[]))
    g = greedy.sequences[0]
    lgg = _C.lm_forward(_fresh(t5_model, enc), np.array([0]), np.array([5]), ids=np.array([0] + g[:-1]),
                        logits_all=True).astype(np.float64)
    lgg = lgg - lgg.max(1, keepdims=True)
    lgg = lgg - np.log(np.exp(lgg).sum(1, keepdims=True))
    assert out.scores[0] >= sum(lgg[i, t] for i, t in enumerate(g)) / 5 - 1e-6  # beams never lose to greedy here


def _fresh(model, enc):
    st = _C.lm_state_new(model._h, 1, 8, "float32", 16, enc_ctx=len(enc))
    _C.lm_state_set_encoder(st, 0, enc)
    return st


def test_min_new_tokens_blocks_eos(opt_model):
    feats = opt_model.encode_images([IMAGE])[0]
    ids, emb = opt_model.build_inputs(None, feats)
    first = opt_model._gen.generate([(ids, emb)], GenerationConfig(max_new_tokens=1)).sequences[0][0]
    stop = opt_model._gen.generate([(ids, emb)], GenerationConfig(max_new_tokens=6, eos_token_id=[first]))
    assert stop.sequences[0] == [first] and stop.finish_reasons[0] == "eos"
    held = opt_model._gen.generate([(ids, emb)], GenerationConfig(max_new_tokens=6, min_new_tokens=3,
                                                                  eos_token_id=[first]))
    assert len(held.sequences[0]) >= 3 and first not in held.sequences[0][:3]


def test_t5_buckets_match_fixture():
    enc = np.load(os.path.join(T5_CASE, "relative_position_bucket_encoder.npy"))
    dec = np.load(os.path.join(T5_CASE, "relative_position_bucket_decoder.npy"))
    np.testing.assert_array_equal(_C.t5_buckets(enc.shape[0], enc.shape[1], True, 32, 128), enc)
    np.testing.assert_array_equal(_C.t5_buckets(dec.shape[0], dec.shape[1], False, 32, 128), dec)
    # saturation far away (the kernels clamp offsets at max_distance)
    far = _C.t5_buckets(1, 600, True, 32, 128)[0]
    assert far[-1] == far[200] == 31
    assert _C.t5_buckets(600, 1, False, 32, 128)[-1, 0] == 31


def test_bad_input(opt_model, t5_model):
    with pytest.raises(ValueError, match="pixel_values"):
        opt_model.image_features(np.zeros((1, 3, 16, 16), np.float32))
    with pytest.raises(ValueError, match="decoder_input_ids"):
        t5_model.forward(np.array([1]), pixel_values=np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(ValueError, match="image tokens"):
        opt_model.build_inputs([299, 299, 2], np.zeros((8, 48), np.float32))
    st = _C.lm_state_new(opt_model._h, 1, 8)
    with pytest.raises(ValueError, match="cross-attention"):
        _C.lm_state_set_encoder(st, 0, np.zeros((3, 48), np.float32))
    with pytest.raises(ValueError, match="encoder states"):
        _C.lm_state_new(t5_model._h, 1, 8)  # T5 needs enc_ctx
    st = _C.lm_state_new(t5_model._h, 1, 8, enc_ctx=4)
    with pytest.raises(ValueError, match="no encoder states"):
        _C.lm_forward(st, np.array([0]), np.array([1]), ids=np.array([0]))
    with pytest.raises(ValueError, match="encoder rows"):
        _C.lm_state_set_encoder(st, 0, np.zeros((5, 48), np.float32))
    with pytest.raises(ValueError, match="columns"):
        _C.lm_state_set_encoder(st, 0, np.zeros((2, 40), np.float32))
    with pytest.raises(TypeError, match="T5 encoder"):
        _C.t5_encode(opt_model._h, np.zeros((2, 48), np.float32))
    with pytest.raises(mmsuite.MMSError, match="blip-2"):
        _C.blip2_load(os.path.join(DATA, "conformance", "llava", "tiny_llava15", "model"))
