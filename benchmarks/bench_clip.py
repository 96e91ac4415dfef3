"""CLIP throughput, load time and memory: mmsuite vs PyTorch + transformers on the same weights.

    python benchmarks/bench_clip.py [--shapes b32,l14-336] [--batches 1,8,32] [--repeats 3] [--quick]

Random-weight CLIP models of the ViT-B/32 and ViT-L/14-336 shapes are written once with
transformers (safetensors) to --cache; both engines load those files. For every batch size the
four variants (mmsuite fp32, mmsuite bf16, torch fp32, torch bf16 autocast) run interleaved,
`--repeats` rounds, and the median is reported; the comparator is the faster torch variant.
Load time + first embedding and peak RSS are measured in fresh processes."""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.environ.get("MMSUITE_SRC", os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import interleaved, machine_info, run_child  # noqa: E402

SHAPES = {
    "b32": dict(vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                            image_size=224, patch_size=32),
                text=dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8),
                projection_dim=512),
    "l14-336": dict(vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                                image_size=336, patch_size=14),
                    text=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12),
                    projection_dim=768),
}


def make_checkpoint(shape, root):
    d = os.path.join(root, f"clip-{shape}")
    if os.path.exists(os.path.join(d, "model.safetensors")):
        return d
    import torch
    from transformers import CLIPConfig, CLIPModel
    s = SHAPES[shape]
    cfg = CLIPConfig(text_config=s["text"], vision_config=s["vision"], projection_dim=s["projection_dim"])
    torch.manual_seed(0)
    model = CLIPModel(cfg).eval()
    model.save_pretrained(d)
    return d


def bench_throughput(path, shape, batches, repeats, out):
    import torch
    from transformers import CLIPModel
    import mmsuite
    S = SHAPES[shape]["vision"]["image_size"]
    m32 = mmsuite.load(path, dtype="float32")
    m16 = mmsuite.load(path, dtype="bfloat16")
    tm = CLIPModel.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").eval()
    rng = np.random.default_rng(0)
    for B in batches:
        px = rng.standard_normal((B, 3, S, S), dtype=np.float32)
        tpx = torch.from_numpy(px)

        def torch_fp32():
            with torch.inference_mode():
                tm.get_image_features(pixel_values=tpx)

        def torch_bf16():
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                tm.get_image_features(pixel_values=tpx)

        fns = {"mmsuite_fp32": lambda: m32.encode_image(pixel_values=px),
               "mmsuite_bf16": lambda: m16.encode_image(pixel_values=px),
               "torch_fp32": torch_fp32, "torch_bf16_autocast": torch_bf16}
        t = interleaved(fns, repeats if B * S < 32 * 300 else max(1, repeats - 1))
        ips = {k: B / v for k, v in t.items()}
        best = max(ips["torch_fp32"], ips["torch_bf16_autocast"])
        row = {"shape": shape, "batch": B, "images_per_s": ips,
               "speedup_fp32": ips["mmsuite_fp32"] / best, "speedup_bf16": ips["mmsuite_bf16"] / best}
        out.append(row)
        print(json.dumps(row), flush=True)
    # texts/s at batch 32, 77 tokens
    ids = rng.integers(1, 49000, size=(32, 77)).astype(np.int64)
    ids[:, -1] = 49407
    mask = np.ones_like(ids)
    tids, tmask = torch.from_numpy(ids), torch.from_numpy(mask)

    def t32():
        with torch.inference_mode():
            tm.get_text_features(input_ids=tids, attention_mask=tmask)

    def t16():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            tm.get_text_features(input_ids=tids, attention_mask=tmask)

    t = interleaved({"mmsuite_fp32": lambda: m32.encode_text(input_ids=ids, attention_mask=mask),
                     "mmsuite_bf16": lambda: m16.encode_text(input_ids=ids, attention_mask=mask),
                     "torch_fp32": t32, "torch_bf16_autocast": t16}, repeats)
    tps = {k: 32 / v for k, v in t.items()}
    best = max(tps["torch_fp32"], tps["torch_bf16_autocast"])
    row = {"shape": shape, "texts_batch": 32, "texts_per_s": tps, "speedup_fp32": tps["mmsuite_fp32"] / best,
           "speedup_bf16": tps["mmsuite_bf16"] / best}
    out.append(row)
    print(json.dumps(row), flush=True)


LOAD_MMSUITE = """
import time, resource, numpy as np, sys
sys.path.insert(0, {root!r})
t = time.perf_counter()
sys.path.insert(0, {src!r})
import mmsuite
m = mmsuite.load({path!r}, dtype={dtype!r})
e = m.encode_image(pixel_values=np.zeros((1, 3, {S}, {S}), np.float32))["image_embeds"]
dt = time.perf_counter() - t
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(dict(seconds=dt, peak_rss_mb=int(hwm) / 1024))
"""

LOAD_TORCH = """
import time, resource, numpy as np
t = time.perf_counter()
import torch
from transformers import CLIPModel
m = CLIPModel.from_pretrained({path!r}, dtype=torch.float32).eval()
with torch.inference_mode():
    e = m.get_image_features(pixel_values=torch.zeros((1, 3, {S}, {S})))
dt = time.perf_counter() - t
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(dict(seconds=dt, peak_rss_mb=int(hwm) / 1024))
"""


def bench_load(path, shape, out):
    S = SHAPES[shape]["vision"]["image_size"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = {"shape": shape}
    for _ in range(2):  # second round: warm page cache for both
        res["mmsuite_fp32"] = run_child(LOAD_MMSUITE.format(root=root, src=os.environ.get('MMSUITE_SRC', root), path=path, dtype="float32", S=S))
        res["mmsuite_bf16"] = run_child(LOAD_MMSUITE.format(root=root, src=os.environ.get('MMSUITE_SRC', root), path=path, dtype="bfloat16", S=S))
        res["torch_fp32"] = run_child(LOAD_TORCH.format(path=path, S=S))
    out.append(res)
    print(json.dumps(res), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="b32,l14-336")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache", "mmsuite-bench"))
    ap.add_argument("--quick", action="store_true", help="b32 only, batches 1,8, one repeat")
    ap.add_argument("--json", help="write all rows here")
    args = ap.parse_args()
    if args.quick:
        args.shapes, args.batches, args.repeats = "b32", "1,8", 1
    import torch
    import mmsuite
    torch.set_num_threads(mmsuite.get_num_threads())
    info = machine_info()
    print(json.dumps({"machine": info}), flush=True)
    rows = []
    for shape in args.shapes.split(","):
        path = make_checkpoint(shape, args.cache)
        bench_load(path, shape, rows)
        bench_throughput(path, shape, [int(b) for b in args.batches.split(",")], args.repeats, rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "rows": rows, "date": time.strftime("%Y-%m-%d")}, f, indent=1)


if __name__ == "__main__":
    main()
