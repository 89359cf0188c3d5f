#!/usr/bin/env bash
# Builds the pinned OpenTofu CLI from the Go module proxy, once, into the same
# per-user cache as build-vault.sh (about 6 minutes on 2 cores the first time).
# Prints the binary's path.
#
# `go install github.com/opentofu/opentofu/cmd/tofu@vX` is refused because
# OpenTofu's go.mod has a replace directive; tools/tofu is a separate module
# that copies it and builds tofu as a dependency.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="$(awk '$1 == "require" && $2 == "github.com/opentofu/opentofu" { print $3 }' "$root/tools/tofu/go.mod")"
cache="${ARITMA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-secrets-aritma}"
bin="$cache/tofu-$version/tofu"

# `tofu version` may print CLI config warnings first.
if [[ -x "$bin" ]] && [[ "$("$bin" version 2>/dev/null | grep '^OpenTofu ' || true)" == "OpenTofu $version" ]]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$(dirname "$bin")"
echo "building OpenTofu $version into $bin (about 6 minutes on 2 cores the first time)" >&2
cd "$root/tools/tofu"
# Build to a temporary name and rename, so an interrupted build never leaves a
# binary that looks finished. version.dev=no is what OpenTofu's release builds
# set (.goreleaser.yaml); without it the binary calls itself v1.12.6-dev.
go build -mod=mod -trimpath -ldflags='-s -w -X github.com/opentofu/opentofu/version.dev=no' \
  -o "$bin.partial" github.com/opentofu/opentofu/cmd/tofu
mv "$bin.partial" "$bin"
echo "$bin"
