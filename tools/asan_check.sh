#!/usr/bin/env bash
# The C core + extension built with AddressSanitizer + UndefinedBehaviorSanitizer (gcc; plus
# float-cast-overflow, which -fsanitize=undefined leaves out), and the
# whole test suite run against that build (issue 7, part 1). Any ASan report or UBSan runtime
# error aborts the Python process (halt_on_error), so the suite fails. Leak checking is off here:
# CPython itself "leaks" at exit; the per-family leak check is separate.
# --build-only: build and prepare the tree, run nothing (tools/leak_check.sh). Needs tools/setup.sh first. About 1.5 min to build + 1.5 min to test on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=${MMS_ASAN_DIR:-$ROOT/build/asan}
mkdir -p "$WORK"
MMS_SANITIZE=address,undefined,float-cast-overflow .venv/bin/python setup.py -q build_ext --build-lib "$WORK/lib" \
    --build-temp "$WORK/tmp" >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; exit 1; }
# a copy of the tree whose mmsuite/ holds the sanitized extension (conftest puts the tree first on sys.path)
rm -rf "$WORK/tree" && mkdir -p "$WORK/tree"
tar --exclude=./.venv --exclude=./build --exclude=./.git --exclude='./mmsuite/_C*.so' -cf - . | tar -xf - -C "$WORK/tree"
cp "$WORK"/lib/mmsuite/_C*.so "$WORK/tree/mmsuite/"
[ "${1:-}" = "--build-only" ] && exit 0
cd "$WORK/tree"
LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)" \
ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1 \
UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1 \
    "$ROOT/.venv/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
