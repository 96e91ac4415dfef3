"""Build of mmsuite's C extension (mmsuite._C).

Links oneDNN v3 (the PyPI wheels `onednn-devel-cpu-gomp` / `onednn-cpu-gomp`, found through
importlib.metadata so isolated and non-isolated builds both work), libpng, libjpeg-turbo,
cJSON and GNU OpenMP. When `nvcc` and cuBLAS are present the CUDA backend (csrc/cuda/*.cu)
is compiled too and MMS_WITH_CUDA is defined; without them the build is CPU-only.
"""
import glob
import os
import shutil
import subprocess
import sys
from importlib import metadata

import numpy
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


def _dist_file(dist_names, suffix):
    """Absolute path of the first file ending in `suffix` in one of the distributions."""
    for name in dist_names:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for f in dist.files or []:
            if str(f).replace("\\", "/").endswith(suffix):
                return os.path.normpath(str(dist.locate_file(f)))
    return None


def find_onednn():
    root = os.environ.get("MMS_DNNL_ROOT")
    if root:
        return os.path.join(root, "include"), os.path.join(root, "lib")
    hdr = _dist_file(["onednn-devel-cpu-gomp", "onednn-devel"], "include/oneapi/dnnl/dnnl.h")
    lib = _dist_file(["onednn-cpu-gomp", "onednn"], "libdnnl.so.3")
    if not hdr or not lib:
        sys.exit("mmsuite build: oneDNN v3 not found. Install it with\n"
                 "  pip install onednn-devel-cpu-gomp==2023.2.0\n"
                 "or set MMS_DNNL_ROOT to a prefix holding include/oneapi/dnnl and lib/libdnnl.so")
    return os.path.dirname(os.path.dirname(os.path.dirname(hdr))), os.path.dirname(lib)


def _find_cublas(cuda_home):
    """(include_dir, lib_dir, lib_file) of cuBLAS: the CUDA toolkit's, $MMS_CUBLAS_ROOT, or the
    `nvidia-cublas` pip wheel (what PyTorch's CUDA wheels install)."""
    roots = []
    if os.environ.get("MMS_CUBLAS_ROOT"):
        roots.append(os.environ["MMS_CUBLAS_ROOT"])
    roots.append(cuda_home)
    for name in ("nvidia-cublas", "nvidia-cublas-cu13", "nvidia-cublas-cu12"):
        hdr = _dist_file([name], "include/cublas_v2.h")
        if hdr:
            roots.append(os.path.dirname(os.path.dirname(hdr)))
    for root in roots:
        inc = os.path.join(root, "include")
        if not os.path.exists(os.path.join(inc, "cublas_v2.h")):
            continue
        for libdir in ("lib64", "lib", "targets/x86_64-linux/lib"):
            libs = sorted(glob.glob(os.path.join(root, libdir, "libcublas.so*")))
            if libs:
                return inc, os.path.join(root, libdir), os.path.basename(libs[0])
    return None


def find_cuda():
    """(nvcc, cuda_home, cudart_lib_dir, cublas) when CUDA can be built, else None."""
    if os.environ.get("MMS_NO_CUDA"):
        return None
    nvcc = shutil.which("nvcc")
    for cand in ([nvcc] if nvcc else []) + ["/usr/local/cuda/bin/nvcc"]:
        home = os.path.dirname(os.path.dirname(os.path.realpath(cand)))
        if os.path.exists(os.path.join(home, "include", "cuda_runtime.h")):
            break
    else:
        return None
    cudart = next((os.path.join(home, d) for d in ("lib64", "lib", "targets/x86_64-linux/lib")
                   if glob.glob(os.path.join(home, d, "libcudart.so*"))), None)
    cublas = _find_cublas(home)
    if not cudart or not cublas:
        print("mmsuite build: nvcc found but not cuBLAS/cudart; building CPU-only "
              "(pip install nvidia-cublas, or set MMS_CUBLAS_ROOT, to build the CUDA backend)")
        return None
    return os.path.join(home, "bin", "nvcc"), home, cudart, cublas


