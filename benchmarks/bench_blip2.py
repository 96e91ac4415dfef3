"""BLIP-2 OPT-2.7B captioning: mmsuite vs PyTorch + transformers (bf16), same process, same threads.

    python benchmarks/bench_blip2.py [--threads N] [--repeats 3] [--batch 8] [--tokens 20]
                                     [--torch-only] [--json OUT] [--model DIR]

Checkpoint: the random-weight Salesforce/blip2-opt-2.7b-shaped model of tools/make_blip2_bench.py
(written on first use to ~/.cache/mmsuite-bench/blip2-opt2.7b-shape/, about a minute and 7.5 GB).

1. Caption latency, batch 1: one synthetic 224x224 image -> preprocessing, ViT-g vision tower,
   Q-Former + language projection, OPT prefill of 32 image tokens + BOS, exactly --tokens greedy
   tokens (transformers: generate(pixel_values, input_ids=[<image>]*32 + [BOS],
   max_new_tokens=min_new_tokens=N, do_sample=False) + batch_decode; mmsuite: Blip2.caption).
   Split into phases:
   * transformers: measured directly, phase by phase (vision_model; qformer + language_projection
     as generate() runs them; language_model prefill; N-1 decode steps with the KV cache; the
     tokens are checked against generate()'s).
   * mmsuite (only the public API): preprocess = m.processor(image); vision + Q-Former +
     projection = m.image_features(pixel_values) (one call, not separable); prefill (+ first
     token, tokenization) = caption(N=1) - preprocess - image_features; per-token decode =
     (caption(N) - caption(N=1)) / (N-1).
2. Captions/s at batch --batch (different images, N tokens each), end to end.

Rooflines: vision FLOPs per image (2 x linear params x 257 tokens + attention) / vision time =
achieved TFLOP/s (Q-Former and prefill likewise); decode bytes per token (OPT layer weights +
lm_head + KV cache read per step, bf16) / per-token time = achieved GB/s, next to a read bandwidth
measured in this run. The dtype transformers runs the Q-Former in is recorded (torch_qformer_dtype):
its _keep_in_fp32_modules upcast applies to float16 loads only, so with bf16 it is bf16 (5.x).

OPENBLAS_NUM_THREADS=1; torch.set_num_threads and mmsuite.set_num_threads both --threads;
torch.inference_mode. Each measurement runs --warmup times, then --repeats interleaved rounds
(transformers, mmsuite, next measurement, ...); medians. Ratios are torch time / mmsuite time
(> 1: mmsuite faster). On a shared machine the run prints WARNING lines when the load average
says other processes competed, when repeats differ by > 25%, when the directly timed torch phases
do not add up to its generate() time, or when weights were read back from disk while timed.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("MMSUITE_SRC", os.path.join(HERE, "..")))
sys.path.insert(0, HERE)

DEFAULT_MODEL = os.path.expanduser("~/.cache/mmsuite-bench/blip2-opt2.7b-shape")
N_QUERY = 32


def med(xs):
    return statistics.median(xs)


# ---------------------------------------------------------------------------------------------
# machine / checkpoint

def machine(threads, torch_only):
    info = None
    if not torch_only:
        try:
            from common import machine_info
            info = machine_info()
        except Exception as e:  # noqa: BLE001 - mmsuite not importable: describe the machine without it
            print(f"note: common.machine_info failed ({e!r}); describing the machine without mmsuite", file=sys.stderr)
    if info is None:
        cpu = "unknown"
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
        except OSError:
            pass
        info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}
    import torch
    import transformers
    info.update(host=platform.node(), torch=torch.__version__, transformers=transformers.__version__,
                torch_threads=torch.get_num_threads(), threads=threads,
                openblas_threads=os.environ.get("OPENBLAS_NUM_THREADS"),
                torch_bf16_isa=torch.backends.cpu.get_cpu_capability())
    try:
        info["affinity_cores"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    return info


def ensure_model(path):
    tool = os.path.join(HERE, "..", "tools", "make_blip2_bench.py")
    subprocess.run([sys.executable, tool, "--out", path], check=True)
    return path


def synthetic_images(n, size=224):
    """n different deterministic HxWx3 uint8 images (gradients, rings and stripes)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    out = []
    for k in range(n):
        ph = 0.7 * k
        r = 0.5 + 0.5 * np.sin(2 * np.pi * ((k + 1) * x + 0.5 * y) + ph)
        g = 0.5 + 0.5 * np.cos(2 * np.pi * (k + 2) * np.hypot(x - 0.5, y - 0.4 + 0.03 * k))
        b = ((np.floor(x * (4 + k)) + np.floor(y * (3 + k))) % 2) * 0.6 + 0.2 * x
        out.append(np.clip(np.stack([r, g, b], -1) * 255, 0, 255).astype(np.uint8))
    return out


