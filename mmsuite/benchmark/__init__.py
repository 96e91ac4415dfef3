"""The evaluation harness: MultimodalBenchmark (runner with on-disk cache, resume, progress,
latency / throughput / memory), datasets in mmsuite.datasets, metrics in mmsuite.metrics,
reports (results.json + report.html). CLI: python -m mmsuite bench TASK --data ... --model ..."""
from .cache import ResultCache, content_hash, model_identity
from .report import write_report
from .runner import BenchmarkResult, MultimodalBenchmark, default_cache_dir

__all__ = ["MultimodalBenchmark", "BenchmarkResult", "ResultCache", "model_identity", "content_hash",
           "write_report", "default_cache_dir"]