NO_DNNL = bool(os.environ.get("MMS_NO_DNNL"))
DNNL_INC, DNNL_LIB = (None, None) if NO_DNNL else find_onednn()
CUDA = find_cuda()

sources = sorted(glob.glob("csrc/*.c") + glob.glob("csrc/cpu/*.c") + glob.glob("csrc/py/*.c"))
cu_sources = sorted(glob.glob("csrc/cuda/*.cu")) if CUDA else []
if CUDA:
    sources += sorted(glob.glob("csrc/cuda/*.c"))

define_macros = [("NPY_NO_DEPRECATED_API", "NPY_1_20_API_VERSION")]
include_dirs = ["csrc", numpy.get_include()] + ([DNNL_INC] if DNNL_INC else [])
library_dirs = [DNNL_LIB] if DNNL_LIB else []
libraries = ([] if NO_DNNL else ["dnnl"]) + ["png", "jpeg", "cjson", "gomp", "m"]
if NO_DNNL:  # reference GEMM instead of oneDNN (GPU checks, exotic platforms); slow on CPU
    define_macros.append(("MMS_NO_DNNL", "1"))
# $ORIGIN/../../.. is <prefix>/lib for a package in <prefix>/lib/pythonX.Y/site-packages/mmsuite,
# where the onednn wheel puts libdnnl.so.3; the absolute path covers editable/in-place builds.
rpaths = ["$ORIGIN/../../.."] + ([DNNL_LIB] if DNNL_LIB else [])
extra_objects = []
if CUDA:
    nvcc, cuda_home, cuda_lib, (cublas_inc, cublas_libdir, cublas_file) = CUDA
    define_macros.append(("MMS_WITH_CUDA", "1"))
    include_dirs += [os.path.join(cuda_home, "include"), cublas_inc]
    library_dirs += [cuda_lib, cublas_libdir]
    libraries += [":" + cublas_file, "cudart", "stdc++"]
    rpaths += [cuda_lib, cublas_libdir]

debug = bool(os.environ.get("MMS_DEBUG"))
sanitize = os.environ.get("MMS_SANITIZE")  # e.g. "address,undefined"
cflags = ["-std=c11", "-fopenmp", "-Wall", "-Wextra",
          "-fno-strict-aliasing", "-ffp-contract=fast", "-D_GNU_SOURCE"]
cflags += ["-O0", "-g"] if debug else ["-O3", "-DNDEBUG"]
ldflags = ["-fopenmp"]
if sanitize:
    cflags += [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer"]
    ldflags += [f"-fsanitize={sanitize}"]


class BuildExt(build_ext):
    """Compiles .cu files with nvcc before the C sources and links their objects in."""

    def build_extension(self, ext):
        if CUDA and cu_sources:
            nvcc = CUDA[0]
            out_dir = os.path.join(self.build_temp, "cuda")
            os.makedirs(out_dir, exist_ok=True)
            # a .cu object is stale when its source or any header it may include changed
            headers = glob.glob("csrc/cuda/*.h") + glob.glob("csrc/cuda/*.cuh")
            for src in cu_sources:
                obj = os.path.join(out_dir, os.path.basename(src) + ".o")
                newest = max(os.path.getmtime(p) for p in [src] + headers)
                if self.force or not os.path.exists(obj) or os.path.getmtime(obj) < newest:
                    cmd = [nvcc, "-O3", "-std=c++17", "-Xcompiler", "-fPIC", "-Icsrc",
                           "-gencode", "arch=compute_80,code=sm_80",
                           "-gencode", "arch=compute_90,code=sm_90",
                           "-gencode", "arch=compute_90,code=compute_90",
                           "-c", src, "-o", obj]
                    print(" ".join(cmd))
                    subprocess.check_call(cmd)
                ext.extra_objects.append(obj)
        super().build_extension(ext)


ext = Extension(
    "mmsuite._C",
    sources=sources,
    include_dirs=include_dirs,
    library_dirs=library_dirs,
    libraries=libraries,
    runtime_library_dirs=rpaths,
    define_macros=define_macros,
    extra_compile_args=cflags,
    extra_link_args=ldflags,
    extra_objects=extra_objects,
)

setup(ext_modules=[ext], cmdclass={"build_ext": BuildExt})