# ---------------------------------------------------------------------------------------------
# analytic work per phase (from config.json)

def work_model(cfg, batch_ctx):
    v, q, t = cfg["vision_config"], cfg["qformer_config"], cfg["text_config"]
    D, F, L = v["hidden_size"], v["intermediate_size"], v["num_hidden_layers"]
    T = (v["image_size"] // v["patch_size"]) ** 2 + 1
    vision_linear = L * (4 * D * D + 2 * D * F)
    vision_flops = 2 * vision_linear * T + L * 4 * T * T * D + 2 * (3 * v["patch_size"] ** 2 * D) * (T - 1)
    H, I, Q = q["hidden_size"], q["intermediate_size"], cfg.get("num_query_tokens", N_QUERY)
    E, freq = q.get("encoder_hidden_size", D), q.get("cross_attention_frequency", 2)
    qf = 0
    for i in range(q["num_hidden_layers"]):
        qf += 2 * 4 * H * H * Q + 4 * Q * Q * H + 2 * 2 * H * I * Q  # self-attn, FFN (query branch)
        if i % freq == 0:  # cross-attention: q/out on queries, k/v on the image tokens
            qf += 2 * (2 * H * H * Q + 2 * E * H * T) + 4 * Q * T * H
    Dt, Ft, Lt, V = t["hidden_size"], t["ffn_dim"], t["num_hidden_layers"], t["vocab_size"]
    qf += 2 * H * Dt * Q  # language_projection
    layer_params = Lt * (4 * Dt * Dt + 2 * Dt * Ft + 4 * Dt + Ft + Dt + 4 * Dt)  # weights, biases, 2 LNs
    S = Q + 1
    prefill_flops = 2 * Lt * (4 * Dt * Dt + 2 * Dt * Ft) * S + Lt * 4 * S * S * Dt + 2 * V * Dt
    ctx = S + batch_ctx // 2  # mean context over the decode steps
    kv_bytes = Lt * 2 * ctx * Dt * 2
    decode_bytes = 2 * (layer_params + V * Dt + 2 * Dt) + kv_bytes  # bf16 weights + lm_head (tied) + final LN
    return {"vision_tokens": T, "vision_flops_per_image": vision_flops, "vision_linear_params": vision_linear,
            "qformer_proj_flops_per_image": qf, "prefill_tokens": S, "prefill_flops": prefill_flops,
            "decode_bytes_per_step": decode_bytes, "decode_kv_bytes_per_step": kv_bytes,
            "opt_weight_bytes_bf16": 2 * (layer_params + V * Dt + 2 * Dt)}


def read_bandwidth(threads, torch_only):
    """Bytes/s reading 1 GiB: mmsuite's C probe when there, else a torch sum on `threads` threads."""
    if not torch_only:
        try:
            from mmsuite import _C
            if hasattr(_C, "measure_read_bandwidth"):
                return float(_C.measure_read_bandwidth(1 << 30, threads, 5)), "mmsuite._C.measure_read_bandwidth"
        except Exception:  # noqa: BLE001
            pass
    import torch
    a = torch.ones(1 << 28, dtype=torch.float32)
    a.sum()
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        a.sum()
        ts.append(time.perf_counter() - t)
    return a.numel() * 4 / min(ts), "torch.sum over 1 GiB fp32 (best of 5)"


# ---------------------------------------------------------------------------------------------
# transformers side

class TorchBlip2:
    def __init__(self, path):
        import torch
        from transformers import Blip2ForConditionalGeneration, Blip2Processor
        self.torch = torch
        t = time.perf_counter()
        self.model = Blip2ForConditionalGeneration.from_pretrained(path, dtype=torch.bfloat16).eval()
        self.load_s = time.perf_counter() - t
        self.proc = Blip2Processor.from_pretrained(path)
        self.cfg = self.model.config
        self.image_token = self.cfg.image_token_index
        self.bos = self.cfg.text_config.bos_token_id
        self.eos = self.cfg.text_config.eos_token_id
        self.prompt = [self.image_token] * self.cfg.num_query_tokens + [self.bos]
        self.attn = getattr(self.model.config, "_attn_implementation", None)
        self.qformer_dtype = str(next(self.model.qformer.parameters()).dtype)
        import inspect  # transformers 5.x names the KV cache argument `cache` (past_key_values: deprecated)
        params = inspect.signature(self.model.language_model.forward).parameters
        self.cache_kw = "cache" if "cache" in params else "past_key_values"

    @staticmethod
    def _cache(out):
        c = getattr(out, "cache", None) if "cache" in out else None
        return c if c is not None else out.past_key_values

    def pixel_values(self, images):
        return self.proc.image_processor(images=images, return_tensors="pt")["pixel_values"]

    def _ids(self, b):
        return self.torch.tensor([self.prompt] * b, dtype=self.torch.long)

    def caption(self, images, n):
        """End to end as a user runs it: preprocess, generate(n tokens), decode."""
        torch = self.torch
        px = self.pixel_values(images).to(torch.bfloat16)
        ids = self._ids(px.shape[0])
        with torch.inference_mode():
            out = self.model.generate(pixel_values=px, input_ids=ids, attention_mask=torch.ones_like(ids),
                                      max_new_tokens=n, min_new_tokens=n, do_sample=False, num_beams=1)
        new = out[:, ids.shape[1]:]
        assert new.shape[1] == n, new.shape
        return self.proc.tokenizer.batch_decode(new, skip_special_tokens=True), new

    def features(self, px):
        """vision_model, then Q-Former + language_projection exactly as generate() runs them."""
        torch, m = self.torch, self.model
        with torch.inference_mode():
            t0 = time.perf_counter()
            img = m.vision_model(px, return_dict=True).last_hidden_state
            t1 = time.perf_counter()
            mask = torch.ones(img.shape[:-1], dtype=torch.long)
            qo = m.qformer(query_embeds=m.query_tokens.expand(img.shape[0], -1, -1), encoder_hidden_states=img,
                           encoder_attention_mask=mask, return_dict=True).last_hidden_state
            q_raw = qo
            if qo.dtype != img.dtype:
                qo = qo.to(img.dtype)
            proj = m.language_projection(qo)
            t2 = time.perf_counter()
        return (t1 - t0, t2 - t1), {"vision_last_hidden_state": img, "qformer_last_hidden_state": q_raw,
                                    "language_projection": proj}

    def split(self, images, n):
        """Phase by phase: preprocess, vision, Q-Former + projection, prefill (-> first token),
        n-1 cached decode steps (EOS suppressed, as min_new_tokens does). Seconds per phase."""
        torch, m = self.torch, self.model
        t = time.perf_counter()
        px = self.pixel_values(images).to(torch.bfloat16)
        t_pre = time.perf_counter() - t
        (t_vis, t_qf), f = self.features(px)
        lm = m.language_model
        ids = self._ids(px.shape[0])
        with torch.inference_mode():
            t = time.perf_counter()
            emb = m.get_input_embeddings()(ids)
            mask = (ids == self.image_token).unsqueeze(-1)
            emb = emb.masked_scatter(mask, f["language_projection"].to(emb.dtype))
            att = torch.ones_like(ids)
            out = lm(inputs_embeds=emb, attention_mask=att, use_cache=True, logits_to_keep=1)
            lg = out.logits[:, -1].float()
            lg[:, self.eos] = -float("inf")
            nxt = lg.argmax(-1, keepdim=True)
            t_prefill = time.perf_counter() - t
            toks = [nxt]
            pkv = self._cache(out)
            ones = torch.ones((ids.shape[0], 1), dtype=att.dtype)
            t = time.perf_counter()
            for _ in range(n - 1):
                att = torch.cat([att, ones], 1)
                out = lm(input_ids=nxt, attention_mask=att, use_cache=True, logits_to_keep=1, **{self.cache_kw: pkv})
                pkv = self._cache(out)
                lg = out.logits[:, -1].float()
                lg[:, self.eos] = -float("inf")
                nxt = lg.argmax(-1, keepdim=True)
                toks.append(nxt)
            t_dec = time.perf_counter() - t
        return {"preprocess_s": t_pre, "vision_s": t_vis, "qformer_proj_s": t_qf, "prefill_s": t_prefill,
                "decode_total_s": t_dec, "decode_per_token_s": t_dec / max(n - 1, 1)}, torch.cat(toks, 1)


# ---------------------------------------------------------------------------------------------
# mmsuite side (public API only)

class MMBlip2:
    def __init__(self, path):
        import mmsuite
        t = time.perf_counter()
        # image_cache=0: Blip2 caches image features by pixel hash, and the benchmark captions the
        # same image in every repeat; with the cache on, repeats would skip the vision tower.
        self.m = mmsuite.load(path, dtype="bfloat16", image_cache=0)
        self.load_s = time.perf_counter() - t
        self.kind = type(self.m).__name__

    def caption(self, images, n):
        out = self.m.caption(images, max_new_tokens=n, min_new_tokens=n)
        return [out] if isinstance(out, str) else list(out)

    def pixel_values(self, images):
        return np.asarray(self.m.processor(images)["pixel_values"], dtype=np.float32)

    def features(self, px):
        t = time.perf_counter()
        f = self.m.image_features(np.ascontiguousarray(px, dtype=np.float32))
        return time.perf_counter() - t, f


# ---------------------------------------------------------------------------------------------

def timed(fn):
    t = time.perf_counter()
    r = fn()
    return time.perf_counter() - t, r


def scaled_diff(got, ref):
    got = np.asarray(got, dtype=np.float32)
    ref = np.asarray(ref, dtype=np.float32).reshape(got.shape)
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))


