#!/usr/bin/env bash
# The diag report of real runs on device vulkan0 (lavapipe where there is no GPU), for
# docs/diag-report.md and tests/deploy/report_browser_test.sh:
#   OUT/input.json   ITERATIONS rounds of `probe --local --json` (GEMM 256x256x256 f32 exact and
#                    attention f32), the middle GEMM run with a drill on every 32nd element (a
#                    stuck lane: column stripes), plus one memory run with a bad word at byte 4000
#   OUT/report.html  `substrated report OUT/input.json -o OUT/report.html`
#   OUT/report.png   Chromium's headless screenshot of it, when chromium is installed
#
# usage: scripts/diag-report-demo.sh OUT [ITERATIONS (default 8)]
# Environment: SUBSTRATED_BIN (default <repo>/build/substrated). The docs step:
#   scripts/diag-report-demo.sh /tmp/demo && cp /tmp/demo/report.png docs/diag-report.png
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${SUBSTRATED_BIN:-$repo/build/substrated}"
out="${1:?usage: $0 OUT [ITERATIONS]}"
iterations="${2:-8}"
mkdir -p "$out/runs"

# probe NAME ARGS...: one run's JSON in runs/NAME.json; a drill exits 1, which is expected here.
probe() {
  local name="$1" rc=0
  shift
  "$bin" probe --local --device vulkan0 --json "$@" >"$out/runs/$name.json" || rc=$?
  [[ "$rc" -le 1 ]] || { echo "substrated probe $* exited $rc" >&2; exit 1; }
}

drill_at=$((iterations / 2))
for i in $(seq 1 "$iterations"); do
  inject=()
  [[ "$i" -eq "$drill_at" ]] && inject=(--inject "bit=30,element=5,stride=32,count=all")
  probe "$(printf '%03d' "$i")-gemm" --kernel gemm --mode exact --dtype f32 --size 256 --seed "$i" "${inject[@]}"
  probe "$(printf '%03d' "$i")-attention" --kernel attention --dtype f32 --seed "$i"
done
probe "$(printf '%03d' "$drill_at")-memory" --kernel memory --size 1048576 --inject bit=5,element=1000

python3 - "$out" <<'PY'
import glob, json, sys
out = sys.argv[1]
results = []
for path in sorted(glob.glob(out + "/runs/*.json")):
    with open(path) as f:
        results += json.load(f)["results"]
with open(out + "/input.json", "w") as f:
    json.dump({"results": results}, f)
PY
"$bin" report "$out/input.json" -o "$out/report.html"

if command -v chromium >/dev/null 2>&1; then
  # --no-sandbox: root in a container has no user namespace for Chromium's sandbox.
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1100,2600 \
    --screenshot="$out/report.png" "file://$(realpath "$out/report.html")" >/dev/null 2>&1
fi
