#!/bin/sh
# run.sh BUILD_DIR RUNS [TARGET...]: runs each fuzz target of a MPROC_FUZZ=ON build (make fuzz) for RUNS
# inputs (the cache's targets, which write a file and run six readers per input, for RUNS / 10), starting
# from its committed corpus (fuzz/corpus/TARGET/, read only: the inputs it finds go to
# BUILD_DIR/fuzz/found/TARGET/), two targets at a time.  Fails when one crashes, leaks or times out (10 s an
# input); its input is kept as BUILD_DIR/fuzz/crashes/TARGET-*: add it to fuzz/corpus/TARGET/ with the fix.
# FUZZ_ARGS adds libFuzzer options (say -max_total_time=600 for a long run, with RUNS -1).
set -eu
build=$1
runs=$2
shift 2
src=$(cd "$(dirname "$0")" && pwd)
targets=${*:-$(cd "$src" && ls fuzz_*.c | sed 's/\.c$//')}
mkdir -p "$build/fuzz/crashes" "$build/fuzz/logs"
one() {
  t=$1
  n=$runs
  case "$t" in fuzz_cache_*) [ "$runs" -gt 0 ] && n=$((runs / 10)) ;; esac
  mkdir -p "$build/fuzz/found/$t"
  t0=$(date +%s)
  # shellcheck disable=SC2086
  if "$build/fuzz/$t" -runs="$n" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/fuzz/crashes/$t-" ${FUZZ_ARGS:-} "$build/fuzz/found/$t" "$src/corpus/$t" \
    >"$build/fuzz/logs/$t.log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/fuzz/logs/$t.log")
    echo "$t: $execs inputs in $(($(date +%s) - t0)) s, no crash"
  else
    tail -n 40 "$build/fuzz/logs/$t.log"
    echo "$t: FAILED (log: $build/fuzz/logs/$t.log, input: $build/fuzz/crashes/$t-*)"
    return 1
  fi
}
status=0
set -- $targets
while [ $# -gt 0 ]; do
  one "$1" &
  a=$!
  b=""
  if [ $# -gt 1 ]; then
    one "$2" &
    b=$!
    shift
  fi
  shift
  wait $a || status=1
  if [ -n "$b" ]; then wait $b || status=1; fi
done
exit $status
