#!/bin/sh
# mpi_cache_resume.sh kill|stop MPI_RUN_SH COMMAND...: the result cache across ranks when a rank is lost.
# COMMAND (an mpirun of mpi_cluster with its rank count) runs twice on one cache directory (mpi_cluster.c):
#  kill: with `cache_kill` an agent rank is SIGKILLed half way (the job must fail, leaving no process), then
#        `cache_resume` must compute exactly the items no rank stored, with every result right;
#  stop: with `cache_stop` an agent rank is SIGSTOPped (the job must end after its silence), then
#        `cache_stop_check` checks that every computation that started had its entry stored.
set -u
how=$1
run=$2
shift 2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
if [ "$how" = kill ]; then
  sh "$run" --expect-fail "exited on signal 9|killed" mpi_cluster "$@" cache_kill "$dir" || exit 1
  sh "$run" mpi_cluster "$@" cache_resume "$dir"
else
  sh "$run" --expect-fail "has not been heard from" mpi_cluster "$@" cache_stop "$dir" || exit 1
  sh "$run" mpi_cluster "$@" cache_stop_check "$dir"
fi
