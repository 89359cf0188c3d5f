#!/usr/bin/env bash
# Builds the pinned Vault server from the Go module proxy, once, into a per-user
# cache outside the checkout (CI clones fresh, so an in-repo cache would rebuild
# every run). Prints the binary's path.
#
# `go install github.com/hashicorp/vault@vX` is refused because Vault's go.mod has
# replace directives; tools/vault is a separate module that copies the two that
# point at other modules and builds Vault as a dependency.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="$(awk '$1 == "require" && $2 == "github.com/hashicorp/vault" { print $3 }' "$root/tools/vault/go.mod")"
cache="${ARITMA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-secrets-aritma}"
bin="$cache/vault-$version/vault"

if [[ -x "$bin" ]] && "$bin" version >/dev/null 2>&1; then
  echo "$bin"
  exit 0
fi

mkdir -p "$(dirname "$bin")"
echo "building Vault $version into $bin (about 20 minutes on 2 cores the first time)" >&2
cd "$root/tools/vault"
# Build to a temporary name and rename, so an interrupted build never leaves a
# binary that looks finished.
go build -mod=mod -trimpath -ldflags='-s -w' -o "$bin.partial" github.com/hashicorp/vault
mv "$bin.partial" "$bin"
echo "$bin"
