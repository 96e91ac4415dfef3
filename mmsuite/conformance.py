"""Conformance runner: checks mmsuite against reference fixture cases.

    python -m mmsuite.conformance CASE_DIR... [--dtype float32|bfloat16] [--device cpu|cuda] [--json OUT]

A case directory holds `case.json` (schema_version 1, see shared/conformance/README.md) and the
files it lists. Model cases (families clip, siglip, openclip) load `model/` as the case says
and compare EVERY file whose role is `output` or `intermediate` (plus `check` files) with the
tolerance the case states. Preprocessing cases (clip_preprocess, siglip/preprocess*) decode
and preprocess every input image and compare decoded / resized uint8 intermediates and
pixel_values. Exit status is non-zero on any miss.

bfloat16 mode (--dtype bfloat16): float outputs must satisfy scaled_max_abs <= BF16_RTOL
(documented bound, docs/families.md) and every *_embeds row must have cosine >= 0.999 with the
reference; exact files stay exact."""
import argparse
import json
import math
import os
import sys

import numpy as np

BF16_RTOL = 0.08          # max|got-ref| <= BF16_RTOL * max|ref| for bf16 weights
BF16_MIN_COSINE = 0.999   # per-row cosine of embeddings

MODEL_FAMILIES = {"clip", "siglip", "openclip"}
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
        valid = None
        vm = meta.get("valid_mask")
        if vm:
            vm_file = vm.split()[0]
            if vm_file in files and mask is not None:
                valid = np.load(os.path.join(case_dir, vm_file))
        results[fname] = _compare(out[key], ref, tol, valid=valid, dtype=dtype, name=key)
    model.unload()
    return results


def run_case(case_dir, dtype="float32", device="cpu"):
    case = _load_case(case_dir)
    fam = case.get("family")
    if _is_preprocess(case):
        return run_preprocess_case(case_dir, case, dtype)
    if fam in MODEL_FAMILIES:
        return run_model_case(case_dir, case, dtype, device)
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
