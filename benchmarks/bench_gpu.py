"""GPU throughput: mmsuite device='cuda' vs PyTorch + transformers on the same GPU and weights,
interleaved repeats, median. Run by tools/gpu_check.sh.

1. Decoder (BENCH_LLM=0 skips it): TinyLlama-1.1B-shaped Llama, random bf16 weights (written once,
   drawn on the GPU): prefill tokens/s of a 512-token prompt and greedy decode tokens/s over 128
   tokens, mmsuite bf16 (bf16 KV cache) vs transformers LlamaForCausalLM bf16 (sdpa), plus the
   agreement of the two's last-position logits.
2. CLIP image encoder (BENCH_SHAPES, default b32,l14-336) at batch 1 / 8 / 32, fp32 and bf16 vs
   CLIPModel fp32 and bf16 autocast."""
import inspect
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.environ.get("MMSUITE_SRC", os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_clip import SHAPES, make_checkpoint  # noqa: E402
from common import mm_prefill_decode  # noqa: E402


def bench_decoder(root, n_prompt=512, n_decode=128, repeats=3):
    import torch
    from transformers import LlamaForCausalLM
    import mmsuite
    from mmsuite import _C
    import bench_llm
    bench_llm.CACHE = root
    t0 = time.perf_counter()
    path = bench_llm.ensure_llama("tinyllama-bf16", bench_llm.TINYLLAMA)
    t_ckpt = time.perf_counter() - t0
    V = bench_llm.TINYLLAMA["vocab_size"]
    prompt = np.random.default_rng(0).integers(3, V, size=n_prompt).astype(np.int64)
    n_ctx = n_prompt + n_decode + 8
    t0 = time.perf_counter()
    lm = mmsuite.load(path, device="cuda", dtype="bfloat16", context_length=n_ctx)
    t_load = time.perf_counter() - t0
    tm = LlamaForCausalLM.from_pretrained(path, dtype=torch.bfloat16, attn_implementation="sdpa").cuda().eval()
    tids = torch.from_numpy(prompt)[None].cuda()

    def mm_prefill():
        t_pre, _, lg = mm_prefill_decode(lm._h, prompt, 0, n_ctx, torch.cuda.synchronize)
        return t_pre, None, lg

    def mm_decode():
        return mm_prefill_decode(lm._h, prompt, n_decode, n_ctx, torch.cuda.synchronize)[1]

    params = inspect.signature(tm.forward).parameters
    cache_kw = "cache" if "cache" in params else "past_key_values"  # renamed in transformers 5.2x
    keep = {"logits_to_keep": 1} if "logits_to_keep" in params else {}  # last position only, as mmsuite

    def cache_of(out):
        return getattr(out, "cache", None) if cache_kw == "cache" else out.past_key_values

    def torch_call(ids, cache=None):
        kw = {cache_kw: cache} if cache is not None else {}
        return tm(ids, use_cache=True, **keep, **kw)

    def torch_prefill():
        with torch.inference_mode():
            torch.cuda.synchronize()
            t = time.perf_counter()
            out = torch_call(tids)
            last = out.logits[0, -1].float().cpu()
            return time.perf_counter() - t, out, last

    def torch_decode():
        _, out, _ = torch_prefill()
        pkv, nxt = cache_of(out), out.logits[:, -1].argmax(-1, keepdim=True)
        with torch.inference_mode():
            t = time.perf_counter()
            for _ in range(n_decode):
                out = torch_call(nxt, pkv)
                pkv, nxt = cache_of(out), out.logits[:, -1].argmax(-1, keepdim=True)
            torch.cuda.synchronize()
            return time.perf_counter() - t

    _, _, mm_last = mm_prefill()
    _, _, t_last = torch_prefill()
    ref = t_last.numpy()
    agree = {"scaled_max_diff": float(np.abs(mm_last[0] - ref).max() / np.abs(ref).max()),
             "top1_equal": bool(int(mm_last[0].argmax()) == int(ref.argmax()))}
    times = {k: [] for k in ("mm_prefill", "torch_prefill", "mm_decode", "torch_decode")}
    for _ in range(repeats):
        times["mm_prefill"].append(mm_prefill()[0])
        times["torch_prefill"].append(torch_prefill()[0])
        times["mm_decode"].append(mm_decode())
        times["torch_decode"].append(torch_decode())
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    r = {"section": "decoder", "model": "TinyLlama-1.1B-shaped Llama, random bf16", "prompt_tokens": n_prompt,
         "decode_tokens": n_decode,
         "prefill_tok_s": {"mmsuite_bf16": round(n_prompt / med["mm_prefill"], 1),
                           "torch_bf16": round(n_prompt / med["torch_prefill"], 1)},
         "decode_tok_s": {"mmsuite_bf16": round(n_decode / med["mm_decode"], 1),
                          "torch_bf16": round(n_decode / med["torch_decode"], 1)},
         "last_logits_vs_torch": agree, "checkpoint_s": round(t_ckpt, 1), "mmsuite_load_s": round(t_load, 1)}
    r["prefill_speedup"] = round(med["torch_prefill"] / med["mm_prefill"], 2)
    r["decode_speedup"] = round(med["torch_decode"] / med["mm_decode"], 2)
    print(json.dumps(r), flush=True)
    lm.unload()
    del tm
    torch.cuda.empty_cache()


def main():
    import torch
    from transformers import CLIPModel
    import mmsuite
    root = os.environ.get("BENCH_CACHE", "/tmp/mmsuite-bench")
    print(json.dumps({"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}), flush=True)
    if os.environ.get("BENCH_LLM", "1") != "0":
        t0 = time.perf_counter()
        bench_decoder(root)
        print(json.dumps({"section": "decoder", "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
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
