"""Conformance runner: checks mmsuite against reference fixture cases.

    python -m mmsuite.conformance CASE_DIR... [--dtype float32|bfloat16] [--device cpu|cuda] [--json OUT]

A case directory holds `case.json` (schema_version 1, see shared/conformance/README.md) and the
files it lists. Model cases (families clip, siglip, openclip, llava, llava_next, blip2, blip2_t5) load `model/` as the case says
and compare EVERY file whose role is `output` or `intermediate` (plus `check` files) with the
tolerance the case states. Preprocessing cases (clip_preprocess, siglip/preprocess*) decode
and preprocess every input image and compare decoded / resized uint8 intermediates and
pixel_values. Exit status is non-zero on any miss.

bfloat16 mode (--dtype bfloat16): float outputs must satisfy scaled_max_abs <= BF16_RTOL
(documented bound, docs/families.md) and every *_embeds row must have cosine >= 0.999 with the
reference; exact files stay exact, except greedy token ids of decoders, which must agree on the
first BF16_GREEDY_PREFIX new tokens (bf16 rounding may flip a later near-tie)."""
import argparse
import json
import math
import os
import sys

import numpy as np

from ._native import _C
from .generation import GenerationConfig

BF16_RTOL = 0.08          # max|got-ref| <= BF16_RTOL * max|ref| for bf16 weights
BF16_MIN_COSINE = 0.999   # per-row cosine of embeddings

MODEL_FAMILIES = {"clip", "siglip", "openclip"}
LLAVA_FAMILIES = {"llava", "llava_next"}
BLIP2_FAMILIES = {"blip2", "blip2_t5"}
PREPROCESS_FAMILIES = {"clip_preprocess"}


class CaseError(Exception):
    pass


def _compare(got, ref, tol, valid=None, dtype="float32", name=""):
    """Returns a result dict: passed, max_abs_error, scaled_error, tolerance (+cosine)."""
    res = {"tolerance": dict(tol)}
    got = np.asarray(got)
    ref = np.asarray(ref)
    if got.shape != ref.shape:
        res.update(passed=False, max_abs_error=float("inf"), error=f"shape {got.shape} != reference {ref.shape}")
        return res
    g = got.astype(np.float64)
    r = ref.astype(np.float64)
    if valid is not None:
        m = np.broadcast_to(valid.reshape(valid.shape + (1,) * (r.ndim - valid.ndim)).astype(bool), r.shape)
        g, r = g[m], r[m]
    diff = np.abs(g - r)
    max_abs = float(diff.max()) if diff.size else 0.0
    if not np.all(np.isfinite(g)):
        max_abs = float("inf")
    scale = float(np.abs(r).max()) if r.size else 0.0
    res["max_abs_error"] = max_abs
    res["scaled_error"] = max_abs / scale if scale > 0 else max_abs
    kind = tol.get("kind")
    if kind == "exact":
        passed = max_abs == 0.0
    elif kind == "max_abs":
        passed = max_abs <= float(tol["atol"])
    elif kind == "scaled_max_abs":
        rtol = float(tol["rtol"])
        if dtype == "bfloat16":
            rtol = max(rtol, BF16_RTOL)
            res["tolerance"]["rtol_bf16"] = rtol
        passed = max_abs <= rtol * scale
    else:
        res.update(passed=False, error=f"unknown tolerance kind {kind!r}")
        return res
    if dtype == "bfloat16" and name.endswith("_embeds") and got.ndim == 2:
        gn = got / np.linalg.norm(got, axis=1, keepdims=True)
        rn = ref / np.linalg.norm(ref, axis=1, keepdims=True)
        cos = float(np.min(np.sum(gn.astype(np.float64) * rn, axis=1)))
        res["min_cosine"] = cos
        passed = passed and cos >= BF16_MIN_COSINE
    res["passed"] = bool(passed)
    return res


def _load_case(case_dir):
    path = os.path.join(case_dir, "case.json")
    if not os.path.isfile(path):
        raise CaseError(f"{case_dir}: no case.json")
    with open(path, encoding="utf-8") as f:
        case = json.load(f)
    if case.get("schema_version") != 1:
        raise CaseError(f"{path}: unsupported schema_version {case.get('schema_version')!r}")
    return case


