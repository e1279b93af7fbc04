#!/bin/sh
# mpi_cache_resume.sh MPI_RUN_SH COMMAND...: the result cache's resume across ranks.  COMMAND (an mpirun
# of mpi_cluster with its rank count) runs twice on one cache directory: first with `cache_kill` (an agent
# rank is SIGKILLed half way: the job must fail, leaving no process), then with `cache_resume`, which
# checks that it computes exactly the items no rank stored, with every result right (mpi_cluster.c).
set -u
run=$1
shift
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sh "$run" --expect-fail "exited on signal 9|killed" mpi_cluster "$@" cache_kill "$dir" || exit 1
sh "$run" mpi_cluster "$@" cache_resume "$dir"
