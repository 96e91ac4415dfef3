#!/usr/bin/env python3
"""Generate extra tiny random-weight conformance cases (CLIP / SigLIP / OpenCLIP).

The cases use exactly the layout and ``case.json`` schema (schema_version 1) of the shared
golden data in ``shared/conformance`` (see its README.md): one directory per case with
``case.json``, ``model/`` (checkpoint + configs), the input images and ``.npy`` inputs /
outputs, the same file names, roles and tolerance dicts as ``clip/tiny_quickgelu`` and
``siglip/tiny_model``.

Cases written under ``tests/data/conformance/<family>/<case>/``:

* ``clip/tiny_gelu_firsteos_bf16_sharded`` -- CLIPModel, exact GELU, ``eos_token_id`` != 2
  (pooling = FIRST position holding the EOS id; padding reuses the EOS id), 3 images x 3 texts,
  checkpoint stored in bfloat16 and sharded; the reference runs that bf16 checkpoint upcast to fp32.
* ``siglip/tiny_mask_batch3`` -- SiglipModel, batch 3, attention_mask passed to the text tower.
* ``openclip/tiny_vit`` -- an ``open_clip`` ``CLIP`` (ViT, exact GELU) saved in OpenCLIP's HF-hub
  layout (``open_clip_config.json`` + ``open_clip_model.safetensors``).

Everything is deterministic: weights and inputs come from seeded numpy generators, every
parameter (norms, biases, class embedding, positions, probe, logit scale/bias included) is
re-randomized, and the reference runs in float32, eager attention, on CPU.  After writing,
each case is reloaded from disk and re-run, and the outputs are compared with the stored ones
(plus independent checks: bf16 bits, float64 re-run, OpenCLIP -> HF CLIP weight mapping).

Usage::

    python tools/make_fixtures.py                 # (re)generate all cases, then self-check
    python tools/make_fixtures.py --only openclip # one family
    python tools/make_fixtures.py --check-only    # only re-run the self-check on existing cases

Requires torch, transformers, numpy, Pillow, safetensors and, for the OpenCLIP case,
``open_clip_torch`` (a dev/test-only reference; ``pip install --no-deps open_clip_torch``: its
``timm`` dependency imports torchvision and is not needed for a ViT tower).  ``open_clip``'s package ``__init__`` imports
torchvision; when torchvision is missing (the CPU venv has none: PyPI only ships CUDA-linked
torchvision wheels, which do not load against the CPU torch build) the script imports only the
``open_clip.model`` nn.Modules and reimplements the eval image transform (torchvision
semantics, documented in the case).  When a working torchvision is importable it also
cross-checks against ``open_clip.create_model('local-dir:...')`` and ``open_clip``'s own
preprocess transform.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import importlib.machinery
import importlib.util
import json
import os
import shutil
import struct
import sys
import types
from pathlib import Path

import numpy as np
import PIL
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "data" / "conformance"

SCHEMA_VERSION = 1

# Tolerance dicts: identical to shared/conformance (clip/tiny_quickgelu, siglip/tiny_model).
TOL_SCALED = {
    "kind": "scaled_max_abs",
    "rtol": 0.0001,
    "rule": "max|got-ref| <= rtol * max(max|ref|, 1e-6) over the valid elements",
}
TOL_PIX = {
    "kind": "max_abs",
    "atol": 1e-05,
    "rule": "max|got-ref| <= atol (assumes the resize step is bit-exact, see *_u8 intermediates)",
}
TOL_EXACT = {"kind": "exact", "rule": "every element equal"}
TOL_U8 = {
    "kind": "exact",
    "rule": "bit-exact PIL bicubic; an engine with its own bicubic should report the max level difference (expect <= 1-2)",
}

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]

# float64 re-run must agree with the float32 reference to this scaled error (README: ~1e-6).
F64_BUDGET = 1e-5


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(msg, flush=True)


def fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def to_np(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu()
        if t.dtype == torch.bfloat16:
            t = t.float()
        return t.numpy()
    return np.asarray(t)


def save_npy(case_dir: Path, name: str, arr) -> np.ndarray:
    arr = to_np(arr)
    if arr.dtype.kind == "f":
        arr = arr.astype("<f4")
    elif arr.dtype.kind in "iu" and arr.dtype != np.uint8:
        arr = arr.astype("<i8")
    arr = np.ascontiguousarray(arr)
    np.save(case_dir / name, arr, allow_pickle=False)
    return arr


def npy_entry(arr: np.ndarray, role: str, description: str, produced_by: str, tolerance=None, **extra) -> dict:
    e = {
        "role": role,
        "shape": list(arr.shape),
        "dtype": str(arr.dtype),
        "description": description,
        "produced_by": produced_by,
    }
    if tolerance is not None:
        e["tolerance"] = dict(tolerance)
    e.update(extra)
    return e


def scaled_err(got: np.ndarray, ref: np.ndarray, mask=None) -> float:
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    if mask is not None:
        m = np.broadcast_to(np.asarray(mask, bool)[..., None], ref.shape) if ref.ndim == mask.ndim + 1 else np.asarray(mask, bool)
        got, ref = got[m], ref[m]
    return float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-6))


def file_bytes(path: Path) -> int:
    return path.stat().st_size


def reference_block(extra: dict | None = None) -> dict:
    import transformers

    ref = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "attn_implementation": "eager",
        "compute_dtype": "float32",
        "device": "cpu",
    }
    if extra:
        ref.update(extra)
    return ref


def finish_case(case_dir: Path, case: dict) -> None:
    """Fill `bytes` for non-npy files, total size, and write case.json."""
    for rel, e in case["files"].items():
        p = case_dir / rel
        assert p.is_file(), f"missing {p}"
        if not rel.endswith(".npy"):
            e["bytes"] = file_bytes(p)
    listed = set(case["files"]) | {"case.json"}
    on_disk = {str(p.relative_to(case_dir)) for p in case_dir.rglob("*") if p.is_file()}
    unlisted = sorted(on_disk - listed)
    assert not unlisted, f"files not described in case.json: {unlisted}"
    for p in case_dir.rglob("*"):
        if p.is_file():
            p.chmod(0o644)  # save_pretrained / safetensors write some files 0600
    total = sum(file_bytes(case_dir / r) for r in case["files"])
    case["approx_case_bytes"] = total
    with open(case_dir / "case.json", "w") as f:
        json.dump(case, f, indent=1)
        f.write("\n")


# --------------------------------------------------------------------------------------------
# deterministic inputs
# --------------------------------------------------------------------------------------------


def make_image(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A smooth-ish synthetic RGB picture (gradients, a disc, a bar, mild noise), HWC uint8."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = xx / max(w - 1, 1), yy / max(h - 1, 1)
    img = np.zeros((h, w, 3))
    for c in range(3):
        a, b, c0 = rng.uniform(-1, 1, 3)
        fx, fy, ph = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 2 * np.pi)
        img[..., c] = 0.5 + 0.25 * (a * u + b * v + c0 * u * v) + 0.15 * np.sin(2 * np.pi * (fx * u + fy * v) + ph)
    cx, cy, r = rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.75), rng.uniform(0.12, 0.3)
    disc = (u - cx) ** 2 + (v - cy) ** 2 < r * r
    img[disc] = rng.uniform(0, 1, 3)
    x0 = int(rng.integers(0, max(w // 2, 1)))
    img[:, x0 : x0 + max(w // 8, 2)] = 0.5 * img[:, x0 : x0 + max(w // 8, 2)] + 0.5 * rng.uniform(0, 1, 3)
    img += rng.normal(0, 0.03, img.shape)
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def write_pngs(case_dir: Path, rng: np.random.Generator, sizes_wh, prefix="img") -> list:
    names = []
    for i, (w, h) in enumerate(sizes_wh):
        name = f"{prefix}{i}_{w}x{h}.png"
        Image.fromarray(make_image(rng, w, h), "RGB").save(case_dir / name, format="PNG")
        names.append(name)
    return names


def png_entry(name: str, w: int, h: int) -> dict:
    return {
        "role": "input",
        "description": f"synthetic input image {w}x{h} (W x H) written by tools/make_fixtures.py "
        "(numpy gradients/disc/bar + noise, PIL PNG, mode RGB). Decode with PIL Image.open(...).convert('RGB').",
        "decoded_mode": "RGB",
        "size_wh": [w, h],
    }


def rescale_normalize(u8_hwc: np.ndarray, mean, std) -> np.ndarray:
    """transformers' rescale (float64 * 1/255 -> float32) then float32 normalize, HWC -> CHW."""
    x = (u8_hwc.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return x.transpose(2, 0, 1)


# --------------------------------------------------------------------------------------------
# weight re-randomization
# --------------------------------------------------------------------------------------------


def _normal(rng, shape, std, mean=0.0) -> torch.Tensor:
    return torch.from_numpy(np.asarray(mean + std * rng.standard_normal(tuple(shape)), dtype=np.float32))


def randomize_(model: torch.nn.Module, rng: np.random.Generator, special: dict | None = None) -> list:
    """Re-randomize EVERY parameter of `model` in place (deterministic order: named_parameters()).

    Rules (fan_in = input features):  Linear/conv weights N(0, 1/sqrt(fan_in)), except q/k
    projections (and the q|k rows of packed in_proj weights) N(0, 2/sqrt(fan_in)) so attention is
    far from uniform; biases N(0, 0.1); LayerNorm weight 1 + N(0, 0.15), bias N(0, 0.1);
    token/position embeddings N(0, 0.2); class embedding / probe N(0, 0.3); `x @ proj` style
    projection matrices [in, out] N(0, 1/sqrt(in)).  `special` maps a parameter name to a
    callable(shape) -> tensor (used for logit_scale / logit_bias).
    """
    special = special or {}
    owner = {}
    for mname, mod in model.named_modules():
        for pname, _ in mod.named_parameters(recurse=False):
            owner[f"{mname}.{pname}" if mname else pname] = (mod, pname)
    done = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            mod, pname = owner[name]
            shape = tuple(p.shape)
            if name in special:
                new = special[name](shape)
            elif isinstance(mod, torch.nn.LayerNorm):
                new = _normal(rng, shape, 0.15, 1.0) if pname == "weight" else _normal(rng, shape, 0.1)
            elif isinstance(mod, torch.nn.Embedding):
                new = _normal(rng, shape, 0.2)
            elif isinstance(mod, torch.nn.MultiheadAttention) and pname == "in_proj_weight":
                d3, d = shape
                std = np.ones((d3, 1)) / np.sqrt(d)
                std[: 2 * d3 // 3] *= 2.0  # q and k rows
                new = torch.from_numpy((rng.standard_normal(shape) * std).astype(np.float32))
            elif isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d)) and pname == "weight":
                fan_in = int(np.prod(shape[1:]))
                scale = 2.0 if any(k in name for k in ("q_proj", "k_proj")) else 1.0
                new = _normal(rng, shape, scale / np.sqrt(fan_in))
            elif pname.endswith("bias"):
                new = _normal(rng, shape, 0.1)
            elif "class_embedding" in name or "probe" in name:
                new = _normal(rng, shape, 0.3)
            elif "position" in name:
                new = _normal(rng, shape, 0.2)
            elif len(shape) == 2:  # open_clip `visual.proj` / `text_projection`: x @ P, P is [in, out]
                new = _normal(rng, shape, 1.0 / np.sqrt(shape[0]))
            else:
                raise ValueError(f"no randomization rule for parameter {name} {shape} ({type(mod).__name__})")
            assert tuple(new.shape) == shape, name
            p.copy_(new.to(p.dtype))
            done.append(name)
    assert len(done) == len(list(model.parameters())), "some parameters were not re-randomized"
    return done