def _is_preprocess(case):
    return case.get("family") in PREPROCESS_FAMILIES or ("call" in case and "model" not in case)


def _image_stem(name):
    base, ext = os.path.splitext(name)
    return [base, name.replace(".", "_")]


def _image_file_results(proc, case_dir, files, images):
    """Compare every `<image stem>.<what>.npy` file with what `proc` computes for that image."""
    from .image_processor import decode_image
    results = {}
    for img in images:
        path = os.path.join(case_dir, img)
        stems = _image_stem(img)
        computed = {}
        for fname, meta in files.items():
            if meta.get("role") not in ("output", "intermediate", "check") or not fname.endswith(".npy"):
                continue
            stem, _, rest = fname.partition(".")
            if stem not in stems:
                continue
            what = rest[:-4]
            if what not in computed:
                if what == "pixel_values":
                    computed[what] = proc([path])
                elif what == "decoded_rgb_u8":
                    computed[what] = decode_image(path)
                elif what in ("resized_cropped_u8", "resized_u8"):
                    computed[what] = proc.resized_u8(path)
                else:
                    computed[what] = None
            got = computed[what]
            ref = np.load(os.path.join(case_dir, fname))
            if got is None:
                results[fname] = {"passed": False, "max_abs_error": float("inf"), "error": f"don't know how to compute {what!r}",
                                  "tolerance": meta.get("tolerance", {})}
                continue
            results[fname] = _compare(got, ref, meta.get("tolerance", {"kind": "exact"}), dtype="float32", name=what)
    return results


def _input_images(files):
    return [f for f, v in files.items()
            if v.get("role") == "input" and f.lower().endswith((".png", ".jpg", ".jpeg"))]


def run_preprocess_case(case_dir, case, dtype):
    from .image_processor import ImageProcessor
    files = case["files"]
    cfg = next((f for f, v in files.items() if f.endswith("preprocessor_config.json")), None)
    if cfg is None:
        raise CaseError(f"{case_dir}: no preprocessor_config.json listed")
    proc = ImageProcessor.from_pretrained(os.path.join(case_dir, cfg))
    return _image_file_results(proc, case_dir, files, _input_images(files))


def _compare_outputs(case_dir, files, out, dtype, results, valid_for=None, special=None):
    """Compare every output / intermediate / check .npy the case lists (and results lacks) with
    out[name without .npy]; a missing output is a miss. special(key, got, ref) may return its own
    result for a key; valid_for(meta) may return a mask of the positions to compare."""
    for fname, meta in files.items():
        if meta.get("role") not in ("output", "intermediate", "check") or not fname.endswith(".npy"):
            continue
        if fname in results:
            continue
        key = fname[:-4]
        ref = np.load(os.path.join(case_dir, fname))
        tol = meta.get("tolerance", {"kind": "exact"})
        if key not in out:
            results[fname] = {"passed": False, "max_abs_error": float("inf"), "tolerance": tol,
                              "error": "mmsuite produced no such output"}
            continue
        r = special(key, out[key], ref) if special else None
        if r is None:
            r = _compare(out[key], ref, tol, valid=valid_for(meta) if valid_for else None, dtype=dtype, name=key)
        results[fname] = r
    return results


def run_model_case(case_dir, case, dtype, device="cpu"):
    from .models import load
    files = case["files"]
    model_dir = os.path.join(case_dir, case.get("model", {}).get("dir", "model"))
    model = load(model_dir, dtype=dtype, device=device)
    run = case.get("run", {})

    def npy(name):
        return np.load(os.path.join(case_dir, name)) if name in files else None

    px = npy("pixel_values.npy")
    ids = npy("input_ids.npy")
    mask = npy("attention_mask.npy")
    if not run.get("use_mask", True):
        mask = None
    out = {}
    if px is not None:
        out.update(model.encode_image(pixel_values=px))
    if ids is not None:
        out.update(model.encode_text(input_ids=ids, attention_mask=mask))
    if "image_embeds" in out and "text_embeds" in out:
        out["logits_per_image"], out["logits_per_text"] = model.logits(out["image_embeds"], out["text_embeds"])
    out["logit_scale"] = np.array([model.config["logit_scale"]], dtype=np.float32)
    out["logit_scale_bias"] = np.array([model.config["logit_scale"], model.config["logit_bias"]], dtype=np.float32)
    if "pixel_values_recomputed.npy" in files or any(v.get("role") == "check" for v in files.values()):
        images = [os.path.join(case_dir, f) for f in run.get("images", [])]
        if images:
            out["pixel_values_recomputed"] = model.image_processor(images)
    results = _image_file_results(model.image_processor, case_dir, files, _input_images(files))

    def valid_for(meta):
        vm = meta.get("valid_mask")
        vm_file = vm.split()[0] if vm else None
        return np.load(os.path.join(case_dir, vm_file)) if vm_file in files and mask is not None else None

    _compare_outputs(case_dir, files, out, dtype, results, valid_for=valid_for)
    model.unload()
    return results


