"""Numerical guards (csrc/finite.c, issue 7 part 6): a NaN / Inf in a model's activations is an
mmsuite.NonFiniteError naming the output ('outputs' mode, the default) or the first layer that
produced it ('layers' debug mode) -- never silently NaN embeddings or NaN-driven text."""
import os
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import mmsuite
from mmsuite import NonFiniteError, _C

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(ROOT, "mmsuite", "weights")
LM = os.path.join(ROOT, "tests", "data", "lm", "llama_gqa")
IMG = np.full((64, 64, 3), 200, np.uint8)


@pytest.fixture(autouse=True)
def restore_mode():
    yield
    mmsuite.set_check_finite("outputs")


def poisoned_copy(src, dst, tensor, value):
    """A copy of checkpoint `src` whose `tensor` holds `value` everywhere."""
    shutil.copytree(src, dst)
    f = os.path.join(dst, "model.safetensors")
    t = load_file(f)
    assert tensor in t, sorted(k for k in t if "layers.1." in k)[:20]
    t[tensor] = np.full_like(t[tensor], value)
    save_file(t, f, metadata={"format": "pt"})
    return str(dst)


# (family, source, poisoned tensor, layer named in 'layers' mode, call, output named in 'outputs' mode)
CASES = [
    ("clip-vision", os.path.join(WEIGHTS, "tiny-shapes-clip"), "vision_model.encoder.layers.1.mlp.fc2.bias",
     "vision_model.encoder.layers.1", lambda m: m.encode_image(images=[IMG]), r"the output '\w+'"),
    ("clip-text", os.path.join(WEIGHTS, "tiny-shapes-clip"), "text_model.encoder.layers.0.self_attn.out_proj.bias",
     "text_model.encoder.layers.0", lambda m: m.encode_text(texts=["a red circle"]), r"the output '\w+'"),
    ("llm", LM, "model.layers.1.mlp.down_proj.weight", "model.layers.1",
     lambda m: m.generate_ids([[1, 5, 9, 2]], max_new_tokens=3), "the language model's logits"),
    ("llava-vision", os.path.join(WEIGHTS, "tiny-shapes-llava"), "vision_tower.encoder.layers.0.mlp.fc1.bias",
     "vision_tower.encoder.layers.0", lambda m: m.ask(IMG, "what shape?"), "the vision tower's hidden states"),
    ("blip2-qformer", os.path.join(WEIGHTS, "tiny-shapes-blip2"), "qformer.encoder.layer.0.output_query.dense.bias",
     "qformer.encoder.layer.0", lambda m: m.caption([IMG]), "BLIP-2's projected image features"),
]


@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_nonfinite_named(case, value, tmp_path):
    family, src, tensor, layer, call, output = case
    d = poisoned_copy(src, tmp_path / family, tensor, value)
    m = mmsuite.load(d)
    assert mmsuite.get_check_finite() == "outputs"
    with pytest.raises(NonFiniteError, match=rf"non-finite values in {output}: .*set_check_finite\('layers'\)") as e:
        call(m)
    assert isinstance(e.value, FloatingPointError) and isinstance(e.value, mmsuite.MMSError)
    mmsuite.set_check_finite("layers")
    with pytest.raises(NonFiniteError, match=rf"non-finite values in the output of layer {layer}\b: \d+ NaN, \d+ Inf"):
        call(m)
    mmsuite.set_check_finite("off")  # the old behaviour: NaN flows through, no exception
    try:
        call(m)
    except Exception as exc:  # e.g. NaN logits -> the sampler refuses; never a NonFiniteError
        assert not isinstance(exc, NonFiniteError)


def test_overflow_to_inf_is_caught(tmp_path):
    """Finite but huge weights overflow float32 inside the block: the guard names that layer."""
    src = os.path.join(WEIGHTS, "tiny-shapes-clip")
    d = poisoned_copy(src, tmp_path / "clip", "vision_model.encoder.layers.2.mlp.fc1.weight", 3e38)
    m = mmsuite.load(d)
    mmsuite.set_check_finite("layers")
    with pytest.raises(NonFiniteError, match=r"layer vision_model\.encoder\.layers\.2\b"):
        m.encode_image(images=[IMG])


def test_healthy_models_pass_every_mode():
    m = mmsuite.load(os.path.join(WEIGHTS, "tiny-shapes-clip"))
    ref = m.encode_image(images=[IMG])["image_embeds"]
    for mode in ("layers", "off", "outputs"):
        mmsuite.set_check_finite(mode)
        np.testing.assert_array_equal(m.encode_image(images=[IMG])["image_embeds"], ref)


def test_bad_mode_and_env(tmp_path):
    with pytest.raises(ValueError, match="check_finite: expected 'off', 'outputs' or 'layers'"):
        mmsuite.set_check_finite("all")
    assert _C.get_check_finite() == "outputs"
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-c", "import mmsuite; print(mmsuite.get_check_finite())"], cwd=ROOT,
                       env={**os.environ, "MMSUITE_CHECK_FINITE": "layers"}, capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "layers", r.stderr
