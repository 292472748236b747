#!/usr/bin/env bash
# The browser tests (tests/e2e/test_console_browser.py, test_password_channel.py) drive
# Debian's Chromium through its chromedriver; the screenshots they take for docs/ need a
# CJK font (fonts-noto-cjk) to show the Chinese text. Quiet when all are there; installs
# them when run as root with apt-get; otherwise names what to install and fails (the font
# only matters for screenshots: its absence is named, not fatal).
set -euo pipefail

have_browser() { [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; }
have_font() { [[ -d /usr/share/fonts/opentype/noto ]] && ls /usr/share/fonts/opentype/noto | grep -q CJK; }

if have_browser && have_font; then
  exit 0
fi
if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  have_browser || missing+=(chromium chromium-driver)
  have_font || missing+=(fonts-noto-cjk)
  echo "ensure-browser: installing ${missing[*]} (apt-get)"
  if [[ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' || true)" ]]; then
    apt-get update -qq
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  exit 0
fi
if ! have_browser; then
  echo "ensure-browser: Chromium is missing: install it with 'apt-get install chromium chromium-driver'" >&2
  exit 1
fi
echo "ensure-browser: no CJK font: screenshots show boxes for Chinese text ('apt-get install fonts-noto-cjk')" >&2