def run_llava_case(case_dir, case, dtype, device="cpu"):
    """LLaVA / LLaVA-NeXT: vision features, projector, packing, merged embeddings, teacher-forced
    logits (one prefill, and prompt + generated through the KV cache) and greedy ids."""
    from .llava import load_language_model
    files = case["files"]
    model = load_language_model(os.path.join(case_dir, case.get("model", {}).get("dir", "model")), dtype=dtype,
                                device=device)
    run = case.get("run", {})

    def npy(name):
        return np.load(os.path.join(case_dir, name)) if name in files else None

    out = {}
    px = npy("pixel_values.npy")
    sizes = npy("image_sizes.npy")
    ids = npy("input_ids.npy")
    if ids.shape[0] != 1:
        raise CaseError(f"{case_dir}: batched llava cases are not supported by this runner")
    feats, raw = model.image_features(px, sizes, intermediates=True)
    if model.vision["next"]:
        out["vision_features"] = np.concatenate([r["selected"] for r in raw])
        out["projected_patch_features"] = np.concatenate([r["projected"] for r in raw])
        out["packed_image_features"] = np.concatenate(feats)
        out["packed_feature_lens"] = np.array([len(f) for f in feats], dtype=np.int64)
        out["num_patches_per_image"] = np.array([r["projected"].shape[0] for r in raw], dtype=np.int64)
    else:
        out["vision_feature_layer_full"] = raw["layer_full"]
        out["vision_features"] = raw["selected"]
        out["image_features"] = raw["projected"]
    emb = model._merge(ids[0], feats)
    out["merged_inputs_embeds"] = emb[None]
    out["logits"] = model.forward(inputs_embeds=emb)[None]
    n_new = int(run.get("max_new_tokens", 8))
    gen = model._gen.generate([(list(map(int, ids[0])), emb)],
                              GenerationConfig(max_new_tokens=n_new, do_sample=False, eos_token_id=[]))
    new = np.array(gen.sequences[0], dtype=np.int64)
    out["generated_new_ids"] = new[None]
    out["generate_output"] = np.concatenate([ids[0], new])[None]
    full = np.concatenate([ids[0], new])
    out["full_ids"] = full[None]
    out["full_attention_mask"] = np.ones_like(full)[None]
    # teacher forcing through the cache over the REFERENCE full ids (prompt + golden new ids), so a
    # bf16 run whose own greedy ids diverge is still compared position by position
    ref_full = npy("full_ids.npy")
    forced = ref_full[0, ids.shape[1]:] if ref_full is not None else new
    st = _C.lm_state_new(model._h, 1, ids.shape[1] + len(forced), model.kv_dtype, 512)
    first = _C.lm_forward(st, np.array([0]), np.array([len(ids[0])]), embeds=emb, logits_all=True)
    rest = [_C.lm_forward(st, np.array([0]), np.array([1]), ids=np.array([t])) for t in forced]
    out["logits_prompt_plus_generated"] = np.concatenate([first] + rest)[None]
    if "pixel_values_recomputed.npy" in files:
        images = [os.path.join(case_dir, f) for f in run.get("images", [])]
        out["pixel_values_recomputed"] = model.processor(images)["pixel_values"]
    def special(key, got, ref):
        if dtype == "bfloat16" and key in GREEDY_KEYS:
            # greedy ids under bf16 rounding: the documented bound is agreement on the first
            # BF16_GREEDY_PREFIX new tokens (later ones may legitimately diverge)
            return _compare_greedy_bf16(got, ref, ids.shape[1], key)
        return None

    results = _compare_outputs(case_dir, files, out, dtype, {}, special=special)
    model.unload()
    return results


