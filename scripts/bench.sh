#!/usr/bin/env bash
# make bench: measures the engine and rewrites docs/benchmarks.md.
#
# Builds the shipped plugin, the bench-only builds (bench/: the engine with a
# pprof server, the ceiling probe, the load driver) and the engine's test
# binary, then runs bench/cmd/aritmabench, which starts (and stops, by
# process group) every server it uses on 127.0.0.1. Raw results and
# profiles go to bench/out/. Extra arguments go to aritmabench run, e.g.
#   scripts/bench.sh -stages a,b -quick
# Benchmarks are never part of make test.
set -euo pipefail

# When the run started, so that the report's total includes the builds below.
# (The very first run also builds Vault, about 20 minutes, once; make bench
# does that before this script starts.)
export BENCH_STARTED="${BENCH_STARTED:-$(date +%s)}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

vault_bin="$(scripts/build-vault.sh)"
if [[ ! -f e2e/oauthserver/node_modules/.package-lock.json ]]; then
  npm ci --prefix e2e/oauthserver --no-audit --no-fund --loglevel=error
fi

out="$root/bench/out"
bin="$out/bin"
mkdir -p "$bin"
echo "building the plugin, the bench builds and the engine's test binary" >&2
go build -trimpath -o "$bin/vault-plugin-secrets-aritma" .
go test -c -o "$bin/aritma.test" ./aritma
# -mod=mod: the engine (replace ../) may have gained dependencies since bench/go.sum was written.
(cd bench && go build -mod=mod -trimpath -o "$bin/" ./cmd/aritma-profiled ./cmd/probe ./cmd/aritmabench)

exec "$bin/aritmabench" run -repo "$root" -vault "$vault_bin" -bin "$bin" -out "$out" "$@"
