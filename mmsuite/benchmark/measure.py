"""What the runner measures per task: latency percentiles, throughput, peak memory; and the
machine/version record every result carries."""
import os
import platform
import resource
import sys
import threading
import time

import numpy as np

__all__ = ["Meter", "environment", "percentiles"]


def _rss_bytes():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # not Linux: the lifetime peak is all there is
        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return r if sys.platform == "darwin" else r * 1024


def percentiles(values):
    """{p50, p90, p99, mean, min, max} of a list (empty -> {})."""
    if not values:
        return {}
    v = np.asarray(values, dtype=np.float64)
    p50, p90, p99 = np.percentile(v, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(v.mean()),
            "min": float(v.min()), "max": float(v.max())}


class Meter:
    """Times the batches that ran inference and samples resident memory every 20 ms while
    running (a background thread; the compute releases the GIL)."""

    def __init__(self, interval=0.02):
        self.interval = interval
        self.batch_ms = []
        self.batch_items = []
        self.cached = 0
        self.skipped = 0
        self._stop = threading.Event()
        self._thread = None
        self.rss_start = self.rss_peak = _rss_bytes()
        self.t0 = self.t1 = None

    def _sample(self):
        while not self._stop.wait(self.interval):
            self.rss_peak = max(self.rss_peak, _rss_bytes())

    def __enter__(self):
        self.t0 = time.perf_counter()
        self.rss_start = self.rss_peak = _rss_bytes()
        self._thread = threading.Thread(target=self._sample, name="mmsuite-bench-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.rss_peak = max(self.rss_peak, _rss_bytes())
        self.t1 = time.perf_counter()
        return False

    def batch(self, n_items, seconds):
        self.batch_ms.append(1e3 * seconds)
        self.batch_items.append(n_items)

    def summary(self):
        computed = int(sum(self.batch_items))
        compute_s = sum(self.batch_ms) / 1e3
        per_item = [ms / n for ms, n in zip(self.batch_ms, self.batch_items) if n]
        return {"computed_items": computed, "cached_items": self.cached, "skipped_items": self.skipped,
                "wall_s": (self.t1 or time.perf_counter()) - self.t0, "compute_s": compute_s,
                "throughput_items_per_s": computed / compute_s if compute_s > 0 else None,
                "batch_latency_ms": percentiles(self.batch_ms), "item_latency_ms": percentiles(per_item),
                "batch_latencies_ms": [round(x, 3) for x in self.batch_ms], "batch_sizes": list(self.batch_items),
                "rss_start_mb": self.rss_start / 2**20, "peak_rss_mb": self.rss_peak / 2**20,
                "peak_rss_increase_mb": (self.rss_peak - self.rss_start) / 2**20}


def environment():
    """Versions and machine, for the results JSON."""
    from .. import __version__, _C, get_num_threads
    try:
        cpu = _C.cpu_info()
    except Exception:  # noqa: BLE001 - informational only
        cpu = None
    return {"mmsuite": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "platform": platform.platform(), "machine": platform.machine(), "cpu": cpu,
            "cpu_count": os.cpu_count(), "threads": get_num_threads()}
