#!/usr/bin/env bash
# Leak check (issue 7 part 1): tools/leak_check.py's load -> run -> unload cycles of every model
# family, run against the ASan build of the extension with LeakSanitizer on. Fails when
#   - the C allocator's live blocks grow over cycles (leak_check.py itself), or
#   - LeakSanitizer reports, at exit, an unreachable block allocated from mmsuite's extension
#     (a frame in mmsuite/_C*.so or csrc/); CPython's own exit-time blocks are not ours.
# Uses the tree tools/asan_check.sh prepared (builds it first when missing). About 1 min.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=${MMS_ASAN_DIR:-$ROOT/build/asan}
[ -f "$WORK/tree/tools/leak_check.py" ] || bash tools/asan_check.sh --build-only
cd "$WORK/tree"
cp "$ROOT/tools/leak_check.py" tools/leak_check.py  # the current script, even with an older tree
# fast_unwind_on_malloc=0: full allocation stacks through CPython (built without frame pointers),
# so a Python object made by the extension still shows the extension's frames
run() {  # run ARGS... under LSan, then list the leak records that come from the extension
    rm -f "$WORK"/lsan.*
    LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)" \
    ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:fast_unwind_on_malloc=0:malloc_context_size=40:log_path="$WORK/lsan" \
    LSAN_OPTIONS=exitcode=0 PYTHONMALLOC=malloc \
        "$ROOT/.venv/bin/python" tools/leak_check.py "$@" || {
            echo "leak_check.py failed (exit $?)"; cat "$WORK"/lsan.* 2>/dev/null | head -80; return 1; }
    "$ROOT/.venv/bin/python" - "$WORK" <<'PY'
import glob, re, sys
logs = sorted(glob.glob(sys.argv[1] + "/lsan.*"))
text = "".join(open(p, errors="replace").read() for p in logs)
blocks = re.split(r"\n(?=(?:Direct|Indirect) leak of )", text)
ours = [b for b in blocks if re.match(r"(Direct|Indirect) leak of ", b) and re.search(r"mmsuite/_C[^ )]*\.so|[ /(]csrc/", b)]
total = sum(1 for b in blocks if re.match(r"(Direct|Indirect) leak of ", b))
if "LeakSanitizer has encountered a fatal error" in text or ("ERROR: AddressSanitizer" in text):
    print(text[:4000]); sys.exit("leak_check: the sanitizer failed")
print(f"leak_check: LeakSanitizer: {total} leak records at exit, {len(ours)} from mmsuite's extension")
for b in ours[:10]:
    print(b[:3000])
sys.exit(1 if ours else 0)
PY
}
# the detector itself: a deliberately leaked extension object must be reported
if run --inject-leak >/dev/null; then echo "leak_check: the injected leak was NOT detected"; exit 1; fi
echo "leak_check: the injected leak was detected (the detector works)"
run --cycles "${MMS_LEAK_CYCLES:-2}"
