#!/usr/bin/env bash
# Seconds-long smoke of every benchmark (tiny counts): proves each still builds, runs and prints
# its report. Asserts no timing. Exit 0 only when every benchmark ran to completion.
#
#   bash bench/smoke.sh [BUILD_DIR]      (default: build-bench next to this directory)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../build-bench}" && pwd)
out=$(mktemp -d /tmp/substrated-bench-smoke.XXXXXX)
trap 'rm -rf "$out"' EXIT
status=0
step() {
  local name=$1
  shift
  local t0=$SECONDS
  if "$@" > "$out/$name.md" 2> "$out/$name.err"; then
    echo "smoke $name: ok ($((SECONDS - t0)) s)"
  else
    echo "smoke $name: FAILED (exit $?)"
    tail -n 20 "$out/$name.err" || true
    tail -n 20 "$out/$name.md" || true
    status=1
  fi
}
step detection "$build/bench/bench_detection" --samples 1 --gemm-size 16 --attention-size 8x1x8 --memory-size 4K \
  --model-injections 2
grep -q "Summary per configuration" "$out/detection.md" || { echo "smoke detection: no summary"; status=1; }
grep -q "Fault models beyond single bits" "$out/detection.md" || { echo "smoke detection: no fault models"; status=1; }
step soak "$build/bench/bench_soak" --runs 60
grep -q "^total: " "$out/soak.md" || { echo "smoke soak: no total"; status=1; }
step overhead "$build/bench/bench_overhead" --repeats 1
grep -q "Duty cycle" "$out/overhead.md" || { echo "smoke overhead: no duty cycle"; status=1; }
step hostile "$build/bench/bench_hostile" --substrated "$build/substrated" --scrapes 20 --connections 50 --settle 1
grep -q "slowloris connections |" "$out/hostile.md" || { echo "smoke hostile: no figure"; status=1; }
step bandwidth "$build/bench/bench_bandwidth" --sizes 1M --repeats 1 --memcpy-per-round 1
grep -q "memory probe / shader copy" "$out/bandwidth.md" || { echo "smoke bandwidth: no ratio"; status=1; }
if [ -x "$build/bench/bench_gemm" ]; then
  step gemm "$build/bench/bench_gemm" --repeats 1 --size 32
  grep -q "OpenBLAS sgemm f32, all cores" "$out/gemm.md" || { echo "smoke gemm: no reference row"; status=1; }
else
  echo "smoke gemm: FAILED (bench_gemm was not built: libopenblas-dev is needed, scripts/install-deps.sh installs it)"
  status=1
fi
step rounds "$build/bench/bench_rounds" --substrated "$build/substrated" --rounds 1
grep -q "per-round overhead of a worker" "$out/rounds.md" || { echo "smoke rounds: no figure"; status=1; }
step ttd bash "$here/ttd.sh" "$build" --poll 0.1 --quick
grep -q "measured" "$out/ttd.md" || { echo "smoke ttd: no figure"; status=1; }
step coverage bash "$here/coverage.sh" "$build" --quick
grep -q "expected hours to see" "$out/coverage.md" || { echo "smoke coverage: no detection table"; status=1; }
if command -v prometheus-node-exporter >/dev/null && command -v wrk >/dev/null; then
  step footprint bash "$here/footprint.sh" "$build" --idle 1 --scrape 1 --compressed 3 --quick
  grep -q "scrape p99" "$out/footprint.md" && grep -q "RSS without a device" "$out/footprint.md" ||
    { echo "smoke footprint: no figure"; status=1; }
else
  echo "smoke footprint: FAILED (prometheus-node-exporter and wrk are needed: scripts/install-deps.sh installs them)"
  status=1
fi
exit $status
