"""Loads the C extension. libdnnl.so.3 comes from the `onednn-cpu-gomp` wheel; the extension's
rpath finds it in a normal install, and this preload (by the wheel's own file list) covers
unusual layouts (user site, --target installs) without any environment variables."""
import ctypes
import os


def _preload_onednn():
    try:
        from importlib import metadata
        for name in ("onednn-cpu-gomp", "onednn"):
            try:
                dist = metadata.distribution(name)
            except metadata.PackageNotFoundError:
                continue
            for f in dist.files or []:
                if str(f).endswith("libdnnl.so.3"):
                    path = os.path.normpath(str(dist.locate_file(f)))
                    if os.path.exists(path):
                        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                        return
    except OSError:
        pass


try:
    from . import _C  # noqa: F401
except ImportError as first:  # pragma: no cover - exercised only in odd installs
    _preload_onednn()
    try:
        from . import _C  # noqa: F401,F811
    except ImportError:
        raise first