def logit_params(rng, scale_mean=2.3, bias_mean=None):
    sp = {"logit_scale": lambda shape: _normal(rng, shape, 0.15, scale_mean)}
    if bias_mean is not None:
        sp["logit_bias"] = lambda shape: _normal(rng, shape, 0.3, bias_mean)
    return sp


# --------------------------------------------------------------------------------------------
# safetensors reading without torch (checks the stored bits, README "Checkpoints")
# --------------------------------------------------------------------------------------------


def read_safetensors_np(path: Path) -> dict:
    """Minimal safetensors reader: F32 as is, BF16 upcast by `bits << 16`."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        buf = raw[base + b : base + e]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(buf, "<u2").astype(np.uint32) << 16
            arr = bits.view("<f4")
        elif info["dtype"] == "F32":
            arr = np.frombuffer(buf, "<f4")
        else:
            raise ValueError(info["dtype"])
        out[name] = arr.reshape(info["shape"]).copy()
    return out


def read_hf_checkpoint_np(model_dir: Path) -> tuple[dict, list]:
    idx = model_dir / "model.safetensors.index.json"
    if idx.exists():
        wm = json.loads(idx.read_text())["weight_map"]
        shards = sorted(set(wm.values()))
    else:
        shards = ["model.safetensors"]
    tensors = {}
    for s in shards:
        tensors.update(read_safetensors_np(model_dir / s))
    return tensors, shards


# ============================================================================================
# 1. CLIP: exact GELU, first-EOS pooling, bf16 sharded checkpoint
# ============================================================================================

CLIP_FAMILY, CLIP_CASE, CLIP_SEED = "clip", "tiny_gelu_firsteos_bf16_sharded", 4101
CLIP_EOS, CLIP_BOS, CLIP_VOCAB, CLIP_L = 57, 318, 320, 14
CLIP_IMAGES_WH = [(48, 40), (37, 53), (29, 35)]
CLIP_SHARD = "100KB"


def clip_config():
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config=dict(
            vocab_size=CLIP_VOCAB, hidden_size=48, intermediate_size=96, num_attention_heads=4,
            num_hidden_layers=2, max_position_embeddings=16, hidden_act="gelu",
            bos_token_id=CLIP_BOS, eos_token_id=CLIP_EOS, pad_token_id=CLIP_EOS, projection_dim=24,
        ),
        vision_config=dict(
            hidden_size=32, intermediate_size=80, num_attention_heads=4, num_hidden_layers=2,
            image_size=32, patch_size=8, hidden_act="gelu", projection_dim=24,
        ),
        projection_dim=24,
    )


def clip_texts(rng):
    lengths = [4, 8, 12]  # content tokens per text; + BOS + EOS
    ids = np.full((3, CLIP_L), CLIP_EOS, np.int64)  # padding reuses the EOS id
    mask = np.zeros((3, CLIP_L), np.int64)
    pool = []
    for i, n in enumerate(lengths):
        pool_choices = np.array([t for t in range(3, CLIP_BOS) if t != CLIP_EOS])
        content = rng.choice(pool_choices, n, replace=True)
        content[rng.integers(0, n)] = rng.integers(CLIP_EOS + 100, CLIP_BOS)  # an id > EOS in every text
        row = np.concatenate([[CLIP_BOS], content, [CLIP_EOS]])
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
        pool.append(len(row) - 1)
    return ids, mask, np.array(pool, np.int64)


def clip_load(model_dir: Path):
    from transformers import CLIPModel

    m = CLIPModel.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    assert all(p.dtype == torch.float32 for p in m.parameters())
    return m


@torch.no_grad()
def clip_run(model, inputs: dict) -> dict:
    pv = torch.from_numpy(inputs["pixel_values"]).to(next(model.parameters()).dtype)
    ids = torch.from_numpy(inputs["input_ids"])
    am = torch.from_numpy(inputs["attention_mask"])
    out = model(input_ids=ids, pixel_values=pv, attention_mask=am)
    # transformers 5.x: CLIPModel.get_*_features overwrite pooler_output with the PROJECTED
    # embedding, so the un-projected pooled states come from the towers themselves.
    vis = model.vision_model(pixel_values=pv)
    txt = model.text_model(input_ids=ids, attention_mask=am)
    assert torch.equal(vis.last_hidden_state, out.vision_model_output.last_hidden_state)
    assert torch.equal(txt.last_hidden_state, out.text_model_output.last_hidden_state)
    img_un = model.visual_projection(vis.pooler_output)
    txt_un = model.text_projection(txt.pooler_output)
    assert torch.allclose(img_un, out.vision_model_output.pooler_output, rtol=0, atol=1e-6)
    assert torch.allclose(txt_un, out.text_model_output.pooler_output, rtol=0, atol=1e-6)
    return {
        "vision_last_hidden_state": vis.last_hidden_state,
        "vision_pooler_output": vis.pooler_output,
        "image_embeds_unnormalized": img_un,
        "image_embeds": out.image_embeds,
        "text_last_hidden_state": txt.last_hidden_state,
        "text_pooler_output": txt.pooler_output,
        "text_embeds_unnormalized": txt_un,
        "text_embeds": out.text_embeds,
        "logits_per_image": out.logits_per_image,
        "logits_per_text": out.logits_per_text,
        "logit_scale": model.logit_scale.reshape(1),
    }


def make_clip(out_root: Path) -> Path:
    from transformers import CLIPImageProcessor, CLIPModel

    d = fresh_dir(out_root / CLIP_FAMILY / CLIP_CASE)
    md = d / "model"
    rng = np.random.default_rng(CLIP_SEED)
    torch.manual_seed(CLIP_SEED)

    cfg = clip_config()
    model = CLIPModel(cfg).eval()
    randomize_(model, rng, logit_params(rng, 2.3))
    resolved = model.config.to_dict()
    model.to(torch.bfloat16)
    model.save_pretrained(md, max_shard_size=CLIP_SHARD)  # transformers 5.x always writes safetensors
    tensors, shards = read_hf_checkpoint_np(md)
    assert len(shards) >= 2, shards
    resolved["dtype"] = "bfloat16"
    (d / "model_config_resolved.json").write_text(json.dumps(resolved, indent=2, sort_keys=True) + "\n")

    proc = CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, do_convert_rgb=True,
        image_mean=OPENAI_MEAN, image_std=OPENAI_STD, resample=3,
    )
    proc.save_pretrained(md)
    proc_name = type(proc).__name__

    images = write_pngs(d, rng, CLIP_IMAGES_WH)
    proc2 = CLIPImageProcessor.from_pretrained(md)
    pv = proc2(images=[Image.open(d / f) for f in images], return_tensors="np").pixel_values
    pv = save_npy(d, "pixel_values.npy", pv)
    pv_re = proc2(images=[Image.open(d / f).convert("RGB") for f in images], return_tensors="np").pixel_values
    pv_re = save_npy(d, "pixel_values_recomputed.npy", pv_re)
    assert np.array_equal(pv, pv_re)

    u8_entries = {}
    geo = {}
    for i, f in enumerate(images):
        im = Image.open(d / f).convert("RGB")
        w, h = im.size
        s = 32
        nw, nh = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
        r = np.asarray(im.resize((nw, nh), Image.BICUBIC))
        top, left = (nh - s) // 2, (nw - s) // 2
        u8 = r[top : top + s, left : left + s]
        assert np.max(np.abs(rescale_normalize(u8, OPENAI_MEAN, OPENAI_STD) - pv[i])) <= 1e-6, f
        stem = f[:-4]
        name = f"{stem}.resized_cropped_u8.npy"
        save_npy(d, name, u8)
        u8_entries[name] = npy_entry(
            u8, "intermediate", f"{f} after resize+center-crop, before rescale/normalize, HWC uint8",
            "PIL Image.resize((w, h), BICUBIC) with short side -> 32, long = int(32*long/short); crop top=(H-32)//2, left=(W-32)//2",
            TOL_U8, resize_hw=[nh, nw], crop_top_left=[top, left],
        )
        geo[f] = {"resize_hw": [nh, nw], "crop_top_left": [top, left]}

    ids, am, pool = clip_texts(rng)
    np_ids = save_npy(d, "input_ids.npy", ids)
    np_am = save_npy(d, "attention_mask.npy", am)
    # sanity: the three pooling rules disagree on every padded text
    first_eos = (ids == CLIP_EOS).argmax(-1)
    assert np.array_equal(first_eos, pool)
    assert np.all(ids.argmax(-1) != first_eos), "argmax pooling must differ from first-EOS pooling"
    save_npy(d, "text_pool_index.npy", pool)

    # reference: the saved bf16 checkpoint, upcast to fp32
    ref = clip_load(md)
    sd = ref.state_dict()
    for k, v in tensors.items():
        assert np.array_equal(sd[k].numpy(), v), f"fp32 model weight {k} != bf16 checkpoint bits << 16"
    inputs = {"pixel_values": np_pv(d), "input_ids": np_ids, "attention_mask": np_am}
    outs = {k: to_np(v) for k, v in clip_run(ref, inputs).items()}
    assert np.array_equal(outs["text_pooler_output"], outs["text_last_hidden_state"][np.arange(3), pool])
    f64 = f64_check(ref, clip_run, inputs, masks={"text_last_hidden_state": am})
    check_logits(outs["logits_per_image"])

    P = "CLIPModel.from_pretrained('model', dtype=torch.float32, attn_implementation='eager')"
    call = f"{P}(input_ids, pixel_values, attention_mask)"
    files = {
        "model/config.json": {"role": "model", "description": "CLIPConfig (text_config + vision_config + projection_dim), written by transformers 5.x save_pretrained: top level holds only non-default keys, but the sub-configs are written with all their keys; 'dtype': 'bfloat16'"},
        "model/model.safetensors.index.json": {"role": "model", "description": "shard index: {'metadata': {'total_parameters', 'total_size'}, 'weight_map': name -> shard file}"},
    }
    for s in shards:
        files[f"model/{s}"] = {"role": "model", "description": f"weights shard (safetensors, BF16) written by save_pretrained(max_shard_size='{CLIP_SHARD}') after model.to(torch.bfloat16)"}
    files["model/preprocessor_config.json"] = {"role": "model", "description": f"image processor config written by CLIPImageProcessor.save_pretrained (instance class {proc_name})"}
    files["model_config_resolved.json"] = {"role": "config", "description": f"convenience: model.config.to_dict() -- every config key with transformers {transformers_version()} defaults filled in"}
    for f, (w, h) in zip(images, CLIP_IMAGES_WH):
        files[f] = png_entry(f, w, h)
    files["input_ids.npy"] = npy_entry(np_ids, "input", f"text token ids (arbitrary ids; BOS={CLIP_BOS} first, EOS={CLIP_EOS} after the content, right-padded with the EOS id; the largest id of each text is NOT the EOS)", "generator")
    files["attention_mask.npy"] = npy_entry(np_am, "input", "text attention mask (1 = real token, incl. BOS and the first EOS)", "generator")
    files["pixel_values.npy"] = npy_entry(pv, "input", "images after the saved CLIPImageProcessor (model/preprocessor_config.json)", "CLIPImageProcessor.from_pretrained('model')(images=[PIL.Image.open(f) ...], return_tensors='np').pixel_values", TOL_PIX)
    files["pixel_values_recomputed.npy"] = npy_entry(pv_re, "check", "processor re-run on the case images (must equal pixel_values.npy)", "CLIPImageProcessor(...)(images)", TOL_PIX)
    files.update(u8_entries)
    files["text_pool_index.npy"] = npy_entry(pool, "intermediate", "position whose final hidden state is pooled, per text (FIRST position with input_ids == eos_token_id)", "see semantics.text_pooling", TOL_EXACT)
    desc = {
        "vision_last_hidden_state": ("vision encoder output (CLS first; NO post_layernorm)", f"{P}.vision_model(pixel_values).last_hidden_state (== {call}.vision_model_output.last_hidden_state)"),
        "vision_pooler_output": ("post_layernorm(CLS)", f"{P}.vision_model(pixel_values).pooler_output (NOT {call}.vision_model_output.pooler_output, which transformers 5.x overwrites with the projection)"),
        "image_embeds_unnormalized": ("visual_projection(pooler) (== get_image_features)", "model.visual_projection(pooler_output) (== transformers 5.x model.get_image_features(pixel_values).pooler_output)"),
        "image_embeds": ("L2-normalized image embeds", f"{call}.image_embeds"),
        "text_last_hidden_state": ("text tower output after final_layer_norm", f"{call}.text_model_output.last_hidden_state"),
        "text_pooler_output": ("final hidden state at text_pool_index", f"{P}.text_model(input_ids, attention_mask).pooler_output"),
        "text_embeds_unnormalized": ("text_projection(pooler) (== get_text_features)", "model.text_projection(pooler_output) (== transformers 5.x model.get_text_features(...).pooler_output)"),
        "text_embeds": ("L2-normalized text embeds", f"{call}.text_embeds"),
        "logits_per_image": ("[n_images, n_texts]", f"{call}.logits_per_image"),
        "logits_per_text": ("[n_texts, n_images]", f"{call}.logits_per_text"),
    }
    for k, (de, pb) in desc.items():
        arr = save_npy(d, f"{k}.npy", outs[k])
        extra = {"valid_mask": "attention_mask.npy (positions with mask 0 are unspecified)"} if k == "text_last_hidden_state" else {}
        files[f"{k}.npy"] = npy_entry(arr, "output", de, pb, TOL_SCALED, **extra)
    arr = save_npy(d, "logit_scale.npy", outs["logit_scale"])
    files["logit_scale.npy"] = npy_entry(arr, "intermediate", "raw logit_scale parameter (a bf16 value; logits use exp of it)", "model.logit_scale", TOL_EXACT)

    case = {
        "schema_version": SCHEMA_VERSION,
        "family": CLIP_FAMILY,
        "case": CLIP_CASE,
        "reference": reference_block(),
        "model": {"dir": "model", "cls": "CLIPModel", "checkpoint_dtype": "bfloat16", "sharded": True},
        "semantics": {
            "text_pooling": f"first-eos: pooled position = FIRST position where input_ids == text_config.eos_token_id ({CLIP_EOS}), because eos_token_id != 2; padding reuses the EOS id, so 'first' matters, and the largest id of each text (BOS {CLIP_BOS} / a content id) is NOT the EOS, so argmax pooling would be wrong",
            "text_attention": "causal mask AND padding mask (attention_mask) in the text tower",
            "vision": "patch conv (no bias) + CLS + learned positions -> pre_layrnorm -> encoder -> CLS -> post_layernorm",
            "hidden_act": "gelu (exact erf GELU) in BOTH towers (quick_gelu = x*sigmoid(1.702x) would be wrong)",
            "layer_norm_eps": 1e-05,
            "embeds": "image_embeds/text_embeds = projection(pooled) / L2 norm; logits_per_image = exp(logit_scale) * img @ txt.T",
            "projection_dim": "projection_dim = text_config.projection_dim = vision_config.projection_dim = 24 (the sub-config values are set explicitly; CLIPModel uses the top-level one)",
            "checkpoint": f"BF16 safetensors in {len(shards)} shards (model.safetensors.index.json weight_map); the reference loaded this checkpoint with dtype=float32, i.e. every weight is exactly the bf16 value upcast (bits << 16) -- use the stored bf16 weights, computing in fp32",
        },
        "run": {
            "images": images,
            "weight_seed": CLIP_SEED,
            "pass_attention_mask": True,
            "float64_max_scaled_diff": f64,
            "image_geometry": geo,
        },
        "files": files,
    }
    finish_case(d, case)
    return d


def np_pv(d: Path) -> np.ndarray:
    return np.load(d / "pixel_values.npy")


def transformers_version() -> str:
    import transformers

    return transformers.__version__


def check_logits(logits: np.ndarray) -> None:
    assert np.all(np.isfinite(logits))
    assert 0.05 < float(np.std(logits)) and float(np.max(np.abs(logits))) < 60, logits


def f64_check(model, run_fn, inputs, masks=None) -> float:
    """Re-run in float64; return the worst scaled diff (must be far below the 1e-4 tolerance)."""
    masks = masks or {}
    o32 = {k: to_np(v) for k, v in run_fn(model, inputs).items()}
    m64 = copy.deepcopy(model).double()
    i64 = {k: (v.astype(np.float64) if v.dtype.kind == "f" else v) for k, v in inputs.items()}
    o64 = {k: to_np(v) for k, v in run_fn(m64, i64).items()}
    worst = 0.0
    for k in o32:
        worst = max(worst, scaled_err(o32[k], o64[k], masks.get(k)))
    assert worst < F64_BUDGET, f"float64 re-run moved outputs by {worst}"
    return float(f"{worst:.3g}")


# ============================================================================================
# 2. SigLIP: batch 3 with a text attention_mask
# ============================================================================================

SIG_FAMILY, SIG_CASE, SIG_SEED = "siglip", "tiny_mask_batch3", 4201
SIG_L, SIG_VOCAB, SIG_EOS, SIG_PAD = 12, 256, 2, 1
SIG_IMAGES_WH = [(44, 36), (32, 48), (40, 40)]


def siglip_config():
    from transformers import SiglipConfig

    return SiglipConfig(
        text_config=dict(
            vocab_size=SIG_VOCAB, hidden_size=48, intermediate_size=96, num_attention_heads=4,
            num_hidden_layers=2, max_position_embeddings=SIG_L, bos_token_id=254, eos_token_id=SIG_EOS,
            pad_token_id=SIG_PAD,
        ),
        vision_config=dict(
            hidden_size=48, intermediate_size=80, num_attention_heads=4, num_hidden_layers=2,
            image_size=32, patch_size=8,
        ),
    )


def siglip_load(model_dir: Path):
    from transformers import SiglipModel

    return SiglipModel.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()


@torch.no_grad()
def siglip_run(model, inputs: dict) -> dict:
    pv = torch.from_numpy(inputs["pixel_values"]).to(next(model.parameters()).dtype)
    ids = torch.from_numpy(inputs["input_ids"])
    am = torch.from_numpy(inputs["attention_mask"]) if "attention_mask" in inputs else None
    out = model(input_ids=ids, pixel_values=pv, attention_mask=am)
    v, t = out.vision_model_output, out.text_model_output
    return {
        "vision_last_hidden_state": v.last_hidden_state,
        "vision_pooler_output": v.pooler_output,
        "text_last_hidden_state": t.last_hidden_state,
        "text_pooler_output": t.pooler_output,
        "image_embeds": out.image_embeds,
        "text_embeds": out.text_embeds,
        "logits_per_image": out.logits_per_image,
        "logits_per_text": out.logits_per_text,
        "logit_scale_bias": torch.cat([model.logit_scale.reshape(1), model.logit_bias.reshape(1)]),
    }


def make_siglip(out_root: Path) -> Path:
    from transformers import SiglipImageProcessor, SiglipModel

    d = fresh_dir(out_root / SIG_FAMILY / SIG_CASE)
    md = d / "model"
    rng = np.random.default_rng(SIG_SEED)
    torch.manual_seed(SIG_SEED)
    model = SiglipModel(siglip_config()).eval()
    randomize_(model, rng, logit_params(rng, 2.3, bias_mean=-1.0))
    model.save_pretrained(md)
    assert (md / "model.safetensors").exists() and not (md / "model.safetensors.index.json").exists()
    (d / "model_config_resolved.json").write_text(json.dumps(model.config.to_dict(), indent=2, sort_keys=True) + "\n")

    proc = SiglipImageProcessor(size={"height": 32, "width": 32}, resample=3, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    proc.save_pretrained(md)
    proc_name = type(proc).__name__
    images = write_pngs(d, rng, SIG_IMAGES_WH)
    proc2 = SiglipImageProcessor.from_pretrained(md)
    pv = save_npy(d, "pixel_values.npy", proc2(images=[Image.open(d / f) for f in images], return_tensors="np").pixel_values)
    pv_re = save_npy(d, "pixel_values_recomputed.npy", proc2(images=[Image.open(d / f) for f in images], return_tensors="np").pixel_values)
    assert np.array_equal(pv, pv_re)
    u8_entries = {}
    for i, f in enumerate(images):
        u8 = np.asarray(Image.open(d / f).convert("RGB").resize((32, 32), Image.BICUBIC))
        assert np.max(np.abs(rescale_normalize(u8, [0.5] * 3, [0.5] * 3) - pv[i])) <= 1e-6, f
        name = f"{f[:-4]}.resized_u8.npy"
        save_npy(d, name, u8)
        u8_entries[name] = npy_entry(u8, "intermediate", f"{f} after the resize to exactly 32x32, before rescale/normalize, HWC uint8", "PIL Image.resize((32, 32), BICUBIC)", TOL_U8)

    lengths = [5, 8, 11]  # content tokens; + EOS; pad to 12 with PAD
    ids = np.full((3, SIG_L), SIG_PAD, np.int64)
    am = np.zeros((3, SIG_L), np.int64)
    for i, n in enumerate(lengths):
        row = np.concatenate([rng.integers(3, SIG_VOCAB, n), [SIG_EOS]])
        ids[i, : len(row)] = row
        am[i, : len(row)] = 1
    np_ids = save_npy(d, "input_ids.npy", ids)
    np_am = save_npy(d, "attention_mask.npy", am)

    ref = siglip_load(md)
    inputs = {"pixel_values": pv, "input_ids": np_ids, "attention_mask": np_am}
    outs = {k: to_np(v) for k, v in siglip_run(ref, inputs).items()}
    nomask = {k: to_np(v) for k, v in siglip_run(ref, {"pixel_values": pv, "input_ids": np_ids}).items()}
    for r in range(2):  # padded rows: the mask must change the pooled output
        assert scaled_err(outs["text_pooler_output"][r], nomask["text_pooler_output"][r]) > 1e-2
    assert np.allclose(outs["text_pooler_output"][2], nomask["text_pooler_output"][2], atol=1e-5)
    f64 = f64_check(ref, siglip_run, inputs)
    check_logits(outs["logits_per_image"])

    P = "SiglipModel.from_pretrained('model', dtype=torch.float32, attn_implementation='eager')(input_ids, pixel_values, attention_mask=attention_mask)"
    files = {
        "model/config.json": {"role": "model", "description": "SiglipConfig (transformers 5.x save_pretrained: sub-configs written with all their keys)"},
        "model/model.safetensors": {"role": "model", "description": "weights (safetensors, F32) written by save_pretrained"},
        "model/preprocessor_config.json": {"role": "model", "description": f"image processor config written by SiglipImageProcessor.save_pretrained (instance class {proc_name})"},
        "model_config_resolved.json": {"role": "config", "description": f"convenience: model.config.to_dict() -- every config key with transformers {transformers_version()} defaults filled in"},
    }
    for f, (w, h) in zip(images, SIG_IMAGES_WH):
        files[f] = png_entry(f, w, h)
    files["input_ids.npy"] = npy_entry(np_ids, "input", f"text ids: content, EOS {SIG_EOS}, right-padded to max_position_embeddings={SIG_L} with pad id {SIG_PAD}; the third text fills all {SIG_L} positions (no padding)", "generator")
    files["attention_mask.npy"] = npy_entry(np_am, "input", "text attention mask passed to the text tower (1 = content/EOS, 0 = padding keys are masked)", "generator")
    files["pixel_values.npy"] = npy_entry(pv, "input", "images after the saved SiglipImageProcessor", "SiglipImageProcessor.from_pretrained('model')(images=[...], return_tensors='np').pixel_values", TOL_PIX)
    files["pixel_values_recomputed.npy"] = npy_entry(pv_re, "check", "processor re-run on the case images", "SiglipImageProcessor", TOL_PIX)
    files.update(u8_entries)
    desc = {
        "vision_last_hidden_state": ("vision tower output AFTER post_layernorm", f"{P}.vision_model_output.last_hidden_state"),
        "vision_pooler_output": ("MAP head output (== get_image_features)", f"{P}.vision_model_output.pooler_output"),
        "text_last_hidden_state": ("text tower output after final_layer_norm; ALL positions are specified (padded query rows attend to the unmasked keys, and position -1 is pooled)", f"{P}.text_model_output.last_hidden_state"),
        "text_pooler_output": ("head(last position) (== get_text_features); position -1 is padding for texts 0 and 1", f"{P}.text_model_output.pooler_output"),
        "image_embeds": ("L2-normalized pooled image features", f"{P}.image_embeds"),
        "text_embeds": ("L2-normalized pooled text features", f"{P}.text_embeds"),
        "logits_per_image": ("[n_images, n_texts]", f"{P}.logits_per_image"),
        "logits_per_text": ("[n_texts, n_images]", f"{P}.logits_per_text"),
    }
    for k, (de, pb) in desc.items():
        arr = save_npy(d, f"{k}.npy", outs[k])
        files[f"{k}.npy"] = npy_entry(arr, "output", de, pb, TOL_SCALED)
    arr = save_npy(d, "logit_scale_bias.npy", outs["logit_scale_bias"])
    files["logit_scale_bias.npy"] = npy_entry(arr, "intermediate", "[logit_scale, logit_bias] raw parameters", "model.logit_scale, model.logit_bias", TOL_EXACT)

    case = {
        "schema_version": SCHEMA_VERSION,
        "family": SIG_FAMILY,
        "case": SIG_CASE,
        "reference": reference_block(),
        "model": {"dir": "model", "cls": "SiglipModel", "checkpoint_dtype": "float32", "sharded": False},
        "semantics": {
            "text_pooling": "pooled = head(final_layer_norm(h)[:, -1, :]) -- ALWAYS the last position, even when it is padding (texts 0 and 1 here)",
            "text_attention": "bidirectional (no causal mask); attention_mask IS passed: keys with mask 0 get an additive finfo(float32).min, query rows are never masked (padded positions still compute, attending to the real tokens)",
            "vision": "patch conv (with bias) + learned positions (no CLS, no pre-norm) -> encoder -> post_layernorm -> MAP head: probe attends (torch.nn.MultiheadAttention, in_proj packed q|k|v) -> out_proj -> residual + MLP(layernorm(x)) -> token 0",
            "hidden_act": "gelu_pytorch_tanh (tanh approximation of GELU)",
            "layer_norm_eps": 1e-06,
            "logits": "logits_per_text = (txt_n @ img_n.T) * exp(logit_scale) + logit_bias; logits_per_image = transpose",
        },
        "run": {"images": images, "use_mask": True, "weight_seed": SIG_SEED, "float64_max_scaled_diff": f64},
        "files": files,
    }
    finish_case(d, case)
    return d


# ============================================================================================
# 3. OpenCLIP (open_clip_torch) ViT
# ============================================================================================

OC_FAMILY, OC_CASE, OC_SEED = "openclip", "tiny_vit", 4301
OC_L, OC_VOCAB, OC_SOT, OC_EOT, OC_PAD = 12, 320, 318, 319, 0
OC_IMAGES_WH = [(44, 40), (40, 49), (30, 30)]
OC_MODEL_CFG = {
    "embed_dim": 24,
    "quick_gelu": False,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 48, "layers": 2, "head_width": 16},
    "text_cfg": {"context_length": OC_L, "vocab_size": OC_VOCAB, "width": 48, "heads": 4, "layers": 2},
}
OC_PREPROCESS_CFG = {"mean": OPENAI_MEAN, "std": OPENAI_STD, "interpolation": "bicubic", "resize_mode": "shortest", "size": 32}

_OPEN_CLIP = None


def import_open_clip():
    """Return (CLIP class, full open_clip package or None, version string, import mode)."""
    global _OPEN_CLIP
    if _OPEN_CLIP is not None:
        return _OPEN_CLIP
    from transformers.utils import import_utils

    # populate transformers' lru-cached availability checks before touching sys.modules
    import_utils.is_torchvision_available()
    import_utils.is_timm_available()
    before = set(sys.modules)
    try:
        import open_clip  # noqa: F401  (needs a working torchvision)
        from open_clip.model import CLIP
        from open_clip.version import __version__

        _OPEN_CLIP = (CLIP, open_clip, __version__, "full package")
        return _OPEN_CLIP
    except Exception as e:  # torchvision missing, or a CUDA-only torchvision wheel on CPU torch
        err = e
    for k in set(sys.modules) - before:
        if k.split(".")[0] in ("open_clip", "torchvision", "timm"):
            del sys.modules[k]
    spec = importlib.util.find_spec("open_clip")
    if spec is None:
        raise SystemExit("open_clip_torch is not installed: pip install open_clip_torch") from err
    # open_clip.utils imports torchvision.ops.misc.FrozenBatchNorm2d (only used by ResNet towers):
    # give it a stub for the duration of the import, and make `import timm` fail cleanly.
    saved = {k: sys.modules.get(k, None) for k in ("torchvision", "torchvision.ops", "torchvision.ops.misc", "timm")}
    stubs = {}
    for name in ("torchvision", "torchvision.ops", "torchvision.ops.misc"):
        m = types.ModuleType(name)
        m.__spec__ = importlib.machinery.ModuleSpec(name, None)
        stubs[name] = m

    class FrozenBatchNorm2d(torch.nn.Module):  # never instantiated for a ViT tower
        def __init__(self, *a, **k):
            raise RuntimeError("torchvision stub: FrozenBatchNorm2d unavailable")

    stubs["torchvision.ops.misc"].FrozenBatchNorm2d = FrozenBatchNorm2d
    stubs["torchvision.ops"].misc = stubs["torchvision.ops.misc"]
    stubs["torchvision"].ops = stubs["torchvision.ops"]
    pkg = types.ModuleType("open_clip")
    pkg.__path__ = list(spec.submodule_search_locations)
    pkg.__spec__ = spec
    pkg.__file__ = spec.origin
    try:
        sys.modules.update(stubs)
        sys.modules["timm"] = None  # -> ImportError inside open_clip.timm_model (handled there)
        sys.modules["open_clip"] = pkg
        model_mod = importlib.import_module("open_clip.model")
        version = importlib.import_module("open_clip.version").__version__
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    _OPEN_CLIP = (model_mod.CLIP, None, version, f"open_clip.model only (package import failed: {type(err).__name__}: {err})")
    return _OPEN_CLIP


def openclip_preprocess(path: Path, size=32, mean=OPENAI_MEAN, std=OPENAI_STD):
    """open_clip image_transform(image_size=32, is_train=False, resize_mode='shortest',
    interpolation='bicubic') re-implemented with torchvision's exact PIL semantics:
      Resize(32, BICUBIC): short side -> 32, long -> int(32 * long / short), skipped when already
        that size, else PIL img.resize((w, h), Image.BICUBIC);
      CenterCrop(32): top = int(round((H - 32) / 2.0)), left = int(round((W - 32) / 2.0)) with
        Python round (half to even), PIL crop;
      MaybeConvertMode: img.convert('RGB') (AFTER resize/crop);
      ToTensor: uint8 -> float32, / 255 (float32 division);
      Normalize: (x - mean) / std in float32.
    Returns (pixel_values CHW float32, cropped HWC uint8, resize_hw, crop_top_left)."""
    img = Image.open(path)
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    ns, nl = size, int(size * long / short)
    nw, nh = (ns, nl) if w <= h else (nl, ns)
    if (nh, nw) != (h, w):
        img = img.resize((nw, nh), Image.BICUBIC)
    top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
    img = img.crop((left, top, left + size, top + size)).convert("RGB")
    u8 = np.asarray(img, dtype=np.uint8)
    x = torch.from_numpy(u8.copy()).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
    x = x.sub(torch.as_tensor(mean, dtype=torch.float32)[:, None, None]).div(torch.as_tensor(std, dtype=torch.float32)[:, None, None])
    return x.numpy(), u8, [nh, nw], [top, left]


def openclip_build(model_cfg: dict):
    CLIP, _, _, _ = import_open_clip()
    cfg = copy.deepcopy(model_cfg)
    return CLIP(**cfg).eval()  # what open_clip.create_model does for a plain ViT config


def openclip_load(model_dir: Path):
    from safetensors.torch import load_file

    hf_cfg = json.loads((model_dir / "open_clip_config.json").read_text())
    m = openclip_build(hf_cfg["model_cfg"])
    m.load_state_dict(load_file(str(model_dir / "open_clip_model.safetensors")), strict=True)
    return m


@torch.no_grad()
def openclip_run(model, inputs: dict) -> dict:
    dt = next(model.parameters()).dtype
    pv = torch.from_numpy(inputs["pixel_values"]).to(dt)
    ids = torch.from_numpy(inputs["input_ids"])
    cap = {}
    hooks = [
        model.visual.transformer.register_forward_hook(lambda m, i, o: cap.__setitem__("vision_last_hidden_state", o)),
        model.visual.ln_post.register_forward_hook(lambda m, i, o: cap.__setitem__("ln_post", o)),
        model.ln_final.register_forward_hook(lambda m, i, o: cap.__setitem__("text_last_hidden_state", o)),
    ]
    try:
        img_un = model.encode_image(pv, normalize=False)
        vlh, ln_post = cap["vision_last_hidden_state"], cap["ln_post"]
        txt_un = model.encode_text(ids, normalize=False)
        tlh = cap["text_last_hidden_state"]
        img_n = model.encode_image(pv, normalize=True)
        txt_n = model.encode_text(ids, normalize=True)
        lpi, lpt = model.get_logits(pv, ids)
    finally:
        for h in hooks:
            h.remove()
    pool = ids.argmax(dim=-1)
    return {
        "vision_last_hidden_state": vlh,
        "vision_pooler_output": ln_post[:, 0],
        "image_embeds_unnormalized": img_un,
        "image_embeds": img_n,
        "text_last_hidden_state": tlh,
        "text_pooler_output": tlh[torch.arange(tlh.shape[0]), pool],
        "text_embeds_unnormalized": txt_un,
        "text_embeds": txt_n,
        "logits_per_image": lpi,
        "logits_per_text": lpt,
        "logit_scale": model.logit_scale.reshape(1),
    }


def openclip_to_hf_clip(sd: dict, model_cfg: dict):
    """Map the OpenCLIP state_dict onto transformers' CLIPModel (independent semantic check)."""
    from transformers import CLIPConfig, CLIPModel

    v, t = model_cfg["vision_cfg"], model_cfg["text_cfg"]
    vw, tw = v["width"], t["width"]
    cfg = CLIPConfig(
        text_config=dict(
            vocab_size=t["vocab_size"], hidden_size=tw, intermediate_size=4 * tw, num_attention_heads=t["heads"],
            num_hidden_layers=t["layers"], max_position_embeddings=t["context_length"], hidden_act="gelu",
            eos_token_id=2, projection_dim=model_cfg["embed_dim"],
        ),
        vision_config=dict(
            hidden_size=vw, intermediate_size=4 * vw, num_attention_heads=vw // v["head_width"],
            num_hidden_layers=v["layers"], image_size=v["image_size"], patch_size=v["patch_size"],
            hidden_act="gelu", projection_dim=model_cfg["embed_dim"],
        ),
        projection_dim=model_cfg["embed_dim"],
    )
    new = {}

    def blocks(src, dst, n):
        for i in range(n):
            s, d = f"{src}.resblocks.{i}.", f"{dst}.layers.{i}."
            q, k, vv = sd[s + "attn.in_proj_weight"].chunk(3, 0)
            qb, kb, vb = sd[s + "attn.in_proj_bias"].chunk(3, 0)
            new.update({
                d + "self_attn.q_proj.weight": q, d + "self_attn.k_proj.weight": k, d + "self_attn.v_proj.weight": vv,
                d + "self_attn.q_proj.bias": qb, d + "self_attn.k_proj.bias": kb, d + "self_attn.v_proj.bias": vb,
                d + "self_attn.out_proj.weight": sd[s + "attn.out_proj.weight"], d + "self_attn.out_proj.bias": sd[s + "attn.out_proj.bias"],
                d + "layer_norm1.weight": sd[s + "ln_1.weight"], d + "layer_norm1.bias": sd[s + "ln_1.bias"],
                d + "layer_norm2.weight": sd[s + "ln_2.weight"], d + "layer_norm2.bias": sd[s + "ln_2.bias"],
                d + "mlp.fc1.weight": sd[s + "mlp.c_fc.weight"], d + "mlp.fc1.bias": sd[s + "mlp.c_fc.bias"],
                d + "mlp.fc2.weight": sd[s + "mlp.c_proj.weight"], d + "mlp.fc2.bias": sd[s + "mlp.c_proj.bias"],
            })

    blocks("visual.transformer", "vision_model.encoder", v["layers"])
    blocks("transformer", "text_model.encoder", t["layers"])
    new.update({
        "vision_model.embeddings.patch_embedding.weight": sd["visual.conv1.weight"],
        "vision_model.embeddings.class_embedding": sd["visual.class_embedding"],
        "vision_model.embeddings.position_embedding.weight": sd["visual.positional_embedding"],
        "vision_model.pre_layrnorm.weight": sd["visual.ln_pre.weight"], "vision_model.pre_layrnorm.bias": sd["visual.ln_pre.bias"],
        "vision_model.post_layernorm.weight": sd["visual.ln_post.weight"], "vision_model.post_layernorm.bias": sd["visual.ln_post.bias"],
        "visual_projection.weight": sd["visual.proj"].T.contiguous(),
        "text_model.embeddings.token_embedding.weight": sd["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": sd["positional_embedding"],
        "text_model.final_layer_norm.weight": sd["ln_final.weight"], "text_model.final_layer_norm.bias": sd["ln_final.bias"],
        "text_projection.weight": sd["text_projection"].T.contiguous(),
        "logit_scale": sd["logit_scale"].reshape(()),
    })
    hf = CLIPModel._from_config(cfg, attn_implementation="eager").eval()
    missing, unexpected = hf.load_state_dict(new, strict=False)
    assert not unexpected and all("position_ids" in k for k in missing), (missing, unexpected)
    return hf


def make_openclip(out_root: Path) -> Path:
    from safetensors.torch import save_file

    CLIP, full, oc_version, oc_mode = import_open_clip()
    d = fresh_dir(out_root / OC_FAMILY / OC_CASE)
    md = d / "model"
    md.mkdir()
    rng = np.random.default_rng(OC_SEED)
    torch.manual_seed(OC_SEED)
    model = openclip_build(OC_MODEL_CFG)
    assert model.text_pool_type == "argmax" and model.logit_bias is None
    assert "attn_mask" not in model.state_dict()  # causal mask: non-persistent buffer
    randomize_(model, rng, logit_params(rng, 2.3))
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(sd, str(md / "open_clip_model.safetensors"), metadata={"format": "pt"})
    hf_cfg = {"model_cfg": OC_MODEL_CFG, "preprocess_cfg": OC_PREPROCESS_CFG}
    (md / "open_clip_config.json").write_text(json.dumps(hf_cfg, indent=2) + "\n")
    names = {k: list(v.shape) for k, v in sd.items()}

    images = write_pngs(d, rng, OC_IMAGES_WH)
    pvs, u8_entries, geo = [], {}, {}
    for f in images:
        x, u8, rhw, ctl = openclip_preprocess(d / f)
        pvs.append(x)
        name = f"{f[:-4]}.resized_cropped_u8.npy"
        save_npy(d, name, u8)
        u8_entries[name] = npy_entry(
            u8, "intermediate", f"{f} after open_clip's Resize(32, BICUBIC) + CenterCrop(32), before ToTensor/Normalize, HWC uint8",
            "torchvision Resize (PIL path: short side -> 32, long = int(32*long/short)) then CenterCrop: top = int(round((H-32)/2.0)), left = int(round((W-32)/2.0)) (Python round, half to even)",
            TOL_U8, resize_hw=rhw, crop_top_left=ctl,
        )
        geo[f] = {"resize_hw": rhw, "crop_top_left": ctl, "hf_clip_processor_crop_top_left": [(rhw[0] - 32) // 2, (rhw[1] - 32) // 2]}
    pv = save_npy(d, "pixel_values.npy", np.stack(pvs))

    lengths = [3, 7, 10]  # content tokens; SOT + content + EOT, zero-padded to 12
    ids = np.full((3, OC_L), OC_PAD, np.int64)
    for i, n in enumerate(lengths):
        row = np.concatenate([[OC_SOT], rng.integers(1, OC_SOT, n), [OC_EOT]])
        ids[i, : len(row)] = row
    np_ids = save_npy(d, "input_ids.npy", ids)
    pool = ids.argmax(-1)
    save_npy(d, "text_pool_index.npy", pool)

    ref = openclip_load(md)
    inputs = {"pixel_values": pv, "input_ids": np_ids}
    outs = {k: to_np(v) for k, v in openclip_run(ref, inputs).items()}
    f64 = f64_check(ref, openclip_run, inputs)
    check_logits(outs["logits_per_image"])
    hf_err = openclip_vs_hf(ref, OC_MODEL_CFG, inputs, outs)

    P = "open_clip CLIP(**model_cfg) + load_state_dict(open_clip_model.safetensors, strict=True)"
    files = {
        "model/open_clip_config.json": {"role": "model", "description": "OpenCLIP HF-hub config: {'model_cfg': <open_clip model config>, 'preprocess_cfg': {mean, std, interpolation, resize_mode, size}} (push_to_hf_hub writes the same keys except 'size', which open_clip takes from vision_cfg.image_size)"},
        "model/open_clip_model.safetensors": {"role": "model", "description": "model.state_dict() (F32) with open_clip's own names, written by safetensors.torch.save_file as open_clip's save_for_hf does; the causal text mask is a non-persistent buffer (not stored)", "tensors": names},
    }
    for f, (w, h) in zip(images, OC_IMAGES_WH):
        files[f] = png_entry(f, w, h)
    files["input_ids.npy"] = npy_entry(np_ids, "input", f"text ids as open_clip's tokenizer lays them out: SOT {OC_SOT}, content ids in [1, {OC_SOT - 1}], EOT {OC_EOT} (the largest id), then zero padding to context_length {OC_L}; the third text has no padding", "generator")
    files["pixel_values.npy"] = npy_entry(pv, "input", "images after open_clip's eval transform (image_transform(32, is_train=False), resize_mode 'shortest', bicubic, OpenAI mean/std)", "tools/make_fixtures.py openclip_preprocess (torchvision semantics re-implemented with PIL + torch; see semantics.preprocess)", TOL_PIX)
    files.update(u8_entries)
    files["text_pool_index.npy"] = npy_entry(pool, "intermediate", "pooled position per text = argmax(input_ids) (first max: the EOT)", "see semantics.text_pooling", TOL_EXACT)
    desc = {
        "vision_last_hidden_state": ("visual.transformer output (CLS first; BEFORE ln_post) == HF CLIP vision last_hidden_state", "forward hook on model.visual.transformer during encode_image"),
        "vision_pooler_output": ("ln_post(x)[:, 0] (ln_post applied to the tokens, CLS taken) == HF CLIP post_layernorm(CLS)", "forward hook on model.visual.ln_post, token 0"),
        "image_embeds_unnormalized": ("ln_post(CLS) @ visual.proj", "model.encode_image(pixel_values, normalize=False)"),
        "image_embeds": ("L2-normalized image features", "model.encode_image(pixel_values, normalize=True)"),
        "text_last_hidden_state": ("ln_final(transformer(tok_emb + pos_emb, causal mask)) over ALL positions (no padding mask exists; pad id 0 is an ordinary token)", "forward hook on model.ln_final during encode_text"),
        "text_pooler_output": ("ln_final output at text_pool_index", "text_last_hidden_state[arange, input_ids.argmax(-1)]"),
        "text_embeds_unnormalized": ("pooled @ text_projection", "model.encode_text(input_ids, normalize=False)"),
        "text_embeds": ("L2-normalized text features", "model.encode_text(input_ids, normalize=True)"),
        "logits_per_image": ("[n_images, n_texts] = exp(logit_scale) * img_n @ txt_n.T (no logit_bias)", "model.get_logits(pixel_values, input_ids)[0]"),
        "logits_per_text": ("[n_texts, n_images] (transpose)", "model.get_logits(pixel_values, input_ids)[1]"),
    }
    for k, (de, pb) in desc.items():
        arr = save_npy(d, f"{k}.npy", outs[k])
        files[f"{k}.npy"] = npy_entry(arr, "output", de, f"{P}; {pb}", TOL_SCALED)
    arr = save_npy(d, "logit_scale.npy", outs["logit_scale"])
    files["logit_scale.npy"] = npy_entry(arr, "intermediate", "raw logit_scale parameter (0-d in the checkpoint; logits use exp of it)", "model.logit_scale", TOL_EXACT)

    v, t = OC_MODEL_CFG["vision_cfg"], OC_MODEL_CFG["text_cfg"]
    case = {
        "schema_version": SCHEMA_VERSION,
        "family": OC_FAMILY,
        "case": OC_CASE,
        "reference": reference_block({
            "open_clip_torch": oc_version,
            "open_clip_reference": "model: open_clip.model.CLIP (the class open_clip.create_model instantiates for this config), weights loaded strict; "
            "pixel_values: open_clip's eval transform re-implemented with PIL + torch (torchvision semantics), equal bit for bit to "
            "open_clip.create_model_and_transforms('local-dir:model')[2] where torchvision is importable",
        }),
        "model": {"dir": "model", "cls": "open_clip.model.CLIP", "checkpoint_dtype": "float32", "sharded": False,
                  "format": "open_clip_config.json + open_clip_model.safetensors (OpenCLIP HF-hub layout)"},
        "semantics": {
            "activation": "quick_gelu false -> torch.nn.GELU() = exact erf GELU in both towers; LayerNorm eps 1e-5 (torch default); MLP width = 4 * width (mlp_ratio 4.0)",
            "blocks": "pre-LN residual blocks: x = x + attn(ln_1(x)); x = x + mlp.c_proj(gelu(mlp.c_fc(ln_2(x)))); attn = torch.nn.MultiheadAttention(batch_first=True): in_proj_weight [3W, W] = [q; k; v] rows, in_proj_bias [3W], out_proj Linear with bias, scores scaled by 1/sqrt(head_dim)",
            "vision": f"conv1 (Conv2d {v['patch_size']}x{v['patch_size']}, stride {v['patch_size']}, NO bias) -> flatten patches row-major -> prepend class_embedding [W] -> + positional_embedding [1 + grid^2, W] -> ln_pre -> transformer ({v['layers']} blocks, heads = width // head_width = {v['width'] // v['head_width']}) -> ln_post on ALL tokens, pooled = token 0 (pool_type 'tok', final_ln_after_pool false; identical to ln_post(CLS)) -> pooled @ visual.proj ([W, embed_dim], applied as x @ proj, no bias)",
            "text": f"token_embedding + positional_embedding [context_length {t['context_length']}, W] -> transformer with an additive CAUSAL mask only (-inf above the diagonal; the `attn_mask` buffer is persistent=False, so it is not in the checkpoint) -- NO padding mask -> ln_final on all positions -> pool -> pooled @ text_projection ([W, embed_dim], x @ P, no bias)",
            "text_pooling": "text_pool_type 'argmax' (CLIPTextCfg default; eos_id is only used for pool_type 'eos'): pooled position = argmax(input_ids) = first maximal id = the EOT (the largest id, 319 here, 49407 in the real vocab); zero padding after the EOT cannot influence it (causal)",
            "embeds_logits": "encode_*(normalize=True) = F.normalize(features, dim=-1); logits_per_image = exp(logit_scale) * img_n @ txt_n.T, logits_per_text = its transpose; logit_bias is None (init_logit_bias unset)",
            "preprocess": "image_transform(32, is_train=False, mean, std, resize_mode='shortest', interpolation='bicubic'): torchvision Resize(32, BICUBIC) on the PIL image (short side -> 32, long -> int(32*long/short); PIL antialiased bicubic), CenterCrop(32) with top = int(round((H-32)/2.0)), left = int(round((W-32)/2.0)) -- Python round, half to EVEN -- which differs from CLIPImageProcessor's (H-32)//2 for odd differences (img0: left 2 vs 1, img1: top 4 vs 3), then convert('RGB') (after the resize), ToTensor (float32 u8 / 255), Normalize in float32",
            "hf_clip_mapping": {
                "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
                "visual.class_embedding": "vision_model.embeddings.class_embedding",
                "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
                "visual.ln_pre.*": "vision_model.pre_layrnorm.*",
                "visual.transformer.resblocks.N.ln_1.*": "vision_model.encoder.layers.N.layer_norm1.*",
                "visual.transformer.resblocks.N.attn.in_proj_weight": "split in 3 along dim 0 -> self_attn.{q,k,v}_proj.weight",
                "visual.transformer.resblocks.N.attn.in_proj_bias": "split in 3 -> self_attn.{q,k,v}_proj.bias",
                "visual.transformer.resblocks.N.attn.out_proj.*": "self_attn.out_proj.*",
                "visual.transformer.resblocks.N.ln_2.*": "layer_norm2.*",
                "visual.transformer.resblocks.N.mlp.c_fc.*": "mlp.fc1.*",
                "visual.transformer.resblocks.N.mlp.c_proj.*": "mlp.fc2.*",
                "visual.ln_post.*": "vision_model.post_layernorm.*",
                "visual.proj": "visual_projection.weight = proj.T",
                "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
                "positional_embedding": "text_model.embeddings.position_embedding.weight",
                "transformer.resblocks.N.*": "text_model.encoder.layers.N.* (same renames)",
                "ln_final.*": "text_model.final_layer_norm.*",
                "text_projection": "text_projection.weight = text_projection.T",
                "logit_scale": "logit_scale (0-d)",
                "config": "HF CLIPConfig with hidden_act 'gelu', eos_token_id 2 (-> argmax pooling), intermediate_size 4*width, vision heads width//head_width, no attention_mask",
                "checked": f"transformers CLIPModel with these weights reproduces every output of this case (worst scaled diff {hf_err:.3g})",
            },
        },
        "run": {
            "images": images,
            "weight_seed": OC_SEED,
            "pass_attention_mask": False,
            "float64_max_scaled_diff": f64,
            "image_geometry": geo,
        },
        "files": files,
    }
    finish_case(d, case)
    return d


@torch.no_grad()
def openclip_vs_hf(oc_model, model_cfg, inputs, outs) -> float:
    hf = openclip_to_hf_clip({k: v.float() for k, v in oc_model.state_dict().items()}, model_cfg)
    pv = torch.from_numpy(inputs["pixel_values"])
    ids = torch.from_numpy(inputs["input_ids"])
    r = clip_run(hf, {"pixel_values": pv.numpy(), "input_ids": ids.numpy(), "attention_mask": np.ones_like(ids.numpy())})
    worst = 0.0
    for k, v in r.items():
        worst = max(worst, scaled_err(to_np(v), outs[k]))
    assert worst < 1e-5, f"OpenCLIP -> HF CLIP mapping disagrees: {worst}"
    return worst


# ============================================================================================
# self-check
# ============================================================================================


def check_tolerance(name: str, entry: dict, got: np.ndarray, ref: np.ndarray, case_dir: Path) -> float:
    tol = entry["tolerance"]
    assert got.shape == ref.shape, (name, got.shape, ref.shape)
    if tol["kind"] == "exact":
        assert np.array_equal(got, ref), name
        return 0.0
    mask = None
    if "valid_mask" in entry:
        mask = np.load(case_dir / entry["valid_mask"].split()[0]).astype(bool)
    if tol["kind"] == "scaled_max_abs":
        e = scaled_err(got, ref, mask)
        assert e <= tol["rtol"], (name, e)
        return e
    e = float(np.max(np.abs(got.astype(np.float64) - ref)))
    assert e <= tol["atol"], (name, e)
    return e


def self_check(case_dir: Path) -> None:
    case = json.loads((case_dir / "case.json").read_text())
    fam = case["family"]
    files = case["files"]
    inputs = {k[:-4]: np.load(case_dir / k) for k, e in files.items() if e["role"] == "input" and k.endswith(".npy")}
    md = case_dir / case["model"]["dir"]
    if fam == "clip":
        model, run = clip_load(md), clip_run
        tensors, shards = read_hf_checkpoint_np(md)
        assert case["model"]["sharded"] == (len(shards) > 1)
        sd = model.state_dict()
        for k, v in tensors.items():
            assert np.array_equal(sd[k].numpy(), v), k
    elif fam == "siglip":
        model, run = siglip_load(md), siglip_run
        if not case["run"]["use_mask"]:
            inputs.pop("attention_mask", None)
    elif fam == "openclip":
        model, run = openclip_load(md), openclip_run
    else:
        raise ValueError(fam)
    outs = {k: to_np(v) for k, v in run(model, inputs).items()}
    worst = 0.0
    for k, e in files.items():
        if not k.endswith(".npy") or e["role"] not in ("output", "intermediate"):
            continue
        ref = np.load(case_dir / k)
        stem = k[:-4]
        if stem in outs:
            worst = max(worst, check_tolerance(k, e, outs[stem], ref, case_dir))
        elif stem == "text_pool_index":
            ids = inputs["input_ids"]
            eos = None
            if fam == "clip":
                eos = json.loads((md / "config.json").read_text())["text_config"]["eos_token_id"]
            got = (ids == eos).argmax(-1) if eos not in (None, 2) else ids.argmax(-1)
            check_tolerance(k, e, got, ref, case_dir)
        elif stem.endswith("_u8"):
            img = case_dir / (stem.rsplit(".", 1)[0] + ".png")
            if fam == "openclip":
                got = openclip_preprocess(img)[1]
            elif fam == "siglip":
                got = np.asarray(Image.open(img).convert("RGB").resize((32, 32), Image.BICUBIC))
            else:
                (nh, nw), (top, left) = e["resize_hw"], e["crop_top_left"]
                got = np.asarray(Image.open(img).convert("RGB").resize((nw, nh), Image.BICUBIC))[top : top + 32, left : left + 32]
            check_tolerance(k, e, got, ref, case_dir)
        else:
            raise AssertionError(f"no check for {k}")
    if fam == "openclip":
        pv = np.stack([openclip_preprocess(case_dir / f)[0] for f in case["run"]["images"]])
        assert np.array_equal(pv, inputs["pixel_values"])
        openclip_cross_check(case_dir, inputs, outs)
    size = sum(p.stat().st_size for p in case_dir.rglob("*") if p.is_file())
    assert size < 1_000_000, f"{case_dir} is {size} bytes"
    log(f"  ok {case['family']}/{case['case']}: {size} bytes, worst scaled diff vs stored {worst:.3g}")


def openclip_cross_check(case_dir: Path, inputs: dict, outs: dict) -> None:
    """With a working torchvision: open_clip's own loader and preprocess must agree."""
    _, full, _, mode = import_open_clip()
    if full is None:
        log(f"  (open_clip full-package cross-check skipped: {mode.split('(')[0].strip()})")
        return
    m, _, preprocess = full.create_model_and_transforms(f"local-dir:{case_dir / 'model'}")
    m.eval()
    case = json.loads((case_dir / "case.json").read_text())
    pv = torch.stack([preprocess(Image.open(case_dir / f)) for f in case["run"]["images"]]).numpy()
    assert np.array_equal(pv, inputs["pixel_values"]), np.abs(pv - inputs["pixel_values"]).max()
    o2 = {k: to_np(v) for k, v in openclip_run(m, inputs).items()}
    worst = max(scaled_err(o2[k], outs[k]) for k in outs)
    assert worst < 1e-6, worst
    log(f"  open_clip.create_model_and_transforms('local-dir:...'): pixel_values bit-equal, outputs worst scaled diff {worst:.3g}")


# ============================================================================================

MAKERS = {"clip": make_clip, "siglip": make_siglip, "openclip": make_openclip}
CASE_DIRS = {"clip": (CLIP_FAMILY, CLIP_CASE), "siglip": (SIG_FAMILY, SIG_CASE), "openclip": (OC_FAMILY, OC_CASE)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output root (default tests/data/conformance)")
    ap.add_argument("--only", default="clip,siglip,openclip", help="comma list of: clip, siglip, openclip")
    ap.add_argument("--check-only", action="store_true", help="only re-run the self-check on existing cases")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    which = [w.strip() for w in args.only.split(",") if w.strip()]
    for w in which:
        if w not in MAKERS:
            ap.error(f"unknown case family {w}")
    dirs = []
    for w in which:
        if args.check_only:
            dirs.append(args.out / CASE_DIRS[w][0] / CASE_DIRS[w][1])
        else:
            log(f"writing {w} ...")
            dirs.append(MAKERS[w](args.out))
    log("self-check (reload from disk, re-run, compare):")
    for d in dirs:
        self_check(d)
    total = sum(p.stat().st_size for d in dirs for p in d.rglob("*") if p.is_file())
    log(f"total {total} bytes in {len(dirs)} case(s)")
    assert total < 3_000_000
    return 0


if __name__ == "__main__":
    sys.exit(main())
