#!/usr/bin/env bash
# make reliability: the long runs — fault and storage-fault tests,
# longer fuzzing, the end-to-end suite with its secret scans, failover on a
# three-node raft cluster, and a load run — then docs/reliability.md,
# generated from the figures they recorded. In CI (CI=true) the report goes
# to a temporary file and is printed: CI never rewrites tracked files.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export ARITMA_FIGURES="$work/figures.jsonl"
export ARITMA_VAULT_BIN="${ARITMA_VAULT_BIN:-$(scripts/build-vault.sh)}"
export ARITMA_CHROMIUM="${ARITMA_CHROMIUM:-$(scripts/install-chromium.sh)}"
export ARITMA_PROMETHEUS="${ARITMA_PROMETHEUS:-$(scripts/install-prometheus.sh)}"

echo "== fault and storage-fault tests"
go test -count=1 -run 'TestFaults_|TestStorageFaults_|TestGrantPause_|TestRetry_' ./aritma

echo "== fuzzing, ${RELIABILITY_FUZZTIME:-20s} per target"
FUZZTIME="${RELIABILITY_FUZZTIME:-20s}" scripts/fuzz.sh

echo "== end-to-end suite with secret scans"
scripts/e2e.sh -count=1 -timeout 15m -v -skip '^TestTerraform' ./e2e/

echo "== failover and load"
E2E_TAGS='e2e reliability' scripts/e2e.sh -count=1 -timeout 15m -v -run '^TestReliability_' ./e2e/

report="${RELIABILITY_REPORT:-docs/reliability.md}"
if [[ -n "${CI:-}" && -z "${RELIABILITY_REPORT:-}" ]]; then
  report="$work/reliability.md"
fi
echo "== report: $report"
go run ./scripts/reliability-report "$ARITMA_FIGURES" "$report"
