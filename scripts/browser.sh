#!/usr/bin/env bash
# Install the headless browser of the console's browser test (tests/test_browser_console.py):
# Debian's chromium and chromium-driver (Selenium drives it), with apt-get, when either is missing.
#
#   bash scripts/browser.sh          # prints the browser's path and version; exit 0 when usable
#
# Runs as root (CI does) or through sudo when that is available without a password. Exit 3:
# apt-get is not available here (not Debian/Ubuntu), so the browser test skips with that reason.
set -euo pipefail
BROWSER="${FEDMOE_CHROMIUM:-/usr/bin/chromium}"
DRIVER="${FEDMOE_CHROMEDRIVER:-/usr/bin/chromedriver}"
if [ ! -x "$BROWSER" ] || [ ! -x "$DRIVER" ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "apt-get not found: install Chromium by hand and set FEDMOE_CHROMIUM" >&2
    exit 3
  fi
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
      echo "not root and no password-less sudo: cannot apt-get install chromium" >&2
      exit 3
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core
fi
"$BROWSER" --version
echo "$BROWSER"
