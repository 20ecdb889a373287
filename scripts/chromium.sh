#!/usr/bin/env bash
# Make sure Debian's Chromium is there for the browser tests; install it when we can (root + apt).
set -u
# CHROMIUM names another build (the tests launch it); CHROMIUM_NO_INSTALL=1 only checks.
for candidate in "${CHROMIUM:-/usr/bin/chromium}" "$(command -v chromium 2>/dev/null)"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then exit 0; fi
done
if [ "${CHROMIUM_NO_INSTALL:-0}" != 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Chromium is missing: installing Debian's chromium package (apt-get install -y chromium)"
  if DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; then
    [ -x "${CHROMIUM:-/usr/bin/chromium}" ] && exit 0
  fi
  echo "ERROR: apt-get could not install chromium. Install it by hand (apt-get install -y chromium) and run the tests again." >&2
  exit 1
fi
echo "ERROR: the browser tests need Chromium at ${CHROMIUM:-/usr/bin/chromium}. Install Debian's package as root:" >&2
echo "         sudo apt-get install -y chromium" >&2
echo "       (or point CHROMIUM=/path/to/chromium at another build), then run the tests again." >&2
exit 1
