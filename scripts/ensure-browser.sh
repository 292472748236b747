#!/usr/bin/env bash
# The browser tests (tests/e2e/test_console_browser.py) drive Debian's Chromium through its
# chromedriver. Quiet when both are there; installs them when run as root with apt-get;
# otherwise names what to install and fails.
set -euo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  exit 0
fi
if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-browser: installing chromium and chromium-driver (apt-get)"
  if [[ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' || true)" ]]; then
    apt-get update -qq
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  exit 0
fi
echo "ensure-browser: Chromium is missing: install it with 'apt-get install chromium chromium-driver'" >&2
exit 1
