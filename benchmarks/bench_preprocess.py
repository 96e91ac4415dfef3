"""Preprocessing throughput: decode + resize + center crop + normalize of 12-megapixel JPEG photos to
224x224, mmsuite (C, all threads) vs Pillow + transformers CLIPImageProcessor (its usual path:
PIL.Image.open(...) then the processor), interleaved rounds, median images/s.

    python benchmarks/bench_preprocess.py [--n 16] [--repeats 3]"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.environ.get("MMSUITE_SRC", os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import interleaved, machine_info  # noqa: E402


def make_photos(n, folder):
    """4000x3000 q90 JPEGs made from a real photo (the chelsea fixture) upscaled + sensor-like noise."""
    from PIL import Image
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "data",
                       "clip_preprocess", "openai224_chelsea", "chelsea.png")
    base = Image.open(src).convert("RGB").resize((4000, 3000), Image.BICUBIC)
    arr = np.asarray(base).astype(np.int16)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = os.path.join(folder, f"photo{i:02d}.jpg")
        if not os.path.exists(p):
            noisy = np.clip(arr + rng.integers(-6, 7, arr.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(p, quality=90)
        paths.append(p)
    return paths


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--folder", default=os.path.join(tempfile.gettempdir(), "mmsuite-photos"))
    args = ap.parse_args()
    os.makedirs(args.folder, exist_ok=True)
    from PIL import Image
    from transformers import CLIPImageProcessor
    from mmsuite.image_processor import ImageProcessor
    paths = make_photos(args.n, args.folder)
    hf = CLIPImageProcessor()  # OpenAI CLIP defaults: shortest edge 224, bicubic, crop 224
    mm = ImageProcessor("CLIPImageProcessor")
    mm_draft = ImageProcessor("CLIPImageProcessor", jpeg_draft=True)

    def pil_hf():
        hf(images=[Image.open(p) for p in paths], return_tensors="np")

    t = interleaved({"mmsuite": lambda: mm(paths), "mmsuite_jpeg_draft": lambda: mm_draft(paths),
                     "pillow_clipimageprocessor": pil_hf}, args.repeats)
    ips = {k: args.n / v for k, v in t.items()}
    a = mm(paths[:2])
    b = hf(images=[Image.open(p) for p in paths[:2]], return_tensors="np")["pixel_values"]
    res = {"machine": machine_info(), "images": f"{args.n} x 4000x3000 JPEG q90 -> 224x224", "images_per_s": ips,
           "speedup": ips["mmsuite"] / ips["pillow_clipimageprocessor"],
           "speedup_draft": ips["mmsuite_jpeg_draft"] / ips["pillow_clipimageprocessor"],
           "max_abs_diff_vs_hf": float(np.abs(a - b).max())}
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
