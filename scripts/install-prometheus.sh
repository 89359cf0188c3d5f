#!/usr/bin/env bash
# Unpacks Debian's prometheus binary for the tests that scrape the plugin's
# metrics, once, into a per-user cache outside the checkout, and prints its
# path. It downloads the .deb (apt-get download) and extracts it (dpkg-deb
# -x) instead of installing the package, so no prometheus service is set up
# or started; the tests run the binary themselves on 127.0.0.1.
set -euo pipefail

cache="${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-secrets-aritma"

# Already unpacked: the newest version in the cache, without asking apt.
cached="$(ls -d "$cache"/prometheus-*/usr/bin/prometheus 2>/dev/null | sort -V | tail -n 1 || true)"
if [[ -n "$cached" && -x "$cached" ]] && "$cached" --version >/dev/null 2>&1; then
  echo "$cached"
  exit 0
fi

echo "unpacking Debian's prometheus into $cache (once)" >&2
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# As root, apt-get downloads as the _apt user, which must be able to write
# here.
if [[ "$(id -u)" == 0 ]] && id _apt >/dev/null 2>&1; then
  chown _apt "$tmp"
fi
export DEBIAN_FRONTEND=noninteractive
if ! (cd "$tmp" && apt-get download -qq prometheus >&2); then
  # A fresh machine (a CI container) has no package lists yet.
  sudo=""
  if [[ "$(id -u)" != 0 ]]; then
    sudo="sudo"
  fi
  $sudo apt-get update -qq >&2
  (cd "$tmp" && apt-get download -qq prometheus >&2)
fi
deb="$(ls "$tmp"/prometheus_*.deb)"
version="$(dpkg-deb -f "$deb" Version)"
dir="$cache/prometheus-${version//:/_}"

# Extract to a temporary name and rename, so an interrupted run never leaves
# a directory that looks finished.
rm -rf "$dir.partial"
mkdir -p "$dir.partial"
dpkg-deb -x "$deb" "$dir.partial"
rm -rf "$dir"
mv "$dir.partial" "$dir"
"$dir/usr/bin/prometheus" --version >&2
echo "$dir/usr/bin/prometheus"
