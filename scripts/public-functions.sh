#!/bin/sh
# public-functions.sh: prints the name of every function the public headers export (each declaration
# marked MPROC_API in include/mproc/*.h), one per line, sorted.  With --c-strings each name is printed as a
# C string literal and a comma, for an array initializer: tests/CMakeLists.txt generates the list that
# tests/test_badinput.c checks its table against, so a public function without a row fails that test.
# Usage: sh scripts/public-functions.sh [--c-strings] [INCLUDE_DIR]   (default: include/ of this tree)
set -eu
format=plain
if [ "${1-}" = "--c-strings" ]; then
  format=c
  shift
fi
dir=${1:-"$(dirname "$0")/../include"}

# A declaration starts on one line with MPROC_API, its return type and the name before "(" (every header
# keeps to that; a wrapped parameter list continues on the next lines).  Not the macro's own definition.
names=$(cat "$dir"/mproc/*.h |
  grep -E '^[[:space:]]*MPROC_API[[:space:]]' |
  sed -E 's/^[[:space:]]*MPROC_API[^(]*[^A-Za-z0-9_(]([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*\(.*/\1/' |
  LC_ALL=C sort -u)
[ -n "$names" ] || {
  echo "public-functions.sh: no MPROC_API declaration found under $dir/mproc" >&2
  exit 1
}
for n in $names; do
  case $n in
    mproc_*) ;;
    *)
      echo "public-functions.sh: cannot read a function name from a declaration ($n)" >&2
      exit 1
      ;;
  esac
  if [ "$format" = c ]; then echo "\"$n\","; else echo "$n"; fi
done
