#!/usr/bin/env bash
# Installs Debian's Chromium for the browser test, once, and prints its path.
# The test drives it headless (chromedp) against the Vault and OAuth servers
# on 127.0.0.1; it never downloads a browser of its own.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  command -v chromium
  exit 0
fi
echo "installing Debian's chromium (once)" >&2
sudo=""
if [[ "$(id -u)" != 0 ]]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2
$sudo apt-get install -y -qq --no-install-recommends chromium >&2
command -v chromium