def run_blip2_case(case_dir, case, dtype, device="cpu"):
    """BLIP-2 (OPT or Flan-T5): vision tower, Q-Former, projection, merged inputs, teacher-forced
    logits (prefill, and prompt + generated through the KV cache) and greedy ids."""
    from .blip2 import load_blip2
    files = case["files"]
    model = load_blip2(os.path.join(case_dir, case.get("model", {}).get("dir", "model")), dtype=dtype, device=device)
    run = case.get("run", {})

    def npy(name):
        return np.load(os.path.join(case_dir, name)) if name in files else None

    px, ids, mask = npy("pixel_values.npy"), npy("input_ids.npy"), npy("attention_mask.npy")
    if ids.shape[0] != 1:
        raise CaseError(f"{case_dir}: batched blip2 cases are not supported by this runner")
    feats = model.image_features(px)
    out = {k: v for k, v in feats.items()}
    m = mask[0].astype(bool) if mask is not None else np.ones(ids.shape[1], bool)
    lm_ids, emb = model.build_inputs(ids[0], feats["language_projection"][0])
    lm_mask = np.concatenate([np.ones(len(lm_ids) - ids.shape[1], np.int64), m.astype(np.int64)])
    out["lm_attention_mask"] = lm_mask[None]
    n_new = int(run.get("max_new_tokens", 8))
    cfg = GenerationConfig(max_new_tokens=n_new, do_sample=False, eos_token_id=[])
    h = model._h
    if not model.encoder_decoder:
        if not m.all():
            raise CaseError(f"{case_dir}: padded blip2 OPT cases are not supported by this runner")
        out["logits"] = model.forward(ids[0], pixel_values=px)[None]
        new = np.array(model._gen.generate([(lm_ids, emb)], cfg).sequences[0], dtype=np.int64)
        full = np.concatenate([ids[0], new])
        out.update(generated_new_ids=new[None], generate_output=full[None], full_ids=full[None],
                   full_attention_mask=np.ones_like(full)[None])
        ref_full = npy("full_ids.npy")
        forced = ref_full[0, ids.shape[1]:] if ref_full is not None else new
        st = _C.lm_state_new(h, 1, len(lm_ids) + len(forced), model.kv_dtype, 512)
        first = _C.lm_forward(st, np.array([0]), np.array([len(lm_ids)]), embeds=emb, logits_all=True)
        rest = [_C.lm_forward(st, np.array([0]), np.array([1]), ids=np.array([t])) for t in forced]
        out["logits_prompt_plus_generated"] = np.concatenate([first] + rest)[None]
    else:
        t5 = model.info["t5"]
        out["encoder_inputs_embeds"] = emb[None]
        enc_full = _C.t5_encode(h, emb, lm_mask)
        out["t5_encoder_last_hidden_state"] = enc_full[None]
        enc = np.ascontiguousarray(enc_full[lm_mask.astype(bool)])
        dec = npy("decoder_input_ids.npy")
        out["logits"] = model.forward(ids[0], pixel_values=px, decoder_input_ids=dec, attention_mask=lm_mask)[None]
        start = int(t5["decoder_start_token_id"])
        new = np.array(model._gen.generate([([start], None, enc)], cfg).sequences[0], dtype=np.int64)
        full = np.concatenate([[start], new]).astype(np.int64)
        out.update(generated_new_ids=new[None], generate_output=full[None], full_decoder_ids=full[None])
        ref_full = npy("full_decoder_ids.npy")
        forced = ref_full[0] if ref_full is not None else full
        st = _C.lm_state_new(h, 1, len(forced), model.kv_dtype, 512, enc_ctx=len(enc))
        _C.lm_state_set_encoder(st, 0, enc)
        out["logits_prompt_plus_generated"] = np.concatenate(
            [_C.lm_forward(st, np.array([0]), np.array([1]), ids=np.array([t])) for t in forced])[None]
        nb, md = int(t5["relative_attention_num_buckets"]), int(t5["relative_attention_max_distance"])
        le, ld = len(lm_mask), len(forced)
        out["relative_position_bucket_encoder"] = _C.t5_buckets(le, le, True, nb, md)
        out["relative_position_bucket_decoder"] = _C.t5_buckets(ld, ld, False, nb, md)
    if "pixel_values_recomputed.npy" in files:
        images = [os.path.join(case_dir, f) for f in run.get("images", [])]
        out["pixel_values_recomputed"] = model.processor(images)["pixel_values"]

    def special(key, got, ref):
        if dtype == "bfloat16" and key in GREEDY_KEYS:
            return _compare_greedy_bf16(got, ref, 1 if model.encoder_decoder else ids.shape[1], key)
        return None

    def valid_for(meta):
        vm = meta.get("valid_mask")
        return np.load(os.path.join(case_dir, vm)) if vm and vm in files else None

    results = _compare_outputs(case_dir, files, out, dtype, {}, valid_for=valid_for, special=special)
    model.unload()
    return results