def run(a):
    import torch
    torch.set_num_threads(a.threads)
    mm_on = not a.torch_only
    if mm_on:
        import mmsuite
        mmsuite.set_num_threads(a.threads)
    info = machine(a.threads, a.torch_only)
    print(json.dumps({"machine": info}), flush=True)

    path = ensure_model(a.model)
    with open(os.path.join(path, "config.json")) as f:
        cfg = json.load(f)
    n, B = a.tokens, a.batch
    W = work_model(cfg, n)
    img1 = synthetic_images(1)[0]
    imgs = synthetic_images(B)

    res0 = {"loadavg_start": loadavg()}
    tb = TorchBlip2(path)
    mm = MMBlip2(path) if mm_on else None
    res = {**res0, "machine": info, "model": path, "tokens": n, "batch": B, "repeats": a.repeats, "warmup": a.warmup,
           "torch_load_s": tb.load_s, "torch_attn_implementation": tb.attn, "torch_qformer_dtype": tb.qformer_dtype}
    if mm_on:
        res.update(mmsuite_load_s=mm.load_s, mmsuite_model_class=mm.kind)

    # ---- one-off checks (outside the timings) -------------------------------------------------
    px_t = tb.pixel_values(img1)
    checks = {}
    (_, _), tf = tb.features(px_t.to(torch.bfloat16))
    if mm_on:
        px_m = mm.pixel_values(img1)
        checks["pixel_values_max_abs_diff"] = float(np.abs(px_m.reshape(px_t.shape) - px_t.numpy()).max())
        _, mf = mm.features(px_t.numpy())
        for k in ("vision_last_hidden_state", "qformer_last_hidden_state", "language_projection"):
            checks[f"{k}_scaled_diff"] = scaled_diff(mf[k], tf[k].float().numpy())

    # ---- the measurements: name -> (side, fn); interleaved rounds --------------------------------
    store = {}

    def t_cap1():
        dt, (txt, ids) = timed(lambda: tb.caption(img1, n))
        store["torch_caption"], store["torch_ids"] = txt, ids
        return {"e2e_s": dt}

    def t_split1():
        r, ids = tb.split(img1, n)
        store["torch_split_ids"] = ids
        return r

    def t_capB():
        dt, (txt, _) = timed(lambda: tb.caption(imgs, n))
        store["torch_captions_b"] = txt
        return {"e2e_s": dt}

    def m_cap1():
        dt, txt = timed(lambda: mm.caption(img1, n))
        store["mm_caption"] = txt
        return {"e2e_s": dt}

    def m_split1():
        t_pre, px = timed(lambda: mm.pixel_values(img1))
        t_feat, _ = mm.features(px)
        t_c1, _ = timed(lambda: mm.caption(img1, 1))
        return {"preprocess_s": t_pre, "image_features_s": t_feat, "caption1_s": t_c1}

    def m_capB():
        dt, txt = timed(lambda: mm.caption(imgs, n))
        store["mm_captions_b"] = txt
        return {"e2e_s": dt}

    plan = [("torch", "caption_b1", t_cap1), ("mmsuite", "caption_b1", m_cap1),
            ("torch", "split_b1", t_split1), ("mmsuite", "split_b1", m_split1),
            ("torch", f"caption_b{B}", t_capB), ("mmsuite", f"caption_b{B}", m_capB)]
    plan = [p for p in plan if mm_on or p[0] == "torch"]
    times = {(s, k): [] for s, k, _ in plan}
    t_all = time.perf_counter()
    for _ in range(a.warmup):
        for s, k, fn in plan:
            fn()
    for r in range(a.repeats):
        for s, k, fn in plan:
            f0 = major_faults()
            row = fn()
            row["major_faults"] = major_faults() - f0  # pages read back from disk while timed
            times[(s, k)].append(row)
        print(f"round {r + 1}/{a.repeats} done ({time.perf_counter() - t_all:.0f}s)", file=sys.stderr, flush=True)
    bw, bw_src = read_bandwidth(a.threads, a.torch_only)

    def medians(s, k):
        rows = times[(s, k)]
        return {f: med([row[f] for row in rows]) for f in rows[0] if f != "major_faults"}

    # max/min over the rounds of every timed quantity: a shared machine's neighbours show up here
    res["spread_max_over_min"] = {f"{s}/{k}/{f}": max(r[f] for r in rows) / max(min(r[f] for r in rows), 1e-12)
                                  for (s, k), rows in times.items() for f in rows[0] if f != "major_faults"}
    res["major_faults"] = {f"{s}/{k}": [r["major_faults"] for r in rows] for (s, k), rows in times.items()}

    # ---- batch 1 ----------------------------------------------------------------------------
    tc, ts = medians("torch", "caption_b1"), medians("torch", "split_b1")
    torch_b1 = dict(ts, e2e_s=tc["e2e_s"],
                    split_sum_s=ts["preprocess_s"] + ts["vision_s"] + ts["qformer_proj_s"] + ts["prefill_s"]
                    + ts["decode_total_s"],
                    vision_qformer_proj_s=ts["vision_s"] + ts["qformer_proj_s"])
    b1 = {"torch": torch_b1}
    checks["torch_split_tokens_match_generate"] = bool(torch.equal(store["torch_split_ids"], store["torch_ids"]))
    checks["torch_phase_sum_over_generate"] = torch_b1["split_sum_s"] / torch_b1["e2e_s"]
    checks["torch_caption_b1"] = store["torch_caption"][0]
    if mm_on:
        mc, ms = medians("mmsuite", "caption_b1"), medians("mmsuite", "split_b1")
        mm_b1 = {"e2e_s": mc["e2e_s"], "preprocess_s": ms["preprocess_s"], "vision_qformer_proj_s": ms["image_features_s"],
                 "prefill_s_derived": ms["caption1_s"] - ms["preprocess_s"] - ms["image_features_s"],
                 "decode_per_token_s_derived": (mc["e2e_s"] - ms["caption1_s"]) / max(n - 1, 1),
                 "caption1_s": ms["caption1_s"]}
        b1["mmsuite"] = mm_b1
        b1["speedup_torch_over_mmsuite"] = {
            "e2e": torch_b1["e2e_s"] / mc["e2e_s"],
            "preprocess": torch_b1["preprocess_s"] / ms["preprocess_s"],
            "vision_qformer_proj": torch_b1["vision_qformer_proj_s"] / ms["image_features_s"],
            "prefill": torch_b1["prefill_s"] / mm_b1["prefill_s_derived"] if mm_b1["prefill_s_derived"] > 0 else None,
            "decode_per_token": torch_b1["decode_per_token_s"] / mm_b1["decode_per_token_s_derived"]
            if mm_b1["decode_per_token_s_derived"] > 0 else None}
        checks["mmsuite_caption_b1"] = store["mm_caption"][0]
        checks["captions_b1_equal"] = store["mm_caption"][0].strip() == store["torch_caption"][0].strip()
    res["caption_b1"] = b1

    # ---- batch B ----------------------------------------------------------------------------
    tB = medians("torch", f"caption_b{B}")["e2e_s"]
    bB = {"torch": {"e2e_s": tB, "captions_s": B / tB, "tokens_s": B * n / tB}}
    if mm_on:
        mB = medians("mmsuite", f"caption_b{B}")["e2e_s"]
        bB["mmsuite"] = {"e2e_s": mB, "captions_s": B / mB, "tokens_s": B * n / mB}
        bB["speedup_torch_over_mmsuite"] = tB / mB
        eq = [x.strip() == y.strip() for x, y in zip(store["mm_captions_b"], store["torch_captions_b"])]
        checks[f"captions_b{B}_equal"] = f"{sum(eq)}/{len(eq)}"
    res[f"caption_b{B}"] = bB

    # ---- rooflines --------------------------------------------------------------------------
    roof = {"read_bandwidth_GBs": bw / 1e9, "read_bandwidth_source": bw_src, "work": W}
    vf, qf = W["vision_flops_per_image"], W["qformer_proj_flops_per_image"]
    roof["torch"] = {"vision_TFLOPs": vf / torch_b1["vision_s"] / 1e12,
                     "qformer_proj_TFLOPs": qf / torch_b1["qformer_proj_s"] / 1e12,
                     "vision_qformer_proj_TFLOPs": (vf + qf) / torch_b1["vision_qformer_proj_s"] / 1e12,
                     "prefill_TFLOPs": W["prefill_flops"] / torch_b1["prefill_s"] / 1e12,
                     "decode_GBs": W["decode_bytes_per_step"] / torch_b1["decode_per_token_s"] / 1e9}
    roof["torch"]["decode_vs_read_bandwidth"] = roof["torch"]["decode_GBs"] * 1e9 / bw
    if mm_on:
        mm_b1 = b1["mmsuite"]
        roof["mmsuite"] = {"vision_qformer_proj_TFLOPs": (vf + qf) / mm_b1["vision_qformer_proj_s"] / 1e12}
        if mm_b1["prefill_s_derived"] > 0:
            roof["mmsuite"]["prefill_TFLOPs_derived"] = W["prefill_flops"] / mm_b1["prefill_s_derived"] / 1e12
        if mm_b1["decode_per_token_s_derived"] > 0:
            g = W["decode_bytes_per_step"] / mm_b1["decode_per_token_s_derived"]
            roof["mmsuite"]["decode_GBs_derived"] = g / 1e9
            roof["mmsuite"]["decode_vs_read_bandwidth"] = g / bw
    res["roofline"] = roof
    res["checks"] = checks
    res["bench_wall_s"] = time.perf_counter() - t_all
    res["loadavg_end"] = loadavg()
    warn = []
    r = checks["torch_phase_sum_over_generate"]
    if not 0.8 < r < 1.25:
        warn.append(f"torch phase sum / generate() = {r:.2f}: the two runs saw different machine load")
    noisy = {k: round(v, 2) for k, v in res["spread_max_over_min"].items() if v > 1.25}
    if noisy:
        warn.append(f"repeats differ by more than 25%: {noisy}")
    faulted = {k: v for k, v in res["major_faults"].items() if max(v) > 1000}
    if faulted:
        warn.append(f"major page faults while timed (weights re-read from disk; memory pressure or proactive "
                    f"reclaim): {faulted}")
    if res["loadavg_start"] > a.threads + 0.5 or res["loadavg_end"] > a.threads + 1.0:
        warn.append(f"load average {res['loadavg_start']:.2f} at start, {res['loadavg_end']:.2f} at the end, with "
                    f"{a.threads} threads benchmarked on {os.cpu_count()} cores: other processes competed")
    res["warnings"] = warn
    res["peak_rss_GB"] = peak_rss() / 1e9
    return res


