#!/bin/sh
# mpi_run.sh [--expect-fail PATTERN] NAME COMMAND...: runs an MPI job, then fails if a process named NAME is
# left on the machine (ranks, their fork servers, templates and workers all carry the program's name).
# With --expect-fail, the job must end with a non-zero status and PATTERN (grep -E; "" for any) in its output.
set -u
pattern=""
expect_fail=""
if [ "$1" = --expect-fail ]; then
  expect_fail=1
  pattern=$2
  shift 2
fi
name=$1
shift
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$@" >"$out" 2>&1
rc=$?
cat "$out"
# Processes of the job that live on, zombies aside (reaped by whoever adopted them).  After a rank is killed,
# its fork server, templates and workers end by themselves, each seeing its parent die: they get 10 s.
alive() {
  for p in $(pgrep -x "$name"); do
    st=$(sed 's/.*) \(.\).*/\1/' "/proc/$p/stat" 2>/dev/null) || continue
    [ "$st" = Z ] || echo "$p"
  done
}
tries=0
left=$(alive)
while [ -n "$left" ] && [ "$tries" -lt 100 ]; do
  sleep 0.1
  tries=$((tries + 1))
  left=$(alive)
done
if [ -n "$left" ]; then
  echo "mpi_run: processes left after the job: $left" >&2
  ps -o pid,ppid,stat,args -p "$(echo "$left" | tr '\n' ',' | sed 's/,$//')" >&2
  exit 1
fi
if [ -n "$expect_fail" ]; then
  [ "$rc" != 0 ] || { echo "mpi_run: the job should have failed" >&2; exit 1; }
  [ -z "$pattern" ] || grep -Eq "$pattern" "$out" || { echo "mpi_run: no \"$pattern\" in the job's output" >&2; exit 1; }
  echo "mpi_run: failed as expected (status $rc)"
  exit 0
fi
exit "$rc"
