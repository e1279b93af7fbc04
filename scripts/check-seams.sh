#!/bin/sh
# check-seams.sh OBJECT...: fails when an object file of src/engine/ or src/backend/ refers to a symbol that
# an object of src/face/ defines: the engine and the backends know no face (a job carries its completion,
# see docs/design.md).  Run by ctest (engine_seams) with the library's object files.
set -eu
# ctest passes CMake's list as one argument separated by ';'
# shellcheck disable=SC2046
set -- $(printf '%s\n' "$@" | tr ';' '\n')
face_syms=$(mktemp)
trap 'rm -f "$face_syms"' EXIT
for o in "$@"; do
  case "$o" in */src/face/*) nm --defined-only "$o" | awk '$2 ~ /^[TDBRC]$/ {print $3}' ;; esac
done | sort -u >"$face_syms"
[ -s "$face_syms" ] || { echo "check-seams: no object of src/face/ given" >&2; exit 2; }
bad=0
checked=0
for o in "$@"; do
  case "$o" in
    */src/engine/* | */src/backend/*)
      checked=$((checked + 1))
      for s in $(nm -u "$o" | awk '{print $2}' | grep -Fx -f "$face_syms" || true); do
        echo "check-seams: $(basename "$o") refers to $s, defined in src/face/"
        bad=1
      done
      ;;
  esac
done
[ "$checked" -gt 0 ] || { echo "check-seams: no object of src/engine/ or src/backend/ given" >&2; exit 2; }
[ "$bad" = 0 ] && echo "check-seams: clean ($checked objects of src/engine/ and src/backend/)"
exit "$bad"
