#!/bin/sh
# check-format.sh: fails when a C source or header of mproc's own is not as clang-format (the checked-in
# .clang-format) would write it.  With --fix, rewrites them instead.
set -eu
cd "$(dirname "$0")/.."
files=$(git ls-files 'src/*.c' 'src/*.h' 'include/*.h' 'tests/*.c' 'tests/*.h' 'examples/*.c' 'bench/c/*.c' \
  'bench/c/*.h' 'fuzz/*.c' 'fuzz/*.h')
if [ "${1:-}" = --fix ]; then
  # shellcheck disable=SC2086
  clang-format -i $files
else
  # shellcheck disable=SC2086
  clang-format --dry-run -Werror $files
  echo "clang-format: $(echo "$files" | wc -w) files clean"
fi
