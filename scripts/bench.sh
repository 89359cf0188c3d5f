#!/usr/bin/env bash
# make bench: measures the engine against the targets of docs/benchmarks.md
# and rewrites that file's tables.
#
# Builds the engine's test binary, the ceiling probe and the driver
# (bench/, a module of its own), then runs bench/cmd/aritmabench, which
# builds the plugin and its profiling build and starts (and stops, by
# process group) every server it uses on 127.0.0.1. Raw results go to
# bench/out/. Extra arguments go to aritmabench run, e.g.
#   scripts/bench.sh -stages inprocess,load -quick
# Benchmarks are never part of make test.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

vault_bin="$(scripts/build-vault.sh)"
tofu_bin="$(scripts/build-tofu.sh)"
tf_mirror="$(scripts/build-terraform-provider-vault.sh)"
if [[ ! -f e2e/oauthserver/node_modules/.package-lock.json ]]; then
  npm ci --prefix e2e/oauthserver --no-audit --no-fund --loglevel=error
fi

out="$root/bench/out"
bin="$out/bin"
mkdir -p "$bin"
echo "building the engine's test binary, the probe and aritmabench" >&2
go test -c -o "$bin/aritma.test" ./aritma
# -mod=readonly: bench/go.sum is complete (go mod tidy in bench/ after a
# dependency change), so a build never rewrites it.
(cd bench && go build -mod=readonly -trimpath -o "$bin/" ./cmd/probe ./cmd/aritmabench)

exec "$bin/aritmabench" run -repo "$root" -vault "$vault_bin" -tofu "$tofu_bin" -tf-mirror "$tf_mirror" \
  -bin "$bin" -out "$out" "$@"