GREEDY_KEYS = {"generated_new_ids", "generate_output", "full_ids", "full_decoder_ids"}
BF16_GREEDY_PREFIX = 2


def _compare_greedy_bf16(got, ref, prompt_len, key):
    got, ref = np.asarray(got), np.asarray(ref)
    start = 0 if key == "generated_new_ids" else prompt_len
    g, r = got.reshape(-1)[start:], ref.reshape(-1)[start:]
    agree = 0
    while agree < min(len(g), len(r)) and g[agree] == r[agree]:
        agree += 1
    ok = got.shape == ref.shape and agree >= min(BF16_GREEDY_PREFIX, len(r))
    return {"passed": bool(ok), "max_abs_error": 0.0 if agree == len(r) else 1.0,
            "tolerance": {"kind": "exact", "bf16_rule": f"first {BF16_GREEDY_PREFIX} new tokens equal"},
            "agreeing_prefix": int(agree)}


def run_case(case_dir, dtype="float32", device="cpu"):
    case = _load_case(case_dir)
    fam = case.get("family")
    if _is_preprocess(case):
        return run_preprocess_case(case_dir, case, dtype)
    if fam in MODEL_FAMILIES:
        return run_model_case(case_dir, case, dtype, device)
    if fam in LLAVA_FAMILIES:
        return run_llava_case(case_dir, case, dtype, device)
    if fam in BLIP2_FAMILIES:
        return run_blip2_case(case_dir, case, dtype, device)
    raise CaseError(f"{case_dir}: family {fam!r} is not supported by this version of mmsuite")


def _fmt(x):
    if x is None:
        return "-"
    if isinstance(x, float) and (math.isinf(x) or math.isnan(x)):
        return str(x)
    return f"{x:.3g}"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m mmsuite.conformance", description=__doc__.split("\n\n")[0])
    ap.add_argument("cases", nargs="+", help="case directories (holding case.json)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (model cases)")
    ap.add_argument("--json", dest="json_out", help="write per-file results as JSON")
    args = ap.parse_args(argv)
    report, failed = {}, 0
    for case_dir in args.cases:
        try:
            res = run_case(case_dir, args.dtype, args.device)
        except Exception as e:  # noqa: BLE001 - report every failing case, keep going
            res = {"<case>": {"passed": False, "max_abs_error": float("inf"), "tolerance": {},
                              "error": f"{type(e).__name__}: {e}"}}
        report[case_dir] = res
        n_bad = sum(not r["passed"] for r in res.values())
        failed += n_bad
        print(f"{'FAIL' if n_bad else 'PASS'} {case_dir} ({len(res) - n_bad}/{len(res)} files)")
        for fname, r in sorted(res.items()):
            extra = f" cos={r['min_cosine']:.6f}" if "min_cosine" in r else ""
            err = f"  [{r['error']}]" if "error" in r else ""
            print(f"  {'ok  ' if r['passed'] else 'MISS'} {fname}: max_abs={_fmt(r.get('max_abs_error'))} "
                  f"scaled={_fmt(r.get('scaled_error'))} tol={r['tolerance'].get('kind', '?')}{extra}{err}")
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1, default=float)
    total = sum(len(r) for r in report.values())
    print(f"{total - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
