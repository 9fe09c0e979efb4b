#!/usr/bin/env bash
# Time to detect through the daemon: start `substrated serve` with the shipped configuration
# (only the listen address/port, state and runtime directories and log level changed), wait until
# every probe has run once, then configure a gemm drill and send SIGHUP; poll /metrics until
# substrate_device_health{state="failed"} is 1.
#
#   bash bench/ttd.sh [BUILD_DIR] [--settle SECONDS] [--poll SECONDS] [--duty RATIO] [--quick]
#
# --duty overrides max_duty_cycle (1 = the budget never defers: the bound without the budget).
#
# --quick (smoke only): small sizes and no duty-cycle cap, so it finishes in seconds.
#
# --settle waits this long after warm-up before the drill (0 = at once), so the duty-cycle budget
# spent by the start-up runs can accrue again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build-bench}
[ $# -gt 0 ] && shift
settle=0
quick=0
duty=
poll=0.05
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1; shift ;;
    --duty) duty=$2; shift 2 ;;
    --settle) settle=$2; shift 2 ;;
    --poll) poll=$2; shift 2 ;;
    *) echo "usage: ttd.sh [BUILD_DIR] [--settle S] [--poll S] [--duty R] [--quick]" >&2; exit 2 ;;
  esac
done
source "$here/lib.sh"
bin=$build/substrated
[ -x "$bin" ] || bench_die "no $bin (build first)"

port=$(free_port)
config=$bench_tmp/substrated.yaml
log=$bench_tmp/daemon.log
bench_config "$config" "$port" "s|^log_level: .*|log_level: debug|"
[ $quick = 1 ] && bench_quick_config "$config"
if [ -n "$duty" ]; then sed -i "s/^max_duty_cycle: .*/max_duty_cycle: $duty/" "$config"; fi
echo "## Time to detect through the daemon"
echo
bench_machine
echo "- command: \`bash bench/ttd.sh $build --settle $settle --poll $poll$([ $quick = 1 ] && echo " --quick")$([ -n "$duty" ] && echo " --duty $duty")\`"
echo "- config: config/substrated.yaml with listen 127.0.0.1:$port, private state/runtime dirs, log_level debug$([ -n "$duty" ] && echo ", max_duty_cycle $duty")$([ $quick = 1 ] && echo ", quick sizes and max_duty_cycle 1")"
started=$(bench_now)
bench_start_daemon "$bin" "$config" "$log"
bench_wait_runs "$port" 600 gemm attention memory || { tail -20 "$log" >&2; bench_die "daemon did not finish its first runs"; }
warm=$(bench_now)
health=$(bench_metrics "$port" | grep -E '^substrate_device_health\{[^}]*\} 1' | sed 's/.*state="\([a-z]*\)".*/\1/' | head -1)
echo "- warm-up (first run of every probe): $(printf '%.1f' "$(bench_calc "$warm - $started")") s; health before the drill: $health"
if [ "$settle" != 0 ]; then sleep "$settle"; fi

# The drill: the gemm entry's `drill: ~` (the first one in the file) becomes a real injection.
awk 'BEGIN {done = 0} /^    drill: ~/ && !done {print "    drill: \"bit=30,row=3,col=5\""; done = 1; next} {print}' \
  "$config" > "$config.new" && mv "$config.new" "$config"
runs_before=$(bench_metric "$port" substrate_probe_runs_total 'probe="gemm"')
t0=$(bench_now)
kill -HUP "$bench_daemon_pid"
detected=""
deadline=$(( $(date +%s) + 1200 ))
while [ "$(date +%s)" -lt "$deadline" ]; do
  if bench_metrics "$port" | grep -qE '^substrate_device_health\{[^}]*state="failed"[^}]*\} 1'; then
    detected=$(bench_now)
    break
  fi
  sleep "$poll"
done
[ -n "$detected" ] || { tail -30 "$log" >&2; bench_die "no failed verdict within 1200 s"; }
measured=$(bench_calc "$detected - $t0")
wall=$(bench_metric "$port" substrate_probe_wall_seconds 'probe="gemm"')
device=$(bench_metric "$port" substrate_probe_duration_seconds 'probe="gemm"')
# Every deferral of the gemm run after the reload (the budget can defer it more than once).
deferred=$(awk '/reload: configuration/ {d = 0; seen = 1} seen && /gemm: duty-cycle budget exhausted, deferred/ {
  for (i = 1; i <= NF; ++i) if ($i == "deferred") d += $(i + 1)} END {print d + 0}' "$log")
# Bound: after SIGHUP the daemon re-arms each probe within min(2 s, interval); the drilled run
# then takes the gemm probe's wall time; a duty-cycle deferral adds its wait; plus one poll.
bound=$(bench_calc "2 + ${wall:-0} + ${deferred:-0} + $poll")
echo "- gemm runs before the drill: $runs_before; drilled gemm run: wall ${wall} s, kernel device time ${device} s"
echo "- duty-cycle deferrals logged for gemm after the reload, summed: ${deferred} s"
echo
echo "| measured (SIGHUP -> failed on /metrics) | bound: re-arm <= 2 s + probe wall + deferral + poll | load at end |"
echo "|---|---|---|"
printf '| %.2f s | %.2f s | %s |\n' "$measured" "$bound" "$(cut -d' ' -f1-3 /proc/loadavg)"
echo
{ grep -E 'reload|-> failed|deferred' "$log" || true; } | sed 's/^/    /' | tail -8
