"""mmsuite: multimodal models from Hugging Face checkpoints on a C core."""
from ._native import _C
import os as _os

from .errors import ConfigError, FormatError, MMSError, ModelNotFoundError, NonFiniteError, UnsupportedError

__version__ = "0.1.0"


def set_num_threads(n: int) -> None:
    """Threads used by every kernel and by oneDNN (0 = all cores)."""
    _C.set_num_threads(int(n))


def get_num_threads() -> int:
    return _C.get_num_threads()


def set_check_finite(mode: str) -> None:
    """NaN / Inf guards, process-wide: 'outputs' (default) scans what every model call returns
    (embeddings, logits, image features) and raises NonFiniteError naming the output; 'layers'
    (a debug mode, slower) also scans every transformer block's output, so the error names the
    first layer that produced the NaN / Inf; 'off' disables both. The MMSUITE_CHECK_FINITE
    environment variable sets it at import."""
    _C.set_check_finite(mode)


def get_check_finite() -> str:
    return _C.get_check_finite()


if _os.environ.get("MMSUITE_CHECK_FINITE"):
    set_check_finite(_os.environ["MMSUITE_CHECK_FINITE"])


from .models import CLIP, SigLIP, load  # noqa: E402
from .suite import MultimodalSuite  # noqa: E402
from .llava import CausalLM, Llava  # noqa: E402
from .blip2 import Blip2  # noqa: E402
from .benchmark import MultimodalBenchmark  # noqa: E402

try:  # the tokenizer / image modules are optional while under construction
    from .tokenizer import load_tokenizer  # noqa: E402,F401
except ImportError:  # pragma: no cover
    pass

__all__ = ["MultimodalSuite", "MultimodalBenchmark", "CLIP", "SigLIP", "Llava", "Blip2", "CausalLM", "load", "load_tokenizer", "set_num_threads", "get_num_threads",
           "set_check_finite", "get_check_finite", "NonFiniteError",
           "MMSError", "FormatError", "ConfigError", "UnsupportedError", "ModelNotFoundError"]
