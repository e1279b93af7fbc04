#!/bin/sh
# install-deps.sh: installs, from Debian's packages, everything mproc's build, tests, checks (clang-format,
# clang-tidy, clang with libFuzzer for make fuzz: libclang-rt-dev holds it, only recommended by clang) and
# benchmarks use.
# Run as root on Debian 12 or later.  Set MPROC_DEPS_MINIMAL=1 to skip the benchmark anchors (Python's
# joblib and numpy, Open MPI, mpi4py).
set -eu
export DEBIAN_FRONTEND=noninteractive
pkgs="build-essential cmake pkg-config libxxhash-dev libzstd-dev clang-format clang-tidy clang libclang-rt-dev valgrind"
if [ "${MPROC_DEPS_MINIMAL:-0}" != 1 ]; then
  pkgs="$pkgs python3 python3-joblib python3-numpy libopenmpi-dev openmpi-bin python3-mpi4py"
fi
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  apt-get update -q
  # shellcheck disable=SC2086
  apt-get install -y -q $missing
fi
