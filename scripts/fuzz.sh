#!/usr/bin/env bash
# `make fuzz`: runs every fuzz target of a KEEL_FUZZ build for SECONDS each, starting from the
# kept corpus (tests/fuzz/corpus/TARGET, read only) and growing a working corpus in
# BUILD/corpus/TARGET. A crash leaves its input in BUILD/crashes/; copy it into
# tests/fuzz/corpus/TARGET once fixed, so `make test` replays it for good.
#   scripts/fuzz.sh BUILD_DIR SECONDS
set -uo pipefail
BUILD=${1:?usage: fuzz.sh BUILD_DIR SECONDS}
SECONDS_EACH=${2:?usage: fuzz.sh BUILD_DIR SECONDS}
mkdir -p "$BUILD/crashes"
status=0
for bin in "$BUILD"/src/fuzz/fuzz-*; do
  target=${bin##*/fuzz-}
  mkdir -p "$BUILD/corpus/$target"
  log="$BUILD/fuzz-$target.log"
  "$bin" -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
    -artifact_prefix="$BUILD/crashes/$target-" \
    "$BUILD/corpus/$target" "tests/fuzz/corpus/$target" >"$log" 2>&1
  code=$?
  execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  crashes=$(ls "$BUILD/crashes/$target-"* 2>/dev/null | wc -l)
  printf '%-24s %12s execs in %ss, corpus %s files, %s crash(es)%s\n' "$target" "${execs:-?}" \
    "$SECONDS_EACH" "$(ls "$BUILD/corpus/$target" | wc -l)" "$crashes" \
    "$([ $code -ne 0 ] && echo " (exit $code: see $log)")"
  [ $code -eq 0 ] || status=1
done
exit $status