def major_faults():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_majflt


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return -1.0


def peak_rss():
    try:
        with open("/proc/self/status") as f:
            return next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return 0


def report(res):
    B, n = res["batch"], res["tokens"]
    b1, bB, roof = res["caption_b1"], res[f"caption_b{B}"], res["roofline"]
    t, m = b1["torch"], b1.get("mmsuite")

    def ms(x):
        return "-" if x is None else f"{x * 1e3:9.1f} ms"

    def ratio(x):
        return "" if x is None else f"{x:6.2f}x"

    sp = b1.get("speedup_torch_over_mmsuite", {})
    print(f"\nBLIP-2 OPT-2.7B-shaped (random bf16), {res['machine'].get('cpu')}, {res['machine']['threads']} threads; "
          f"medians of {res['repeats']}")
    print(f"caption latency, batch 1, {n} tokens           torch+transformers      mmsuite   torch/mmsuite")
    rows = [("preprocess", t["preprocess_s"], m and m["preprocess_s"], sp.get("preprocess")),
            ("vision tower", t["vision_s"], None, None),
            ("Q-Former + projection", t["qformer_proj_s"], None, None),
            ("vision + Q-Former + proj", t["vision_qformer_proj_s"], m and m["vision_qformer_proj_s"],
             sp.get("vision_qformer_proj")),
            ("prefill (33 tokens)", t["prefill_s"], m and m["prefill_s_derived"], sp.get("prefill")),
            ("decode per token", t["decode_per_token_s"], m and m["decode_per_token_s_derived"],
             sp.get("decode_per_token")),
            ("end to end", t["e2e_s"], m and m["e2e_s"], sp.get("e2e"))]
    for name, a_, b_, r in rows:
        print(f"  {name:<28} {ms(a_):>22} {ms(b_):>12}   {ratio(r)}")
    print(f"  (torch phases sum {t['split_sum_s']:.2f}s vs generate() {t['e2e_s']:.2f}s; mmsuite prefill/decode "
          "derived from caption(1) and caption(N))" if m else
          f"  (torch phases sum {t['split_sum_s']:.2f}s vs generate() {t['e2e_s']:.2f}s)")
    line = f"captions/s, batch {B}: torch {bB['torch']['captions_s']:.3f}"
    if "mmsuite" in bB:
        line += f", mmsuite {bB['mmsuite']['captions_s']:.3f} ({bB['speedup_torch_over_mmsuite']:.2f}x)"
    print(line)
    w = roof["work"]
    print(f"roofline: vision {w['vision_flops_per_image'] / 1e9:.0f} GFLOP/image, Q-Former+proj "
          f"{w['qformer_proj_flops_per_image'] / 1e9:.1f} GFLOP/image, prefill {w['prefill_flops'] / 1e9:.0f} GFLOP, "
          f"decode {w['decode_bytes_per_step'] / 1e9:.2f} GB/token; read bandwidth {roof['read_bandwidth_GBs']:.1f} GB/s")
    rt = roof["torch"]
    print(f"  torch:   vision {rt['vision_TFLOPs']:.3f} TFLOP/s, Q-Former+proj {rt['qformer_proj_TFLOPs']:.3f} TFLOP/s, "
          f"prefill {rt['prefill_TFLOPs']:.3f} TFLOP/s, decode {rt['decode_GBs']:.1f} GB/s "
          f"({rt['decode_vs_read_bandwidth']:.0%} of read bandwidth)")
    if "mmsuite" in roof:
        rm = roof["mmsuite"]
        print(f"  mmsuite: vision+Q-Former+proj {rm['vision_qformer_proj_TFLOPs']:.3f} TFLOP/s, prefill "
              f"{rm.get('prefill_TFLOPs_derived', float('nan')):.3f} TFLOP/s, decode "
              f"{rm.get('decode_GBs_derived', float('nan')):.1f} GB/s "
              f"({rm.get('decode_vs_read_bandwidth', float('nan')):.0%} of read bandwidth)")
    print("checks:", json.dumps(res["checks"], ensure_ascii=False))
    for w in res["warnings"]:
        print("WARNING:", w)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                    else os.cpu_count())
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--model", default=DEFAULT_MODEL, help="checkpoint directory (written if missing)")
    ap.add_argument("--torch-only", action="store_true", help="measure transformers only (no mmsuite)")
    ap.add_argument("--json", metavar="OUT", help="write the results here")
    a = ap.parse_args()
    if a.tokens < 2:
        ap.error("--tokens must be >= 2 (the per-token decode time needs a second token)")
    res = run(a)
    print(json.dumps({k: v for k, v in res.items() if k != "machine"}), flush=True)
    report(res)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
