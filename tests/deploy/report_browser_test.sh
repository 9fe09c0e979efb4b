#!/usr/bin/env bash
# The diag report in a real browser (Debian's headless Chromium): the report of real lavapipe runs
# with drills (scripts/diag-report-demo.sh, 2 rounds) parses in Chromium into the same charts,
# heatmap cells and bit bars the file holds, with no script; a hostile device name stays text;
# the screenshot is a PNG of the window's size with content (a blank page compresses to a few KiB).
# Skipped (exit 77) when chromium is not installed: the structure checks in
# tests/daemon/diag_report_test.cpp and tests/daemon/cli/report_command_test.cpp run without it.
#
# Environment: SUBSTRATED_BIN (default <repo>/build/substrated).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
source "$here/lib.sh" deploy-report_browser

if ! command -v chromium >/dev/null 2>&1; then
  echo "deploy-report_browser: skipped: chromium is not installed (apt-get install chromium)"
  exit 77
fi
require_tools python3
require_substrated

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
SUBSTRATED_BIN="$bin" bash "$repo/scripts/diag-report-demo.sh" "$work/demo" 2

# dom FILE: the document as Chromium parsed it.
dom() { chromium --headless --no-sandbox --disable-gpu --dump-dom "file://$1" 2>/dev/null; }

# count PATTERN FILE: occurrences of PATTERN (a fixed string).
count() { grep -oF -- "$1" "$2" | wc -l; }

report="$work/demo/report.html"
dom "$report" >"$work/dom.html"
for pattern in '<svg class="chart"' '<svg class="heatmap"' '<svg class="bits"' '<rect class="cell"' \
  '<rect class="bar"' '<pre class="replay"'; do
  in_file="$(count "$pattern" "$report")"
  in_dom="$(count "$pattern" "$work/dom.html")"
  if [[ "$in_file" -gt 0 && "$in_file" -eq "$in_dom" ]]; then
    pass "Chromium's DOM has the file's $in_file × $pattern"
  else
    fail "$pattern: $in_file in the file, $in_dom in Chromium's DOM"
  fi
done
if grep -q '<script' "$work/dom.html"; then fail "a script element in the DOM"; else pass "no script element"; fi

python3 - "$work/demo/input.json" "$work/hostile.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for r in doc["results"]:
    r["device"]["name"] = "<img src=x onerror=alert(1)><b>GPU</b> & 'co'"
json.dump(doc, open(sys.argv[2], "w"))
PY
"$bin" report "$work/hostile.json" -o "$work/hostile.html"
dom "$work/hostile.html" >"$work/hostile-dom.html"
if grep -q '<img\|<b>' "$work/hostile-dom.html"; then
  fail "a hostile device name became markup in Chromium"
elif grep -qF '&lt;img src=x onerror=alert(1)&gt;&lt;b&gt;GPU&lt;/b&gt; &amp; ' "$work/hostile-dom.html"; then
  pass "a hostile device name stays text in Chromium"
else
  fail "the hostile device name is missing from Chromium's DOM"
fi

png="$work/demo/report.png"
read -r width height bytes <<<"$(python3 -c '
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
print(*struct.unpack(">II", data[16:24]), len(data))' "$png")"
if [[ "$width" -eq 1100 && "$height" -eq 2600 && "$bytes" -gt 40000 ]]; then
  pass "screenshot ${width}x${height}, $bytes bytes"
else
  fail "screenshot ${width}x${height}, $bytes bytes (expected 1100x2600 with content, > 40000 bytes)"
fi
finish
