#!/usr/bin/env bash
# Opens the HTML compliance report in headless Chromium, as an auditor's browser would: the page
# must load as a document (the DOM Chromium builds keeps the summary, a bar chart and a row per
# framework), render to an image, and print to PDF.
#
#   scripts/report-browser.sh        # needs target/debug/podguard (cargo build) and Chromium;
#                                    # installs Debian's chromium when it is missing (sudo when not root)
#
# Environment: PODGUARD_BIN (default target/debug/podguard), CHROMIUM (default /usr/bin/chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

PODGUARD_BIN="${PODGUARD_BIN:-target/debug/podguard}"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if [ ! -x "$CHROMIUM" ]; then
  echo "report-browser: installing Debian's chromium"
  # Other jobs may hold the apt/dpkg locks for a while: wait for them, as prepare.sh does.
  apt_() { sudo_ env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq "$@"; }
  apt_ update >/dev/null
  apt_ install -y --no-install-recommends chromium >/dev/null
fi
[ -x "$PODGUARD_BIN" ] || cargo build --locked

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$PODGUARD_BIN" report --format html -o "$work/report.html" tests/fixtures/compliance/workloads.yaml

# Without these flags Chromium tries to reach Google's services, which this network refuses.
browser() {
  timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/profile" "$@" 2>>"$work/chromium.log"
}

fail() {
  echo "report-browser: $*" >&2
  tail -n 20 "$work/chromium.log" >&2 || true
  exit 1
}

browser --dump-dom "file://$work/report.html" >"$work/dom.html" || fail "chromium could not load the page"
grep -q '<h2 id="summary">Summary</h2>' "$work/dom.html" || fail "no summary in the page Chromium built"
rows=$(grep -o 'class="framework"' "$work/dom.html" | wc -l)
[ "$rows" -eq 7 ] || fail "expected a summary row per framework (7), found $rows"
grep -q '<svg class="bar"' "$work/dom.html" || fail "no summary chart"
grep -q 'Deployment/shop/privileged' "$work/dom.html" || fail "the failing object is not in the page"

browser --screenshot="$work/page.png" --window-size=1280,2000 "file://$work/report.html" >/dev/null ||
  fail "chromium could not render the page"
[ "$(head -c 8 "$work/page.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "no PNG rendered"

browser --print-to-pdf="$work/page.pdf" --no-pdf-header-footer "file://$work/report.html" >/dev/null ||
  fail "chromium could not print the page"
[ "$(head -c 5 "$work/page.pdf")" = "%PDF-" ] || fail "no PDF printed"
pages=$(grep -ac '/Type /Page$\|/Type /Page[^s]' "$work/page.pdf" || true)

echo "report-browser: the HTML report loads (summary, 7 frameworks, chart), renders ($(stat -c %s "$work/page.png") bytes PNG) and prints (${pages:-?} PDF pages)"
