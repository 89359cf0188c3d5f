#!/usr/bin/env bash
# Runs every fuzz target for a fixed time (FUZZTIME, default 10s) and
# records how many inputs each executed, and crashes (a crash fails the run,
# and Go saves the input under aritma/testdata/fuzz for the fix).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fuzztime="${FUZZTIME:-10s}"
figures="${ARITMA_FIGURES:-}"
targets=$(grep -ho '^func Fuzz[A-Za-z]*' aritma/*_test.go | sed 's/^func //')
total=0
for target in $targets; do
  log="$(mktemp)"
  if ! go test ./aritma -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" >"$log" 2>&1; then
    cat "$log"
    rm -f "$log"
    [[ -n "$figures" ]] && echo "{\"figure\":\"fuzz_crashes\",\"value\":1}" >>"$figures"
    echo "fuzz: $target failed" >&2
    exit 1
  fi
  execs="$(grep -o 'execs: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)"
  rm -f "$log"
  echo "fuzz: $target executed $execs inputs in $fuzztime, no crash"
  total=$((total + execs))
done
if [[ -n "$figures" ]]; then
  echo "{\"figure\":\"fuzz_targets\",\"value\":$(wc -w <<<"$targets")}" >>"$figures"
  echo "{\"figure\":\"fuzz_inputs_executed\",\"value\":$total}" >>"$figures"
  echo "{\"figure\":\"fuzz_crashes\",\"value\":0}" >>"$figures"
  echo "{\"figure\":\"fuzz_time_per_target\",\"value\":\"$fuzztime\"}" >>"$figures"
fi
