#!/usr/bin/env python3
"""Generate tiny random-weight causal-LM fixtures for tests/test_decoder.py.

Dev-only: needs torch + transformers (5.x) from the project's .venv; the tests only read the
files written here (numpy + mmsuite).

Cases written under ``tests/data/lm/<case>/``:

* ``llama_gqa``      -- Llama, 4 heads / 2 kv heads (GQA), head_dim 12 != hidden/heads (8),
                        rope_theta 500, untied lm_head.
* ``llama_linear``   -- Llama, rope_scaling linear factor 2, multi-query (1 kv head).
* ``llama_dynamic``  -- Llama, rope_scaling dynamic (NTK) factor 2, max_position_embeddings 16,
                        prompts of 19-24 tokens (so every prompt passes 16).
* ``llama_llama3``   -- Llama 3.1 rope (factor 8, low 1, high 4, original_max 8): head_dim 8 has
                        one medium-band frequency (interpolated) and three low ones (/8); one
                        prompt of 140 tokens (attention over >= 128 rows: the GEMM kernel).
* ``mistral_window`` -- Mistral, sliding_window 6, prompts of 20-27 and 130 tokens.
* ``qwen2_tied``     -- Qwen2, q/k/v biases, tie_word_embeddings true (no lm_head tensor), rope_theta
                        1e6; one prompt of 136 tokens.
* ``opt_preln``      -- OPT: pre-LN, ReLU, learned positions (offset 2), biases, tied lm_head.
* ``opt_postln``     -- OPT with do_layer_norm_before false (post-LN, as opt-350m, but
                        word_embed_proj_dim == hidden_size): HF has NO final layer norm then.
* ``qwen2_tied_bf16`` -- ``qwen2_tied`` stored in bfloat16 (checkpoint of model.to(bf16)); its
                        reference is that bf16 checkpoint loaded in float32.

Each case directory is a loadable HF checkpoint plus references:

* ``config.json``         -- in the transformers v4 layout that nearly all hub checkpoints use
                             (top-level ``rope_theta``, ``rope_scaling`` with ``type`` and
                             ``rope_type``); transformers 5 reads it into the same config (checked).
* ``config_v5.json``      -- the config.json exactly as transformers 5 ``save_pretrained`` writes
                             it (``rope_parameters`` holding rope_type, rope_theta and factors).
* ``model.safetensors``   -- ``save_pretrained(safe_serialization=True)`` (tied weights dropped).
* ``prompt_ids.npy`` (sum L) int64, ``prompt_lens.npy`` (P) int64 -- P prompts of different
  lengths, concatenated.
* ``logits.npy`` (sum L, V) f32 -- teacher-forced logits, each prompt run alone, unpadded, in
  one full forward (float32, attn_implementation="eager", fresh model per prompt).
* ``greedy_ids.npy`` (P, 8) int64 -- ``model.generate`` greedy continuation (KV cache, no eos
  stop); ``greedy_gap.npy`` (P,) f32 -- the smallest top1-top2 logit gap over the 8 steps.
* ``meta.json`` -- what the case checks, versions, parameters, self-check numbers.
* ``opt_postln/hidden.npy`` (sum L, D) f32 -- the decoder's last hidden states (no final norm).
* ``opt_preln/logits_no_final_ln.npy`` -- the same checkpoint run with config
  ``_remove_final_layer_norm: true`` (HF then builds no final norm and ignores its tensors).

Dynamic NTK RoPE is stateful in transformers: the rotary module recomputes inv_freq from
``max(position_ids) + 1`` of each call once that passes max_position_embeddings, and keeps the
largest seen (it only resets when a call is back under the original length). A one-shot
forward therefore rotates every position with the frequencies of the full length, while a
cached run rotates each chunk's keys with the frequencies of that chunk's last position (and
those keys stay in the cache). The engine follows the same per-call rule, so for
``llama_dynamic`` there are extra references:

* ``logits_incremental.npy`` -- HF with a DynamicCache: first L//2 tokens, then one at a time.
* ``logits_chunk3.npy``      -- HF with a DynamicCache: chunks of 3 tokens.
* ``logits_batched.npy``     -- all prompts in ONE right-padded batch (explicit position_ids
                                0..L_i-1): the frequencies come from the longest prompt, as when
                                the engine packs several sequences into one call.
HF ``generate`` = prefill of the whole prompt, then one token per call, i.e. the engine's
prefill + cached decode; ``greedy_ids`` comes from generate.

For ``mistral_window`` the script checks that transformers 5 applies the window in eager mode:
the reference equals a run of the same weights with ``sliding_window=None`` and an explicit
banded 4-D mask (key j visible from query i iff i - 6 < j <= i), and differs clearly from the
unwindowed run (numbers in meta.json).

Usage::

    .venv/bin/python tools/make_lm_fixtures.py            # (re)generate all cases + self-check
    .venv/bin/python tools/make_lm_fixtures.py --only llama_gqa,opt_postln
    .venv/bin/python tools/make_lm_fixtures.py --check-only

Deterministic: weights and prompts come from seeded numpy generators.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "lm"
N_GEN = 8
MAX_CASE_BYTES = 300_000

COMMON = dict(vocab_size=96, hidden_size=32, num_hidden_layers=2, bos_token_id=1, eos_token_id=2)


def llama_cfg(**kw):
    c = dict(COMMON, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
             max_position_embeddings=256, tie_word_embeddings=False, hidden_act="silu")
    c.update(kw)
    return c


CASES = {
    "llama_gqa": dict(
        model_type="llama", seed=101, lens=[7, 12, 4],
        cfg=llama_cfg(head_dim=12, rope_parameters={"rope_type": "default", "rope_theta": 500.0}),
        what="Llama GQA (4 heads, 2 kv heads), head_dim 12 != hidden/heads 8, rope_theta 500, untied lm_head"),
    "llama_linear": dict(
        model_type="llama", seed=102, lens=[9, 14, 5],
        cfg=llama_cfg(num_key_value_heads=1,
                      rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 2000.0}),
        what="Llama multi-query (1 kv head), rope linear factor 2 (positions / 2), rope_theta 2000"),
    "llama_dynamic": dict(
        model_type="llama", seed=103, lens=[19, 24, 21],
        cfg=llama_cfg(max_position_embeddings=16,
                      rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0}),
        what="Llama dynamic NTK rope factor 2, max_position_embeddings 16, prompts 19-24 tokens"),
    "llama_llama3": dict(
        model_type="llama", seed=104, lens=[11, 16, 6, 140],
        cfg=llama_cfg(num_key_value_heads=4, rope_parameters={
            "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8, "rope_theta": 10000.0}),
        what="Llama 3.1 rope (factor 8, low 1, high 4, original_max_position_embeddings 8): "
             "wavelength 2*pi lies in the medium band (interpolated), the rest are divided by 8; "
             "a 140-token prompt (multi-head attention over >= 128 rows takes the GEMM kernel)"),
    "mistral_window": dict(
        model_type="mistral", seed=105, lens=[22, 27, 20, 130],
        cfg=llama_cfg(sliding_window=6, rope_parameters={"rope_type": "default", "rope_theta": 1000.0}),
        what="Mistral sliding_window 6 (key j visible from query i iff i-6 < j <= i), prompts of 20-27 and "
             "130 tokens"),
    "qwen2_tied": dict(
        model_type="qwen2", seed=106, lens=[8, 13, 3, 136],
        cfg=llama_cfg(tie_word_embeddings=True, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
        what="Qwen2 with q/k/v biases (o_proj none), tie_word_embeddings true, rope_theta 1e6; "
             "a 136-token prompt (long GQA prefill)"),
    "opt_preln": dict(
        model_type="opt", seed=107, lens=[7, 12, 5],
        cfg=dict(COMMON, ffn_dim=64, num_attention_heads=4, max_position_embeddings=64, word_embed_proj_dim=32,
                 do_layer_norm_before=True, activation_function="relu", pad_token_id=1, bos_token_id=2,
                 eos_token_id=2),
        what="OPT pre-LN, ReLU, learned positions (offset 2), all biases, tied lm_head"),
    "opt_postln": dict(
        model_type="opt", seed=108, lens=[7, 12, 5],
        cfg=dict(COMMON, ffn_dim=64, num_attention_heads=4, max_position_embeddings=64, word_embed_proj_dim=32,
                 do_layer_norm_before=False, activation_function="relu", pad_token_id=1, bos_token_id=2,
                 eos_token_id=2),
        what="OPT post-LN (do_layer_norm_before false, opt-350m style but word_embed_proj_dim == hidden): "
             "norms after each residual add and NO final layer norm (HF builds none)"),
    "qwen2_tied_bf16": dict(
        model_type="qwen2", base="qwen2_tied",
        what="qwen2_tied stored in bfloat16; reference = that checkpoint run in float32"),
}


def log(msg):
    print(msg, flush=True)


def versions():
    import transformers
    return {"transformers": transformers.__version__, "torch": torch.__version__, "numpy": np.__version__}


def config_class(model_type):
    from transformers import LlamaConfig, MistralConfig, OPTConfig, Qwen2Config
    return {"llama": LlamaConfig, "mistral": MistralConfig, "qwen2": Qwen2Config, "opt": OPTConfig}[model_type]


def load(d: Path):
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(str(d), dtype=torch.float32, attn_implementation="eager")
    return m.eval()


def randomize_(model, rng):
    """Re-randomize EVERY parameter (deterministic order; tied parameters once).

    Linear weights N(0, 1/sqrt(fan_in)) (q/k x1.5 for peaked attention, lm_head x2 for
    well-separated logits), biases N(0, 0.3), norm weights 1 + N(0, 0.3), norm biases N(0, 0.3),
    token embeddings N(0, 1), learned positions N(0, 0.5)."""
    n = 0
    for name, p in model.named_parameters():
        shape = tuple(p.shape)
        if name.endswith("bias"):
            std, mean = 0.3, 0.0
        elif "norm" in name:
            std, mean = 0.3, 1.0
        elif "embed_positions" in name:
            std, mean = 0.5, 0.0
        elif "embed_tokens" in name:
            std, mean = 1.0, 0.0
        else:
            std, mean = 1.0 / np.sqrt(shape[1]), 0.0
            if "q_proj" in name or "k_proj" in name:
                std *= 1.5
            if "lm_head" in name:
                std *= 2.0
        with torch.no_grad():
            p.copy_(torch.from_numpy(rng.normal(mean, std, size=shape).astype(np.float32)))
        n += 1
    assert n == len(list(model.parameters()))


def v4_config(cfg: dict) -> dict:
    """transformers-5 config.json -> the v4 layout (rope_theta + rope_scaling at the top level)."""
    c = dict(cfg)
    rp = c.pop("rope_parameters", None)
    if rp is not None:
        rp = dict(rp)
        c["rope_theta"] = rp.pop("rope_theta")
        if rp.get("rope_type", "default") != "default":
            rp["type"] = rp["rope_type"]
            c["rope_scaling"] = rp
        else:
            c["rope_scaling"] = None
    return c


def prompts(rng, V, lens):
    return [rng.integers(3, V, size=n).astype(np.int64) for n in lens]


@torch.no_grad()
def full_logits(d, p):
    m = load(d)  # fresh model: dynamic rope keeps state between calls
    return m(torch.from_numpy(p)[None]).logits[0].numpy()


@torch.no_grad()
def cached_logits(d, p, schedule):
    """HF with a DynamicCache fed in pieces of the given sizes; logits of every row."""
    from transformers import DynamicCache
    m = load(d)
    cache = DynamicCache(config=m.config)
    out, t = [], 0
    for n in schedule:
        ids = torch.from_numpy(p[t:t + n])[None]
        pos = torch.arange(t, t + n)[None]
        r = m(ids, past_key_values=cache, use_cache=True, position_ids=pos,
              attention_mask=torch.ones(1, t + n, dtype=torch.long))
        cache = r.past_key_values
        out.append(r.logits[0].numpy())
        t += n
    assert t == len(p)
    return np.concatenate(out)


@torch.no_grad()
def greedy(d, p):
    from transformers import GenerationConfig
    m = load(d)
    gc = GenerationConfig(max_new_tokens=N_GEN, do_sample=False, eos_token_id=None, pad_token_id=0,
                          output_logits=True, return_dict_in_generate=True)
    ids = torch.from_numpy(p)[None]
    r = m.generate(ids, attention_mask=torch.ones_like(ids), generation_config=gc)
    new = r.sequences[0, len(p):].numpy()
    assert len(new) == N_GEN
    gap = np.inf
    for step, lg in enumerate(r.logits):
        s = np.sort(lg[0].float().numpy())
        gap = min(gap, float(s[-1] - s[-2]))
        assert int(lg[0].argmax()) == int(new[step])
    # cross-check against a hand-written cached greedy loop
    seq = list(p)
    from transformers import DynamicCache
    m2 = load(d)
    cache = DynamicCache(config=m2.config)
    r2 = m2(torch.tensor([seq]), past_key_values=cache, use_cache=True)
    mine = []
    for _ in range(N_GEN):
        nxt = int(r2.logits[0, -1].argmax())
        mine.append(nxt)
        r2 = m2(torch.tensor([[nxt]]), past_key_values=r2.past_key_values, use_cache=True,
                position_ids=torch.tensor([[len(seq) + len(mine) - 1]]))
    assert mine == new.tolist(), (mine, new)
    return new.astype(np.int64), gap


@torch.no_grad()
def batched_logits(d, ps):
    """All prompts in one right-padded batch with explicit positions 0..L_i-1."""
    m = load(d)
    L = max(len(p) for p in ps)
    ids = torch.zeros(len(ps), L, dtype=torch.long)
    mask = torch.zeros(len(ps), L, dtype=torch.long)
    pos = torch.zeros(len(ps), L, dtype=torch.long)
    for i, p in enumerate(ps):
        ids[i, :len(p)] = torch.from_numpy(p)
        mask[i, :len(p)] = 1
        pos[i, :len(p)] = torch.arange(len(p))
    lg = m(ids, attention_mask=mask, position_ids=pos).logits.numpy()
    return np.concatenate([lg[i, :len(p)] for i, p in enumerate(ps)])


def scaled(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-6))


@torch.no_grad()
def window_check(d, ps, window):
    """Windowed HF reference vs explicit banded mask on an unwindowed copy of the model."""
    m = load(d)
    m_nw = copy.deepcopy(m)
    m_nw.config.sliding_window = None
    m_nw.model.config.sliding_window = None
    for layer in m_nw.model.layers:
        layer.self_attn.config.sliding_window = None
        if hasattr(layer.self_attn, "sliding_window"):
            layer.self_attn.sliding_window = None
    res = {"max_scaled_diff_vs_explicit_mask": 0.0, "min_scaled_diff_vs_no_window": np.inf}
    for p in ps:
        ids = torch.from_numpy(p)[None]
        L = len(p)
        ref = m(ids).logits[0].numpy()
        i = torch.arange(L)[:, None]
        j = torch.arange(L)[None, :]
        allowed = (j <= i) & (j > i - window)
        mask4 = torch.where(allowed, 0.0, torch.finfo(torch.float32).min)[None, None]
        expl = m_nw(ids, attention_mask=mask4).logits[0].numpy()
        nowin = m_nw(ids).logits[0].numpy()
        res["max_scaled_diff_vs_explicit_mask"] = max(res["max_scaled_diff_vs_explicit_mask"], scaled(ref, expl))
        res["min_scaled_diff_vs_no_window"] = min(res["min_scaled_diff_vs_no_window"], scaled(nowin, ref))
    return res


def dir_bytes(d: Path) -> int:
    return sum(f.stat().st_size for f in d.iterdir() if f.is_file())


def write_refs(d: Path, case: dict, ps, meta: dict):
    lens = np.array([len(p) for p in ps], dtype=np.int64)
    np.save(d / "prompt_ids.npy", np.concatenate(ps))
    np.save(d / "prompt_lens.npy", lens)
    logits = np.concatenate([full_logits(d, p) for p in ps]).astype(np.float32)
    np.save(d / "logits.npy", logits)
    gids, gaps = zip(*[greedy(d, p) for p in ps])
    np.save(d / "greedy_ids.npy", np.stack(gids))
    np.save(d / "greedy_gap.npy", np.array(gaps, dtype=np.float32))
    meta["logits_absmax"] = float(np.abs(logits).max())
    meta["greedy_min_top1_top2_gap"] = float(min(gaps))
    # HF's own cached run vs its one-shot forward (documents the dynamic-rope difference)
    inc = np.concatenate([cached_logits(d, p, [len(p) // 2] + [1] * (len(p) - len(p) // 2)) for p in ps])
    ch3 = np.concatenate([cached_logits(d, p, [3] * (len(p) // 3) + ([len(p) % 3] if len(p) % 3 else [])) for p in ps])
    bat = batched_logits(d, ps)
    meta["hf_scaled_diff"] = {"incremental_vs_one_shot": scaled(inc, logits), "chunk3_vs_one_shot": scaled(ch3, logits),
                              "batched_vs_separate": scaled(bat, logits)}
    if case["cfg"].get("rope_parameters", {}).get("rope_type") == "dynamic":
        np.save(d / "logits_incremental.npy", inc.astype(np.float32))
        np.save(d / "logits_chunk3.npy", ch3.astype(np.float32))
        np.save(d / "logits_batched.npy", bat.astype(np.float32))
    else:
        for k, v in meta["hf_scaled_diff"].items():
            assert v < 2e-5, (k, v)


def make_case(name: str, case: dict):
    d = OUT / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    if "base" in case:
        return make_bf16(name, case, d)
    rng = np.random.default_rng(case["seed"])
    cls = config_class(case["model_type"])
    cfg = cls(**case["cfg"])
    from transformers import AutoModelForCausalLM
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="eager").eval()
    randomize_(model, rng)
    model.save_pretrained(str(d), safe_serialization=True)
    c5 = json.loads((d / "config.json").read_text())
    (d / "config_v5.json").write_text(json.dumps(c5, indent=2, sort_keys=True) + "\n")
    (d / "config.json").write_text(json.dumps(v4_config(c5), indent=2, sort_keys=True) + "\n")
    # transformers 5 reads the v4 layout into the same rope parameters
    from transformers import AutoConfig
    rp4 = AutoConfig.from_pretrained(str(d)).rope_parameters if case["model_type"] != "opt" else None
    if rp4 is not None:
        rp4 = {k: v for k, v in dict(rp4).items() if k != "type"}
        assert rp4 == dict(c5["rope_parameters"]), (rp4, c5["rope_parameters"])
    ps = prompts(rng, cfg.vocab_size, case["lens"])
    meta = {"case": name, "what": case["what"], "model_type": case["model_type"], "seed": case["seed"],
            "reference": dict(versions(), dtype="float32", attn_implementation="eager", device="cpu"),
            "prompt_lens": case["lens"], "n_generated": N_GEN}
    write_refs(d, case, ps, meta)
    if name == "opt_postln":
        # the decoder's last hidden states (HF applies no final norm here): lets a test check the
        # post-LN blocks with an identity-free final norm of its own (see test_decoder.py)
        with torch.no_grad():
            m = load(d)
            hid = np.concatenate([m.model(torch.from_numpy(p)[None]).last_hidden_state[0].numpy() for p in ps])
        np.save(d / "hidden.npy", hid.astype(np.float32))
    if name == "opt_preln":
        # config "_remove_final_layer_norm": true (old OPT conversions): HF builds no final norm
        # even for pre-LN and ignores the stored final_layer_norm tensors
        from transformers import AutoConfig, AutoModelForCausalLM
        cfg_r = AutoConfig.from_pretrained(str(d))
        cfg_r._remove_final_layer_norm = True
        m = AutoModelForCausalLM.from_pretrained(str(d), config=cfg_r, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
        assert m.model.decoder.final_layer_norm is None
        with torch.no_grad():
            lr = np.concatenate([m(torch.from_numpy(p)[None]).logits[0].numpy() for p in ps])
        np.save(d / "logits_no_final_ln.npy", lr.astype(np.float32))
        meta["no_final_ln_scaled_diff"] = scaled(lr, np.load(d / "logits.npy"))
    if case["model_type"] == "mistral":
        meta["sliding_window_check"] = window_check(d, ps, case["cfg"]["sliding_window"])
        assert meta["sliding_window_check"]["max_scaled_diff_vs_explicit_mask"] < 1e-5
        assert meta["sliding_window_check"]["min_scaled_diff_vs_no_window"] > 1e-2
    finish(d, meta)


def make_bf16(name, case, d):
    base = OUT / case["base"]
    m = load(base).to(torch.bfloat16)
    m.save_pretrained(str(d), safe_serialization=True)
    for f in ("config.json", "config_v5.json"):
        c = json.loads((base / f).read_text())
        c["dtype"] = "bfloat16"
        (d / f).write_text(json.dumps(c, indent=2, sort_keys=True) + "\n")
    ps_flat = np.load(base / "prompt_ids.npy")
    lens = np.load(base / "prompt_lens.npy")
    ps = np.split(ps_flat, np.cumsum(lens)[:-1])
    bcase = dict(CASES[case["base"]])
    meta = {"case": name, "what": case["what"], "model_type": case["model_type"], "base": case["base"],
            "reference": dict(versions(), dtype="float32 (bf16 weights upcast)", attn_implementation="eager",
                              device="cpu"),
            "prompt_lens": lens.tolist(), "n_generated": N_GEN}
    write_refs(d, bcase, ps, meta)
    meta["scaled_diff_vs_fp32_base"] = scaled(np.load(d / "logits.npy"), np.load(base / "logits.npy"))
    finish(d, meta)


def finish(d: Path, meta: dict):
    meta["bytes"] = dir_bytes(d) + 2048
    (d / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    assert dir_bytes(d) < MAX_CASE_BYTES, (d, dir_bytes(d))
    log(f"{d.name}: {dir_bytes(d) / 1024:.0f} KiB, |logits| max {meta['logits_absmax']:.2f}, "
        f"min greedy gap {meta['greedy_min_top1_top2_gap']:.3f}, HF diffs {meta['hf_scaled_diff']}")


def check(name: str):
    """Reload from disk, re-run, compare with the stored references."""
    d = OUT / name
    lens = np.load(d / "prompt_lens.npy")
    ps = np.split(np.load(d / "prompt_ids.npy"), np.cumsum(lens)[:-1])
    got = np.concatenate([full_logits(d, p) for p in ps])
    err = scaled(got, np.load(d / "logits.npy"))
    gids = np.stack([greedy(d, p)[0] for p in ps])
    assert err < 1e-6 and np.array_equal(gids, np.load(d / "greedy_ids.npy")), (name, err)
    if name != "qwen2_tied_bf16":
        # a float64 run moves the outputs by a negligible amount
        from transformers import AutoModelForCausalLM
        g64 = []
        for p in ps:  # a fresh model per prompt (dynamic rope is stateful)
            m = AutoModelForCausalLM.from_pretrained(str(d), dtype=torch.float64, attn_implementation="eager").eval()
            with torch.no_grad():
                g64.append(m(torch.from_numpy(p)[None]).logits[0].numpy())
        g64 = np.concatenate(g64)
        e64 = scaled(g64, np.load(d / "logits.npy").astype(np.float64))
        assert e64 < 1e-5, (name, e64)
    else:
        e64 = None
    log(f"check {name}: ok (reload diff {err:.1e}, float64 diff {e64})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="")
    ap.add_argument("--check-only", action="store_true")
    a = ap.parse_args()
    names = [n for n in CASES if not a.only or n in a.only.split(",")]
    torch.set_num_threads(4)
    import transformers
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    warnings.filterwarnings("ignore")
    if not a.check_only:
        for n in names:
            make_case(n, CASES[n])
    for n in names:
        check(n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
