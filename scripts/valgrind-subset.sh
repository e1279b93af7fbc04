#!/bin/sh
# valgrind-subset.sh: valgrind's memcheck over a representative subset of the test suite (processes, pools
# with futures and maps, worker faults, queues, shared memory, the cache, items of any size), with every
# process the tests start (callers, templates, fork servers, workers, helpers) traced.  Fails on any memcheck
# error or definite leak in any of them, or on a failed test.  Run by `make test-valgrind` (after the plain
# build); by hand: sh scripts/valgrind-subset.sh BUILD_DIR.  About two minutes on two CPUs.
#
# Settings, and why:
# - --trace-children=yes: the workers, templates and fork servers run most of the library's code.
#   --trace-children-skip: the programs the tests run through system() (sh, rm, mkdir), not ours.
# - --log-file per process: a worker's errors cannot fail its test (the worker's exit code is a crash to
#   the pool at most), so each process's "ERROR SUMMARY" is read here instead.  --error-exitcode still
#   fails a test whose own process has errors.
# - --errors-for-leak-kinds=definite: a definite leak counts as an error.  Processes killed by SIGKILL
#   (on purpose, in the fault tests) write no summary and are not checked.
# - MPROC_SHARED_BYTES=64m: the shared arena is address space only, but memcheck keeps state for every page
#   of a shared mapping, and the default arena (the machine's memory) takes it minutes to set up in each
#   forked process.
# - valgrind 3.19 (Debian 12) does not know pidfd_open (it warns "unhandled amd64-linux syscall: 434" and
#   fails the call with ENOSYS), so the library runs its path for kernels without pidfds here (SIGCHLD in
#   the templates, the parent-death signal); tests whose own checks open pidfds are left out.
# - Left out too: the exec start method (valgrind runs an exec of /proc/self/exe as an exec of its own tool
#   binary, which cannot load), the volume tests (10^5 futures, huge items: memcheck's slowness, not new
#   code paths).
# - No suppressions: none has been needed.
set -eu
BUILD=${1:-build}
LOGS=$BUILD/valgrind
rm -rf "$LOGS"
mkdir -p "$LOGS"
command -v valgrind >/dev/null || {
  echo "valgrind-subset: valgrind is not installed (scripts/install-deps.sh installs it)" >&2
  exit 2
}

failed=0
run() {
  bin=$1
  shift
  t0=$(date +%s)
  if MPROC_SHARED_BYTES=64m MTEST_TIMEOUT_SCALE=${MTEST_TIMEOUT_SCALE:-4} valgrind --tool=memcheck \
    --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite \
    --trace-children=yes --trace-children-skip='/bin/*,/usr/bin/*,/usr/sbin/*' \
    --log-file="$LOGS/$bin.%p.log" "$BUILD/tests/$bin" "$@" >"$LOGS/$bin.out" 2>&1; then
    echo "valgrind-subset: $bin: $(tail -n 1 "$LOGS/$bin.out") ($(($(date +%s) - t0)) s)"
  else
    echo "valgrind-subset: $bin FAILED ($(($(date +%s) - t0)) s):"
    grep -v '^ok ' "$LOGS/$bin.out" || true
    failed=1
  fi
}

run test_process start_join_exit_code argument_bytes_are_copied join_timeout_on_sleeping_process kill_and_signals \
  crash_and_abort_report_their_signal reaped_elsewhere_is_lost_not_hung bad_input
run test_pool_basics closed_pool_process initializer_and_worker_ids destroy_does_not_hang \
  shutdown_with_cancel_and_terminate bad_input
run test_futures submit_results_process submit_results_thread wait_and_as_completed_process \
  cancel_before_start_and_callbacks apply_async_process
run test_map map_ordering_process map_errors_process map_timeout_cancels_the_rest
run test_worker_faults crashes_fail_only_their_task \
  pool_without_pidfds_sees_its_workers_end forkserver_pool_without_pidfds_sees_its_workers_end
run test_queue basic_fifo_sizes_and_state close_drains_then_reports_closed joinable_counts \
  producer_killed_mid_stream_next_producer_recovers consumer_killed_mid_get bad_input
run test_shm
run test_cache hit_miss_contains_stats failure_not_cached compression_and_mmap corruption_recomputed \
  concurrent_processes computing_process_killed
run test_items failures_kept_process map_items_process parallel_keeps_failures \
  lazy_input_fails_in_the_middle

# Every process's own verdict: "ERROR SUMMARY: 0 errors" or it failed.
nlogs=0
bad=0
for f in "$LOGS"/*.log; do
  nlogs=$((nlogs + 1))
  if grep -q 'ERROR SUMMARY: [1-9]' "$f"; then
    echo "valgrind-subset: errors in $f:"
    cat "$f"
    bad=$((bad + 1))
  fi
done
checked=$(grep -l 'ERROR SUMMARY: 0 errors' "$LOGS"/*.log | wc -l)
echo "valgrind-subset: $nlogs processes traced, $checked ended with 0 errors (leaks: none definite), $bad with errors"
[ "$failed" = 0 ] && [ "$bad" = 0 ]
