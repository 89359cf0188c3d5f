#!/usr/bin/env bash
# Builds the pinned Vault provider for OpenTofu from the Go module proxy, once,
# into the same per-user cache as build-vault.sh (about 2 minutes on 2 cores
# the first time), laid out as a provider mirror. Prints the mirror's
# directory, for a CLI config's filesystem_mirror (see e2e/terraform_test.go),
# so that `tofu init` installs the provider from it as from the registry.
#
# The Terraform and OpenTofu registries, where released providers come from,
# are not used: tests run where only the Go module proxy is reachable. The pin
# is the commit of the provider's main branch whose version/VERSION is 5.9.0
# (CHANGELOG: 5.9.0, April 22, 2026, nothing unreleased); the mirror lists it
# as that version. It has no replace directives, so `go install` builds it.
set -euo pipefail

module="github.com/hashicorp/terraform-provider-vault"
pin="v1.9.1-0.20260422134934-5e9fcd457a99"
cache="${ARITMA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-secrets-aritma}"
mirror="$cache/terraform-provider-vault-$pin"
platform="$(go env GOOS)_$(go env GOARCH)"

installed="$(ls "$mirror"/registry.opentofu.org/hashicorp/vault/*/"$platform"/terraform-provider-vault_v* 2>/dev/null || true)"
if [[ -n "$installed" && -x "$installed" ]]; then
  echo "$mirror"
  exit 0
fi

echo "building terraform-provider-vault $pin into $mirror (about 2 minutes on 2 cores the first time)" >&2
src="$(go mod download -json "$module@$pin" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
version="$(tr -d '[:space:]' <"$src/version/VERSION")"
# Install into a temporary directory and rename, so an interrupted build never
# leaves a mirror that looks finished.
rm -rf "$mirror.partial"
mkdir -p "$mirror.partial/bin"
GOBIN="$mirror.partial/bin" go install -trimpath -ldflags='-s -w' "$module@$pin"
dest="$mirror.partial/registry.opentofu.org/hashicorp/vault/$version/$platform"
mkdir -p "$dest"
mv "$mirror.partial/bin/terraform-provider-vault" "$dest/terraform-provider-vault_v$version"
rmdir "$mirror.partial/bin"
rm -rf "$mirror"
mv "$mirror.partial" "$mirror"
echo "$mirror"
