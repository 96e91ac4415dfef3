#!/usr/bin/env bash
# One-call GPU check (device machine): build the CUDA backend, run tests_gpu/ (CLIP + decoders +
# LLaVA on cuda), benchmark (decoder prefill/decode, CLIP) against transformers.
# Needs in the working tree: .debs/ (libpng/libjpeg/cJSON dev packages from Debian, unpacked into
# a private sysroot) and .whl/ (ftfy, wcwidth). Builds without oneDNN (MMS_NO_DNNL): only the
# CUDA paths are timed here, the CPU side is the reference GEMM.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi -L; python3 -V; which nvcc || ls /usr/local/cuda/bin
SYS=/tmp/sysroot; mkdir -p $SYS
for f in .debs/*.deb; do dpkg -x "$f" $SYS; done
export C_INCLUDE_PATH=$SYS/usr/include:$SYS/usr/include/x86_64-linux-gnu
export LIBRARY_PATH=$SYS/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$SYS/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
export PATH=/usr/local/cuda/bin:$PATH
python3 -m pip install -q --upgrade --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
python3 -c "import numpy, torch; print('numpy', numpy.__version__, 'torch', torch.__version__, torch.cuda.is_available())"
t0=$(date +%s)
MMS_NO_DNNL=1 python3 setup.py -q build_ext --inplace --force --build-temp build/gpu 2>&1 | grep -vE "SetuptoolsDeprecation|^\s*$|\*\*\*|!!" | tail -20
echo "build took $(( $(date +%s) - t0 ))s"
python3 -c "import mmsuite; print(mmsuite._C.cpu_info())" || exit 1
# GPU_TESTS: what pytest runs (default: all of tests_gpu, i.e. test_cuda.py + test_cuda_decoder.py);
# BENCH_LLM=0 skips the decoder benchmark, BENCH_SHAPES picks the CLIP shapes (default b32,l14-336)
PYTHONUNBUFFERED=1 timeout ${TEST_TIMEOUT:-270} python3 -m pytest -q ${GPU_TESTS:-tests_gpu} 2>&1 | tee $OUT/tests.log | tail -40
PYTHONUNBUFFERED=1 timeout ${BENCH_TIMEOUT:-220} python3 benchmarks/bench_gpu.py 2>&1 | grep -vE "Warning|deprecated|forward_call|Loading weights" | tee $OUT/bench.log
