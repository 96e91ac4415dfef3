"""GPU throughput: mmsuite device='cuda' vs PyTorch + transformers CLIPModel on the same GPU and
weights (fp32 and bf16 autocast), interleaved repeats, median. Run by tools/gpu_check.sh."""
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.environ.get("MMSUITE_SRC", os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_clip import SHAPES, make_checkpoint  # noqa: E402


def main():
    import torch
    from transformers import CLIPModel
    import mmsuite
    root = os.environ.get("BENCH_CACHE", "/tmp/mmsuite-bench")
    print(json.dumps({"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}), flush=True)
    for shape in os.environ.get("BENCH_SHAPES", "b32,l14-336").split(","):
        path = make_checkpoint(shape, root)
        S = SHAPES[shape]["vision"]["image_size"]
        m32 = mmsuite.load(path, device="cuda", dtype="float32")
        m16 = mmsuite.load(path, device="cuda", dtype="bfloat16")
        tm = CLIPModel.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").cuda().eval()
        for B in (1, 8, 32):
            px = np.random.default_rng(0).standard_normal((B, 3, S, S), dtype=np.float32)

            def torch_run(bf16):
                with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                    tpx = torch.from_numpy(px).cuda()
                    o = tm.get_image_features(pixel_values=tpx)
                    getattr(o, "pooler_output", o).float().cpu()

            fns = {"mmsuite_fp32": lambda: m32.encode_image(pixel_values=px),
                   "mmsuite_bf16": lambda: m16.encode_image(pixel_values=px),
                   "torch_fp32": lambda: torch_run(False), "torch_bf16_autocast": lambda: torch_run(True)}
            for fn in fns.values():
                fn()
            times = {k: [] for k in fns}
            for _ in range(5):
                for k, fn in fns.items():
                    torch.cuda.synchronize()
                    t = time.perf_counter()
                    fn()
                    torch.cuda.synchronize()
                    times[k].append(time.perf_counter() - t)
            ips = {k: B / sorted(v)[len(v) // 2] for k, v in times.items()}
            best = max(ips["torch_fp32"], ips["torch_bf16_autocast"])
            print(json.dumps({"shape": shape, "batch": B, "images_per_s": {k: round(v, 1) for k, v in ips.items()},
                              "speedup_bf16_vs_best_torch": round(ips["mmsuite_bf16"] / best, 2),
                              "speedup_fp32_vs_torch_fp32": round(ips["mmsuite_fp32"] / ips["torch_fp32"], 2)}), flush=True)


if __name__ == "__main__":
    main()
