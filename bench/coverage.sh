#!/usr/bin/env bash
# Checked work per hour at the shipped schedule and duty cycle, one pass per round (coverage off,
# `coverage.duty_share: 0`) against the shipped coverage, side by side in one run, and the
# probability of seeing a fault that corrupts one kernel run in N within an hour.
#
#   bash bench/coverage.sh [BUILD_DIR] [--seconds S] [--compress K] [--quick]
#
# Method: `substrated serve` with the shipped configuration, time compressed K times (every
# probe interval divided by K, max_duty_cycle multiplied by K: each round repeats exactly as
# long as at the shipped settings, and rounds come K times as often). After every probe's first
# round, the counters substrate_checked_runs_total, substrate_checked_flops_total,
# substrate_checked_bytes_total and substrate_probe_device_seconds_total are read, again S
# seconds later, and the difference is scaled to one hour at the shipped settings
# (x 3600 / (S x K)). The two daemons run one after the other on the same device.
# Detection: a fault that corrupts each checked run independently with probability 1/N is seen
# within an hour with probability 1 - (1 - 1/N)^R, R the checked runs per hour; every checked
# run compares all its output with the golden and the first pass's fingerprint, so a corrupted
# run is a seen one (bench/detection.cpp measures that per bit).
#
# --quick (smoke only): small sizes, S 6, K 60, so it finishes in seconds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build-bench}
[ $# -gt 0 ] && shift
seconds=120
compress=10
quick=0
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --compress) compress=$2; shift 2 ;;
    --quick) quick=1; seconds=6; compress=60; shift ;;
    *) echo "usage: coverage.sh [BUILD_DIR] [--seconds S] [--compress K] [--quick]" >&2; exit 2 ;;
  esac
done
source "$here/lib.sh"
bin=$build/substrated
[ -x "$bin" ] || bench_die "no $bin (build first)"
probes=(gemm attention memory)

# One daemon with coverage.duty_share SHARE; prints "probe runs flops bytes device_seconds" per
# probe, each the increase over the measured window.
measure() {
  local share=$1 port config log
  port=$(free_port)
  config=$bench_tmp/coverage-$share.yaml
  log=$bench_tmp/coverage-$share.log
  bench_config "$config" "$port" "s|^  duty_share: .*|  duty_share: $share|"
  [ $quick = 1 ] && bench_quick_config "$config"
  awk -v k="$compress" '
    /^    interval_seconds: / {print "    interval_seconds: " $2 / k; next}
    /^max_duty_cycle: / {d = $2 * k; if (d > 1) d = 1; print "max_duty_cycle: " d; next} {print}' \
    "$config" > "$config.k" && mv "$config.k" "$config"
  rm -rf "$bench_tmp/state" "$bench_tmp/run"
  bench_start_daemon "$bin" "$config" "$log"
  bench_wait_runs "$port" 300 "${probes[@]}" || { tail -n 20 "$log" >&2; bench_die "duty_share $share: not every probe ran"; }
  local after probe metric
  local -A before=()
  for probe in "${probes[@]}"; do
    for metric in checked_runs checked_flops checked_bytes probe_device_seconds; do
      before[$probe.$metric]=$(bench_metric "$port" "substrate_${metric}_total" "probe=\"$probe\"")
    done
  done
  sleep "$seconds"
  for probe in "${probes[@]}"; do
    local line=$probe
    for metric in checked_runs checked_flops checked_bytes probe_device_seconds; do
      after=$(bench_metric "$port" "substrate_${metric}_total" "probe=\"$probe\"")
      line+=" $(bench_calc "${after:-0} - ${before[$probe.$metric]:-0}")"
    done
    echo "$line"
  done
  kill "$bench_daemon_pid"
  wait "$bench_daemon_pid" 2>/dev/null || true
}

off=$(measure 0)
on=$(measure "$(awk '/^  duty_share:/ {print $2}' "$here/../config/substrated.yaml")")

echo "## Checked work per hour: one pass per round vs coverage"
echo
bench_machine
echo "- command: bash bench/coverage.sh $build --seconds $seconds --compress $compress$([ $quick = 1 ] && echo ' --quick')"
echo "- device: $("$bin" devices 2>/dev/null | awk '/^  name:/ {sub(/^  name: */, ""); print; exit}' || true)"
echo "- shipped schedule: $(awk '/^max_duty_cycle:/ {print "max_duty_cycle " $2}' "$here/../config/substrated.yaml"), coverage $(awk '/^  duty_share:/ {s = $2} /^  max_round_seconds:/ {m = $2} END {print "duty_share " s ", max_round_seconds " m}' "$here/../config/substrated.yaml"); time compressed ${compress}x, ${seconds} s measured per daemon after every probe's first round"
echo
echo "| probe | checked runs/h off | checked runs/h on | ratio | GFLOP/h off | GFLOP/h on | GiB tested/h off | GiB tested/h on | duty used off | duty used on |"
echo "|---|---|---|---|---|---|---|---|---|---|"
scale=$(bench_calc "3600 / ($seconds * $compress)")
total_off=0 total_on=0 duty_off=0 duty_on=0
for probe in "${probes[@]}"; do
  read -r _ r0 f0 b0 d0 <<< "$(grep "^$probe " <<< "$off")"
  read -r _ r1 f1 b1 d1 <<< "$(grep "^$probe " <<< "$on")"
  ratio=$(awk -v a="$r0" -v b="$r1" 'BEGIN { if (a > 0) printf "%.1f", b / a; else print "-" }')
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s%% | %s%% |\n' "$probe" \
    "$(awk "BEGIN { printf \"%.0f\", $r0 * $scale }")" "$(awk "BEGIN { printf \"%.0f\", $r1 * $scale }")" "$ratio" \
    "$(bench_calc "$f0 * $scale / 1e9")" "$(bench_calc "$f1 * $scale / 1e9")" \
    "$(bench_calc "$b0 * $scale / 1073741824")" "$(bench_calc "$b1 * $scale / 1073741824")" \
    "$(bench_calc "100 * $d0 / ($seconds * $compress)")" "$(bench_calc "100 * $d1 / ($seconds * $compress)")"
  total_off=$(bench_calc "$total_off + $r0 * $scale")
  total_on=$(bench_calc "$total_on + $r1 * $scale")
  duty_off=$(bench_calc "$duty_off + 100 * $d0 / ($seconds * $compress)")
  duty_on=$(bench_calc "$duty_on + 100 * $d1 / ($seconds * $compress)")
done
echo "| **device** | ${total_off%.*} | ${total_on%.*} | $(awk -v a="$total_off" -v b="$total_on" 'BEGIN { if (a > 0) printf "%.1f", b / a; else print "-" }') | | | | | $duty_off% | $duty_on% |"
echo
echo "### A fault that corrupts one checked run in N: probability of seeing it within an hour"
echo
echo "| N | off: P(seen in 1 h) | on: P(seen in 1 h) | off: expected hours to see | on: expected hours to see |"
echo "|---|---|---|---|---|"
for n in 100 1000 10000 100000 1000000; do
  awk -v n="$n" -v a="$total_off" -v b="$total_on" 'BEGIN {
    pa = 1 - exp(a * log(1 - 1 / n)); pb = 1 - exp(b * log(1 - 1 / n));
    printf "| %d | %.4f | %.4f | %s | %s |\n", n, pa, pb, (a > 0 ? sprintf("%.1f", n / a) : "-"), (b > 0 ? sprintf("%.1f", n / b) : "-") }'
done
echo
echo "measured"
