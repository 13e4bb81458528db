#!/usr/bin/env bash
# Install Debian's chromium (if missing) for the HTML report's browser test.
# Playwright drives it through CHROMIUM=/usr/bin/chromium: no browser download.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "install-chromium: must run as root to apt-get install chromium" >&2; exit 1; }
echo "install-chromium: installing Debian's chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y chromium fonts-dejavu-core >/dev/null \
  || { apt-get update -qq && apt-get install -y chromium fonts-dejavu-core >/dev/null; }
chromium --version
