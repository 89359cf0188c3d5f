#!/usr/bin/env bash
# Installs Debian's headless Chromium (chromium-headless-shell) for the
# browser test, once, and prints its path. The test drives it (chromedp)
# against the Vault and OAuth servers on 127.0.0.1; it never downloads a
# browser of its own.
set -euo pipefail

if command -v chromium-headless-shell >/dev/null 2>&1; then
  command -v chromium-headless-shell
  exit 0
fi
echo "installing Debian's chromium-headless-shell (once)" >&2
sudo=""
if [[ "$(id -u)" != 0 ]]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2
$sudo apt-get install -y -qq --no-install-recommends chromium-headless-shell >&2
command -v chromium-headless-shell
