"""Shared helpers for the benchmarks: machine description, interleaved timing, RSS."""
import os
import platform
import statistics
import subprocess
import sys
import time


def machine_info():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import mmsuite
    info = {"cpu": cpu, "cores": os.cpu_count(), "threads": mmsuite.get_num_threads(),
            "kernels_isa": mmsuite._C.cpu_info()["isa"], "amx_bf16": mmsuite._C.cpu_info()["amx_bf16"],
            "python": platform.python_version()}
    try:
        import torch
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def interleaved(fns, repeats, warmup=1):
    """Run each fn warmup times, then `repeats` rounds of all fns in turn; median seconds per fn."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def run_child(code, env=None):
    """Run python code in a fresh process; returns its last stdout line parsed as a dict."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 - our own child's repr(dict)


def mm_prefill_decode(handle, prompt, n_decode, n_ctx, before=None):
    """Time mmsuite's decoder on one sequence: (prefill seconds, decode seconds for n_decode
    greedy tokens). Each lm_forward returns host logits, so device work is finished when it
    returns. `before` (e.g. torch.cuda.synchronize) runs before the prefill clock starts."""
    import numpy as np
    from mmsuite import _C
    st = _C.lm_state_new(handle, 1, n_ctx, "bfloat16", len(prompt))
    if before:
        before()
    t = time.perf_counter()
    lg = _C.lm_forward(st, np.array([0]), np.array([len(prompt)]), ids=prompt)
    t_pre = time.perf_counter() - t
    nxt = int(np.argmax(lg[0]))
    t = time.perf_counter()
    for _ in range(n_decode):
        lg = _C.lm_forward(st, np.array([0]), np.array([1]), ids=np.array([nxt]))
        nxt = int(np.argmax(lg[0]))
    return t_pre, time.perf_counter() - t, lg
