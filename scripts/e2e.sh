#!/usr/bin/env bash
# Runs the end-to-end tests (arguments go to go test) and then scans their
# output for every secret they used: the tests note each client secret,
# private key line and access token in a temporary file, which this script
# greps the output for and deletes. The tests themselves scan Vault's log,
# its audit log, the plugin's and the OAuth server's logs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

secrets="$(mktemp)"
output="$(mktemp)"
trap 'rm -f "$secrets" "$output"' EXIT

set +e
ARITMA_SECRETS_FILE="$secrets" go test -tags "${E2E_TAGS:-e2e}" "$@" 2>&1 | tee "$output"
status=${PIPESTATUS[0]}
set -e

noted="$(sort -u "$secrets" | grep -c . || true)"
bytes="$(wc -c <"$output")"
found=0
if [[ "$noted" -gt 0 ]]; then
  found="$(grep -F -c -f <(sort -u "$secrets" | grep .) "$output" || true)"
fi
echo "secret scan of the test output: $bytes bytes, $noted secrets looked for, $found lines with a secret"
if [[ -n "${ARITMA_FIGURES:-}" ]]; then
  echo "{\"figure\":\"test_output_bytes_scanned\",\"value\":$bytes}" >>"$ARITMA_FIGURES"
  echo "{\"figure\":\"test_output_secrets_found\",\"value\":$found}" >>"$ARITMA_FIGURES"
  echo "{\"figure\":\"secrets_looked_for\",\"value\":$noted}" >>"$ARITMA_FIGURES"
fi
if [[ "$found" -ne 0 ]]; then
  echo "the test output contains a secret in clear" >&2
  exit 1
fi
exit "$status"
