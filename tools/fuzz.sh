#!/usr/bin/env bash
# libFuzzer harnesses of the C core (tests/fuzz/, issue 7 part 2): build and run them.
#
#   tools/fuzz.sh build                     build every harness into build/fuzz/ (incremental)
#   tools/fuzz.sh ci [SECONDS] [TARGET...]  build, replay tests/fuzz/regressions/<target>/, then
#                                           fuzz each target SECONDS (default 60), two at a time,
#                                           from the seeds alone; non-zero exit on any crash,
#                                           leak, timeout or OOM (the crash file is printed)
#   tools/fuzz.sh long SECONDS [TARGET...]  the same, all targets at once under nice 19, the grown
#                                           corpus kept in build/fuzz/long/corpus/<target>/
#
# Per mode (ci, long): logs with the final stats in build/fuzz/logs/<mode>/<target>.log and one
# line per target (execs, cov, ft, corpus) in build/fuzz/logs/<mode>/summary.txt; crashing inputs
# in build/fuzz/<mode>/artifacts/<target>/ -- to keep one, copy it to
# tests/fuzz/regressions/<target>/ and add a test to tests/test_fuzz_regressions.py. The committed
# seeds (tests/fuzz/corpus/<target>/) are only read: libFuzzer writes new inputs to the first
# corpus directory it is given, the scratch one. Needs clang-14 with libFuzzer: installed with apt-get
# when missing (as root). Env: MMS_FUZZ_JOBS (targets run at once), MMS_FUZZ_NICE (nice level).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=$ROOT/build/fuzz
export MMS_ROOT=$ROOT
# leaks are findings; UBSan reports stop the run with a stack
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

all_targets() { (cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//'); }

ensure_toolchain() {
    if command -v clang-14 >/dev/null && compgen -G "/usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a" >/dev/null &&
        command -v make >/dev/null; then
        return
    fi
    [ "$(id -u)" = 0 ] || { echo "fuzz.sh: clang-14 + libFuzzer missing; run as root or: apt-get install clang-14 libclang-rt-14-dev make" >&2; exit 1; }
    echo "fuzz.sh: installing clang-14 and libFuzzer" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends clang-14 libclang-rt-14-dev make \
        libpng-dev libjpeg-dev libcjson-dev zlib1g-dev >/dev/null
}

build() {
    ensure_toolchain
    mkdir -p "$OUT"
    if ! nice -n 10 make -C tests/fuzz -j2 OUT="$OUT" >"$OUT/build.log" 2>&1; then
        grep -E "error|Error" "$OUT/build.log" | head -30 >&2
        echo "fuzz.sh: build failed (full log: $OUT/build.log)" >&2
        exit 1
    fi
}

# run_one TARGET SECONDS NICE KEEP_CORPUS: replay regressions, then fuzz; returns non-zero on a finding.
run_one() {
    local t=$1 secs=$2 niceness=$3 keep=$4
    local bin=$OUT/$t log=$LOGS/$t.log art=$WORK/artifacts/$t/ scratch=$WORK/corpus/$t
    local seeds=$ROOT/tests/fuzz/corpus/$t regs=$ROOT/tests/fuzz/regressions/$t
    local common=(-rss_limit_mb=2048 -timeout=10 -artifact_prefix="$art" -print_final_stats=1)
    rm -rf "$art"
    mkdir -p "$art" "$LOGS"
    [ "$keep" = 1 ] || rm -rf "$scratch"
    mkdir -p "$scratch"
    : >"$log"
    if [ -d "$regs" ] && [ -n "$(ls -A "$regs")" ]; then
        echo "== $t: replaying $(ls "$regs" | wc -l) regression inputs" >>"$log"
        if ! nice -n "$niceness" "$bin" "${common[@]}" "$regs"/* >>"$log" 2>&1; then
            echo "== $t: FAILED on a regression input" >>"$log"
            return 1
        fi
    fi
    local dict=()
    [ -f "$ROOT/tests/fuzz/$t.dict" ] && dict=(-dict="$ROOT/tests/fuzz/$t.dict")
    echo "== $t: fuzzing ${secs}s" >>"$log"
    local seed_dir=()
    [ -d "$seeds" ] && seed_dir=("$seeds")
    nice -n "$niceness" "$bin" "${common[@]}" "${dict[@]}" -max_total_time="$secs" "$scratch" "${seed_dir[@]}" >>"$log" 2>&1
}

# One line per target: status, executions, coverage, features, corpus size.
summarize() {
    local t=$1 rc=$2 log=$LOGS/$t.log
    local execs last
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}')
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' || true)
    printf '%-22s %-6s execs=%-10s %s\n' "$t" "$([ "$rc" = 0 ] && echo ok || echo FAIL)" "${execs:-?}" "${last:-}"
}

fuzz_all() {
    local secs=$1 jobs=$2 niceness=$3 keep=$4
    shift 4
    local targets=("$@")
    [ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(all_targets)
    local names=() failed=0
    declare -A rcs=()
    for t in "${targets[@]}"; do
        [ -x "$OUT/$t" ] || { echo "fuzz.sh: no harness $t" >&2; exit 2; }
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
        rm -f "$LOGS/$t.rc"
        mkdir -p "$LOGS"
        (if run_one "$t" "$secs" "$niceness" "$keep"; then echo 0; else echo 1; fi >"$LOGS/$t.rc") &
        names+=("$t")
    done
    wait
    for t in "${names[@]}"; do
        rcs[$t]=$(cat "$LOGS/$t.rc" 2>/dev/null || echo 1)
        [ "${rcs[$t]}" = 0 ] || failed=1
    done
    : >"$LOGS/summary.txt"
    for t in "${names[@]}"; do
        summarize "$t" "${rcs[$t]}" | tee -a "$LOGS/summary.txt" | sed 's/^/FINAL /' >>"$LOGS/$t.log"
    done
    cat "$LOGS/summary.txt"
    if [ $failed = 1 ]; then
        for t in "${names[@]}"; do
            [ "${rcs[$t]}" = 0 ] && continue
            echo "---- $t failed; log $LOGS/$t.log:"
            grep -E 'ERROR|SUMMARY|runtime error|invariant failed|Test unit written|FAILED' "$LOGS/$t.log" | head -20
            ls -1 "$WORK/artifacts/$t/" 2>/dev/null | sed "s|^|crash file: $WORK/artifacts/$t/|"
        done
        return 1
    fi
}

cmd=${1:-}
shift || true
case "$cmd" in
build) build ;;
ci)
    secs=${1:-60}
    shift || true
    WORK=$OUT/ci LOGS=$OUT/logs/ci
    build
    fuzz_all "$secs" "${MMS_FUZZ_JOBS:-2}" "${MMS_FUZZ_NICE:-10}" 0 "$@"
    ;;
long)
    [ $# -ge 1 ] || usage
    secs=$1
    shift
    WORK=$OUT/long LOGS=$OUT/logs/long
    build
    fuzz_all "$secs" "${MMS_FUZZ_JOBS:-99}" "${MMS_FUZZ_NICE:-19}" 1 "$@"
    ;;
*) usage ;;
esac
