"""Exception types raised by mmsuite (the C extension raises these too)."""


class MMSError(Exception):
    """Base class of mmsuite's own exceptions."""


class FormatError(MMSError, ValueError):
    """A file's content is corrupt or malformed (safetensors, PNG, JPEG, JSON, ...)."""


class ConfigError(MMSError, ValueError):
    """A model config is missing a key, has a bad value or an unsupported architecture."""


class UnsupportedError(MMSError, NotImplementedError):
    """Valid input that mmsuite does not implement (yet)."""


class ModelNotFoundError(MMSError, FileNotFoundError):
    """A model path or hub id could not be resolved locally."""


class NonFiniteError(MMSError, FloatingPointError):
    """NaN or Inf in a model output or (in the 'layers' check mode) a layer's activations;
    the message names the output or layer (see mmsuite.set_check_finite)."""
