"""A stand-in default checkpoint until real weights ship (see issue 6): a small CLIP with the
real OpenAI vocabulary and RANDOM weights, written once with NumPy (no torch) into the user's
cache. It exercises the whole pipeline; its predictions carry no meaning."""
import json
import os
import shutil
import struct

import numpy as np

def _demo_dir():
    root = os.environ.get("MMSUITE_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "mmsuite"))
    return os.path.join(root, "demo-clip-random-v1")


def _write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        b = np.ascontiguousarray(arr, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def demo_checkpoint():
    """Path of the random-weight demo CLIP (created on first use)."""
    DEMO_DIR = _demo_dir()
    if os.path.exists(os.path.join(DEMO_DIR, "model.safetensors")):
        return DEMO_DIR
    os.makedirs(DEMO_DIR, exist_ok=True)
    rng = np.random.default_rng(1234)
    V, Dt, Dv, P, L, S, p = 49408, 64, 64, 32, 2, 224, 32
    cfg = {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": P,
           "text_config": {"hidden_size": Dt, "intermediate_size": 4 * Dt, "num_hidden_layers": L,
                           "num_attention_heads": 4, "max_position_embeddings": 77, "vocab_size": V,
                           "eos_token_id": 2},
           "vision_config": {"hidden_size": Dv, "intermediate_size": 4 * Dv, "num_hidden_layers": L,
                             "num_attention_heads": 4, "image_size": S, "patch_size": p}}
    t = {}

    def lin(name, o, i, bias=True):
        t[name + ".weight"] = rng.standard_normal((o, i)) / np.sqrt(i)
        if bias:
            t[name + ".bias"] = rng.standard_normal(o) * 0.02

    def ln(name, d):
        t[name + ".weight"] = 1 + rng.standard_normal(d) * 0.05
        t[name + ".bias"] = rng.standard_normal(d) * 0.05

    for tower, D in (("vision_model", Dv), ("text_model", Dt)):
        for i in range(L):
            pre = f"{tower}.encoder.layers.{i}"
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                lin(f"{pre}.self_attn.{proj}", D, D)
            ln(f"{pre}.layer_norm1", D)
            ln(f"{pre}.layer_norm2", D)
            lin(f"{pre}.mlp.fc1", 4 * D, D)
            lin(f"{pre}.mlp.fc2", D, 4 * D)
    t["vision_model.embeddings.patch_embedding.weight"] = rng.standard_normal((Dv, 3, p, p)) / np.sqrt(3 * p * p)
    t["vision_model.embeddings.class_embedding"] = rng.standard_normal(Dv) * 0.1
    t["vision_model.embeddings.position_embedding.weight"] = rng.standard_normal(((S // p) ** 2 + 1, Dv)) * 0.1
    ln("vision_model.pre_layrnorm", Dv)
    ln("vision_model.post_layernorm", Dv)
    t["text_model.embeddings.token_embedding.weight"] = rng.standard_normal((V, Dt)) * 0.1
    t["text_model.embeddings.position_embedding.weight"] = rng.standard_normal((77, Dt)) * 0.1
    ln("text_model.final_layer_norm", Dt)
    lin("visual_projection", P, Dv, bias=False)
    lin("text_projection", P, Dt, bias=False)
    t["logit_scale"] = np.array(np.log(100.0))
    _write_safetensors(os.path.join(DEMO_DIR, "model.safetensors"), t)
    with open(os.path.join(DEMO_DIR, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    with open(os.path.join(DEMO_DIR, "preprocessor_config.json"), "w") as f:
        json.dump({"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": S},
                   "crop_size": {"height": S, "width": S}, "do_center_crop": True, "resample": 3,
                   "do_convert_rgb": True}, f, indent=1)
    shutil.copy(os.path.join(os.path.dirname(__file__), "data", "bpe_simple_vocab_16e6.txt.gz"), DEMO_DIR)
    with open(os.path.join(DEMO_DIR, "README.md"), "w") as f:
        f.write("mmsuite demo checkpoint: CLIP layout, OpenAI vocabulary, RANDOM weights (not a trained model).\n")
    return DEMO_DIR
