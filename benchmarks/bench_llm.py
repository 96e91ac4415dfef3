"""Decoder and LLaVA benchmarks: mmsuite vs PyTorch + transformers, same process, same threads.

    python benchmarks/bench_llm.py [--threads 2] [--repeats 3] [--only tinyllama|vision|llava7b]

1. TinyLlama-1.1B-shaped Llama (random bf16 weights): prefill tokens/s of a 512-token prompt and
   decode tokens/s over 128 tokens; mmsuite bf16 vs transformers LlamaForCausalLM bf16 and fp32,
   and decode vs the memory-bandwidth roofline (weight + KV bytes read per token / read
   bandwidth measured in this run).
2. LLaVA-1.5 vision tower (CLIP ViT-L/14-336, 577 tokens, feature layer -2) + projector:
   images/s vs transformers' LlavaForConditionalGeneration.get_image_features.
3. LLaVA-1.5-7B-shaped end-to-end estimate: vision tower + 576-token prefill + 32 decoded
   tokens, from measured 1- and 2-layer 7B-shaped decoders (per-layer cost x 32).

Random checkpoints are written once to ~/.cache/mmsuite-bench/. Medians of interleaved repeats.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.environ.get("MMSUITE_SRC", os.path.join(os.path.dirname(__file__), "..")))
sys.path.insert(0, os.path.dirname(__file__))

import mmsuite  # noqa: E402
from mmsuite import _C  # noqa: E402
from common import machine_info, mm_prefill_decode  # noqa: E402

CACHE = os.path.expanduser("~/.cache/mmsuite-bench")

TINYLLAMA = dict(model_type="llama", vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                 num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048, rms_norm_eps=1e-5,
                 rope_theta=10000.0, tie_word_embeddings=False, torch_dtype="bfloat16", architectures=["LlamaForCausalLM"],
                 bos_token_id=1, eos_token_id=2)
LLAMA7B = dict(TINYLLAMA, vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_attention_heads=32,
               num_key_value_heads=32, max_position_embeddings=4096)


def _write_random(path, tensors, config, extra=None):
    """tensors: {name: shape}; random bf16 N(0, 0.02) (norm weights ~1) written as safetensors.
    Drawn on the GPU when torch sees one (seconds for 1B parameters instead of a minute)."""
    import torch
    from safetensors.torch import save_file
    os.makedirs(path, exist_ok=True)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator(device=dev).manual_seed(0)
    out = {}
    for name, shape in tensors.items():
        if name.endswith("norm.weight") or "layernorm" in name or "layer_norm" in name or "pre_layrnorm" in name:
            t = 1.0 + 0.1 * torch.randn(shape, generator=g, device=dev)
        else:
            t = 0.02 * torch.randn(shape, generator=g, device=dev)
        out[name] = t.to(torch.bfloat16).cpu().contiguous()
    save_file(out, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    for k, v in (extra or {}).items():
        with open(os.path.join(path, k), "w") as f:
            json.dump(v, f, indent=1)


def _llama_tensors(c, prefix="", layers=None):
    D, F, V = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    hd = D // c["num_attention_heads"]
    KV = c["num_key_value_heads"] * hd
    t = {f"{prefix}model.embed_tokens.weight": (V, D), f"{prefix}model.norm.weight": (D,), f"{prefix}lm_head.weight": (V, D)}
    for i in range(c["num_hidden_layers"] if layers is None else layers):
        p = f"{prefix}model.layers.{i}."
        t.update({p + "input_layernorm.weight": (D,), p + "post_attention_layernorm.weight": (D,),
                  p + "self_attn.q_proj.weight": (D, D), p + "self_attn.k_proj.weight": (KV, D),
                  p + "self_attn.v_proj.weight": (KV, D), p + "self_attn.o_proj.weight": (D, D),
                  p + "mlp.gate_proj.weight": (F, D), p + "mlp.up_proj.weight": (F, D), p + "mlp.down_proj.weight": (D, F)})
    return t


def ensure_llama(name, cfg):
    path = os.path.join(CACHE, name)
    if not os.path.isfile(os.path.join(path, "model.safetensors")):
        print(f"writing random checkpoint {path} ...", file=sys.stderr)
        _write_random(path, _llama_tensors(cfg), cfg)
    return path


def ensure_llava_vision():
    """LLaVA-1.5 shape: CLIP ViT-L/14-336 tower + projector to 4096 + a 1-layer 4096 LM."""
    path = os.path.join(CACHE, "llava15-vision")
    if os.path.isfile(os.path.join(path, "model.safetensors")):
        return path
    vc = dict(model_type="clip_vision_model", hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
              num_attention_heads=16, image_size=336, patch_size=14, projection_dim=768, hidden_act="quick_gelu")
    tc = dict(LLAMA7B, num_hidden_layers=1, vocab_size=1024)
    tc.pop("architectures"), tc.pop("torch_dtype")
    cfg = dict(model_type="llava", architectures=["LlavaForConditionalGeneration"], image_token_index=1000,
               vision_feature_layer=-2, vision_feature_select_strategy="default", projector_hidden_act="gelu",
               vision_config=vc, text_config=tc, torch_dtype="bfloat16", image_seq_length=576)
    t = {k: v for k, v in _llama_tensors(tc, "language_model.").items()}
    V = "vision_tower.vision_model."
    t.update({V + "embeddings.patch_embedding.weight": (1024, 3, 14, 14), V + "embeddings.class_embedding": (1024,),
              V + "embeddings.position_embedding.weight": (577, 1024), V + "pre_layrnorm.weight": (1024,),
              V + "pre_layrnorm.bias": (1024,), V + "post_layernorm.weight": (1024,), V + "post_layernorm.bias": (1024,)})
    for i in range(24):
        p = f"{V}encoder.layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            t[p + f"self_attn.{n}.weight"] = (1024, 1024)
            t[p + f"self_attn.{n}.bias"] = (1024,)
        t.update({p + "layer_norm1.weight": (1024,), p + "layer_norm1.bias": (1024,), p + "layer_norm2.weight": (1024,),
                  p + "layer_norm2.bias": (1024,), p + "mlp.fc1.weight": (4096, 1024), p + "mlp.fc1.bias": (4096,),
                  p + "mlp.fc2.weight": (1024, 4096), p + "mlp.fc2.bias": (1024,)})
    t.update({"multi_modal_projector.linear_1.weight": (4096, 1024), "multi_modal_projector.linear_1.bias": (4096,),
              "multi_modal_projector.linear_2.weight": (4096, 4096), "multi_modal_projector.linear_2.bias": (4096,)})
    pre = {"crop_size": {"height": 336, "width": 336}, "size": {"shortest_edge": 336}, "do_center_crop": True,
           "image_processor_type": "CLIPImageProcessor", "resample": 3}
    _write_random(path, t, cfg, {"preprocessor_config.json": pre})
    return path


def read_bandwidth(threads):
    if hasattr(_C, "measure_read_bandwidth"):
        return float(_C.measure_read_bandwidth(1 << 30, threads, 5))
    a = np.ones(1 << 28, dtype=np.float32)  # fallback: NumPy sum (1 GiB)
    t = time.perf_counter()
    a.sum()
    return a.nbytes / (time.perf_counter() - t)


def weight_bytes_per_token(cfg, ctx, kv_bytes=2):
    D, F, V, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    hd = D // cfg["num_attention_heads"]
    KV = cfg["num_key_value_heads"] * hd
    per_layer = (D * D * 2 + KV * D * 2 + 3 * D * F) * 2 + 2 * D * 2
    kv = L * 2 * ctx * KV * kv_bytes
    return L * per_layer + V * D * 2 + D * 2 + kv


def med(xs):
    return statistics.median(xs)


def bench_tinyllama(threads, repeats, n_prompt=512, n_decode=128):
    import torch
    from transformers import LlamaForCausalLM
    path = ensure_llama("tinyllama-bf16", TINYLLAMA)
    rng = np.random.default_rng(0)
    prompt = rng.integers(3, 32000, size=n_prompt).astype(np.int64)
    lm = mmsuite.load(path, dtype="bfloat16", context_length=n_prompt + n_decode + 8)
    lm_mem = mmsuite.load(path, dtype="bfloat16", context_length=n_prompt + n_decode + 8, mmap=False)
    tb = LlamaForCausalLM.from_pretrained(path, torch_dtype=torch.bfloat16, attn_implementation="sdpa").eval()
    tf = LlamaForCausalLM.from_pretrained(path, torch_dtype=torch.float32, attn_implementation="sdpa").eval()

    def mm_prefill():
        return mm_prefill_decode(lm._h, prompt, 0, n_prompt + n_decode + 8)[0]

    def mm_decode():
        return mm_prefill_decode(lm._h, prompt, n_decode, n_prompt + n_decode + 8)[1]

    def mm_mem_decode():  # weights read into huge-page memory (mmap=False)
        return mm_prefill_decode(lm_mem._h, prompt, n_decode, n_prompt + n_decode + 8)[1]

    def torch_prefill(m):
        ids = torch.from_numpy(prompt)[None]
        with torch.inference_mode():
            t = time.perf_counter()
            out = m(ids, use_cache=True)
            return time.perf_counter() - t, out

    def torch_decode(m):
        _, out = torch_prefill(m)
        pkv = out.past_key_values
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        with torch.inference_mode():
            t = time.perf_counter()
            for _ in range(n_decode):
                out = m(nxt, past_key_values=pkv, use_cache=True)
                pkv = out.past_key_values
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            return time.perf_counter() - t

    bw = []
    res = {k: [] for k in ("mm_prefill", "tb_prefill", "tf_prefill", "mm_decode", "mm_mem_decode", "tb_decode",
                           "tf_decode")}
    mm_prefill(), torch_prefill(tb), torch_prefill(tf)  # warm-up
    for _ in range(repeats):
        res["mm_prefill"].append(mm_prefill())
        res["tb_prefill"].append(torch_prefill(tb)[0])
        res["tf_prefill"].append(torch_prefill(tf)[0])
        res["mm_decode"].append(mm_decode())
        res["mm_mem_decode"].append(mm_mem_decode())
        res["tb_decode"].append(torch_decode(tb))
        res["tf_decode"].append(torch_decode(tf))
        bw.append(read_bandwidth(threads))
    bwm = med(bw)
    bpt = weight_bytes_per_token(TINYLLAMA, n_prompt + n_decode // 2)
    roof = bwm / bpt
    r = {"model": "TinyLlama-1.1B-shaped, random bf16", "prompt_tokens": n_prompt, "decode_tokens": n_decode,
         "prefill_tok_s": {"mmsuite_bf16": n_prompt / med(res["mm_prefill"]), "torch_bf16": n_prompt / med(res["tb_prefill"]),
                           "torch_fp32": n_prompt / med(res["tf_prefill"])},
         "decode_tok_s": {"mmsuite_bf16": n_decode / med(res["mm_decode"]),
                          "mmsuite_bf16_in_memory": n_decode / med(res["mm_mem_decode"]), "torch_bf16": n_decode / med(res["tb_decode"]),
                          "torch_fp32": n_decode / med(res["tf_decode"])},
         "read_bandwidth_GBs": bwm / 1e9, "bytes_per_token_GB": bpt / 1e9, "roofline_tok_s": roof}
    r["decode_vs_roofline"] = r["decode_tok_s"]["mmsuite_bf16"] / roof
    r["decode_in_memory_vs_roofline"] = r["decode_tok_s"]["mmsuite_bf16_in_memory"] / roof
    r["decode_vs_best_torch"] = r["decode_tok_s"]["mmsuite_bf16"] / max(r["decode_tok_s"]["torch_bf16"], r["decode_tok_s"]["torch_fp32"])
    r["prefill_vs_best_torch"] = r["prefill_tok_s"]["mmsuite_bf16"] / max(r["prefill_tok_s"]["torch_bf16"], r["prefill_tok_s"]["torch_fp32"])
    mem = lm.memory()
    st = _C.lm_state_new(lm._h, 1, n_prompt + n_decode + 8, "bfloat16", n_prompt)
    r["memory"] = dict(mem, **_C.lm_state_op(st, "info"))
    del tb, tf
    r["peak_rss_child"] = peak_rss_child(path)
    return r


def peak_rss_child(path, n_prompt=512, n_decode=32):
    """Peak RSS of a fresh process that loads the bf16 model, prefills n_prompt tokens and decodes
    n_decode, against weights + KV cache (the issue's bound: <= +15%)."""
    from common import run_child
    code = f"""
import numpy as np, mmsuite
from mmsuite import _C
lm = mmsuite.load({path!r}, dtype="bfloat16", context_length={n_prompt + n_decode})
st = _C.lm_state_new(lm._h, 1, {n_prompt + n_decode}, "bfloat16", {n_prompt})
lg = _C.lm_forward(st, np.array([0]), np.array([{n_prompt}]), ids=np.arange(3, {n_prompt} + 3))
for _ in range({n_decode}):
    lg = _C.lm_forward(st, np.array([0]), np.array([1]), ids=np.array([int(lg[0].argmax())]))
info = _C.lm_state_op(st, "info")
# VmHWM, not ru_maxrss: after fork+exec ru_maxrss keeps the (large) parent's figure
hwm = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(repr(dict(rss=hwm, weights=lm.info["weight_bytes_mapped"],
                owned=lm.info["weight_bytes_owned"], kv=info["kv_bytes"], scratch=info["scratch_bytes"])))
"""
    env = dict(os.environ, PYTHONPATH=os.environ.get("MMSUITE_SRC", os.path.join(os.path.dirname(__file__), "..")))
    r = run_child(code, env)
    r["rss_over_weights_plus_kv"] = r["rss"] / (r["weights"] + r["kv"]) - 1
    return r


def bench_vision(threads, repeats, batch=1):
    import torch
    path = ensure_llava_vision()
    m = mmsuite.load(path, dtype="bfloat16")
    px = np.random.default_rng(0).standard_normal((batch, 3, 336, 336)).astype(np.float32)
    from transformers import LlavaForConditionalGeneration
    tm = LlavaForConditionalGeneration.from_pretrained(path, torch_dtype=torch.bfloat16).eval()
    tpx = torch.from_numpy(px).to(torch.bfloat16)

    def torch_feats():
        with torch.inference_mode():
            return tm.get_image_features(pixel_values=tpx, vision_feature_layer=-2, vision_feature_select_strategy="default")

    def mm_feats():
        return _C.llava_image_features(m._h, px)

    got, ref = mm_feats(), torch_feats()
    if hasattr(ref, "pooler_output"):  # transformers 5 returns a ModelOutput (projected rows in pooler_output)
        ref = ref.pooler_output
    ref = ref[0] if isinstance(ref, (list, tuple)) else ref
    ref = ref.float().numpy().reshape(got.shape)
    err = float(np.abs(got - ref).max() / np.abs(ref).max())
    ts = {"mm": [], "torch": []}
    for _ in range(repeats):
        for k, fn in (("mm", mm_feats), ("torch", torch_feats)):
            t = time.perf_counter()
            fn()
            ts[k].append(time.perf_counter() - t)
    return {"model": "LLaVA-1.5 vision tower ViT-L/14-336 (23 layers used) + projector, random bf16", "batch": batch,
            "images_s": {"mmsuite_bf16": batch / med(ts["mm"]), "torch_bf16": batch / med(ts["torch"])},
            "speedup": med(ts["torch"]) / med(ts["mm"]), "scaled_diff_vs_torch": err}


def bench_llava7b_estimate(threads, repeats, vision_s, n_prompt=600, n_decode=32):
    """Per-layer cost of a 7B-shaped decoder from 1- and 2-layer models, scaled to 32 layers."""
    times = {}
    for L in (1, 2):
        cfg = dict(LLAMA7B, num_hidden_layers=L)
        path = ensure_llama(f"llama7b-shape-{L}layer", cfg)
        lm = mmsuite.load(path, dtype="bfloat16", context_length=n_prompt + n_decode + 8)
        prompt = np.random.default_rng(0).integers(3, 32000, size=n_prompt).astype(np.int64)
        pre, dec = [], []
        for _ in range(repeats):
            st = _C.lm_state_new(lm._h, 1, n_prompt + n_decode + 8, "bfloat16", n_prompt)
            t = time.perf_counter()
            lg = _C.lm_forward(st, np.array([0]), np.array([n_prompt]), ids=prompt)
            pre.append(time.perf_counter() - t)
            nxt = int(np.argmax(lg[0]))
            t = time.perf_counter()
            for _ in range(n_decode):
                lg = _C.lm_forward(st, np.array([0]), np.array([1]), ids=np.array([nxt]))
                nxt = int(np.argmax(lg[0]))
            dec.append(time.perf_counter() - t)
        times[L] = (med(pre), med(dec))
        lm.unload()
    per_pre, per_dec = times[2][0] - times[1][0], times[2][1] - times[1][1]
    pre32 = times[1][0] + 31 * per_pre
    dec32 = times[1][1] + 31 * per_dec
    return {"model": "LLaVA-1.5-7B-shaped estimate (32 x measured per-layer cost + head)", "prompt_tokens": n_prompt,
            "decode_tokens": n_decode, "vision_s": vision_s, "prefill_s": pre32, "decode_s": dec32,
            "total_s": vision_s + pre32 + dec32, "decode_tok_s": n_decode / dec32, "prefill_tok_s": n_prompt / pre32}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", choices=["tinyllama", "vision", "llava7b"], action="append")
    a = ap.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    mmsuite.set_num_threads(a.threads)
    print(json.dumps({"machine": machine_info()}))
    which = a.only or ["tinyllama", "vision", "llava7b"]
    vision_s = None
    if "tinyllama" in which:
        print(json.dumps(bench_tinyllama(a.threads, a.repeats)), flush=True)
    if "vision" in which or "llava7b" in which:
        v = bench_vision(a.threads, a.repeats)
        vision_s = 1.0 / v["images_s"]["mmsuite_bf16"]
        print(json.dumps(v), flush=True)
    if "llava7b" in which:
        print(json.dumps(bench_llava7b_estimate(a.threads, a.repeats, vision_s)), flush=True)


if __name__ == "__main__":
    main()
