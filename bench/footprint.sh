#!/usr/bin/env bash
# Footprint of `substrated serve` beside prometheus-node-exporter, same machine, same run:
# the daemon's RSS between rounds (sampled while no worker process runs) after warm-up, idle CPU
# over a quiet window, /metrics scrape latency under concurrent scrapes (wrk, both exporters one
# after the other), then a compressed schedule (every probe every second, duty-cycle cap
# lifted): scrape latency while rounds run, and the daemon's RSS between rounds after many probe
# cycles. Device work happens in worker processes; bench_rounds measures those.
#
#   bash bench/footprint.sh [BUILD_DIR] [--idle S] [--scrape S] [--compressed S] [--connections N] [--quick]
#
# --quick (smoke only): small probe sizes and no duty-cycle cap.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build-bench}
[ $# -gt 0 ] && shift
idle=60
quick=0
scrape=15
compressed=300
connections=8
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1; shift ;;
    --idle) idle=$2; shift 2 ;;
    --scrape) scrape=$2; shift 2 ;;
    --compressed) compressed=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    *) echo "usage: footprint.sh [BUILD_DIR] [--idle S] [--scrape S] [--compressed S] [--connections N] [--quick]" >&2; exit 2 ;;
  esac
done
source "$here/lib.sh"
bin=$build/substrated
ne=$(command -v prometheus-node-exporter || true)
[ -x "$bin" ] || bench_die "no $bin (build first)"
[ -n "$ne" ] || bench_die "prometheus-node-exporter is not installed (apt-get install prometheus-node-exporter)"
command -v wrk >/dev/null || bench_die "wrk is not installed (apt-get install wrk)"

sport=$(free_port)
nport=$(free_port)
while [ "$nport" = "$sport" ]; do nport=$(free_port); done
config=$bench_tmp/substrated.yaml
bench_config "$config" "$sport"
[ $quick = 1 ] && bench_quick_config "$config"

echo "## Footprint beside prometheus-node-exporter"
echo
bench_machine
echo "- command: \`bash bench/footprint.sh $build --idle $idle --scrape $scrape --compressed $compressed --connections $connections$([ $quick = 1 ] && echo " --quick")\`"
echo "- node_exporter: $("$ne" --version 2>&1 | head -1)"
echo "- wrk: $(dpkg-query -W -f='${Version}' wrk 2>/dev/null), $connections connections, 2 threads, $scrape s per endpoint"
echo "- substrated: config/substrated.yaml defaults, listen 127.0.0.1:$sport, private state/runtime dirs"

bench_start_daemon "$bin" "$config" "$bench_tmp/daemon.log"
spid=$bench_daemon_pid
"$ne" --web.listen-address="127.0.0.1:$nport" > "$bench_tmp/node_exporter.log" 2>&1 &
npid=$!
bench_pids+=("$npid")
bench_wait_runs "$sport" 600 gemm attention memory || { tail -20 "$bench_tmp/daemon.log" >&2; bench_die "daemon did not warm up"; }
wait_until 10 url_ok "http://127.0.0.1:$nport/metrics" || bench_die "node_exporter did not serve /metrics"
# One scrape each so both have served /metrics before the figures.
curl -sf "http://127.0.0.1:$sport/metrics" >/dev/null
curl -sf "http://127.0.0.1:$nport/metrics" >/dev/null
sleep 1
read -r s_rss s_anon s_file < <(bench_rss_between_rounds "$spid")
read -r n_rss n_anon n_file < <(bench_rss "$npid")
s_bytes=$(curl -sf "http://127.0.0.1:$sport/metrics" | wc -c)
n_bytes=$(curl -sf "http://127.0.0.1:$nport/metrics" | wc -c)

# Idle CPU: both processes over the same quiet window (no scrapes; the next scheduled probe is
# minutes away after warm-up).
s_cpu0=$(bench_cpu_seconds "$spid"); n_cpu0=$(bench_cpu_seconds "$npid"); t0=$(bench_now)
sleep "$idle"
s_cpu1=$(bench_cpu_seconds "$spid"); n_cpu1=$(bench_cpu_seconds "$npid"); t1=$(bench_now)
s_idle=$(bench_calc "100 * ($s_cpu1 - $s_cpu0) / ($t1 - $t0)")
n_idle=$(bench_calc "100 * ($n_cpu1 - $n_cpu0) / ($t1 - $t0)")
idle_load=$(cut -d' ' -f1-3 /proc/loadavg)

# wrk --latency prints "50%  1.23ms" ... lines; normalise to milliseconds.
wrk_ms() {
  awk -v q="$2" '$1 == q {v = $2; if (v ~ /us$/) {sub(/us$/, "", v); v /= 1000} else if (v ~ /ms$/) {sub(/ms$/, "", v)} else if (v ~ /s$/) {sub(/s$/, "", v); v *= 1000} printf "%.3f", v}' "$1"
}
scrape_run() {
  wrk -t2 -c"$connections" -d"${scrape}s" --latency "http://127.0.0.1:$1/metrics" > "$2" 2>&1
}
scrape_run "$sport" "$bench_tmp/wrk-s.txt"
s_load=$(cut -d' ' -f1-3 /proc/loadavg)
scrape_run "$nport" "$bench_tmp/wrk-n.txt"
n_load=$(cut -d' ' -f1-3 /proc/loadavg)
rps() { awk '/^Requests\/sec/ {print $2}' "$1"; }
errors() { awk '/Non-2xx|Socket errors/ {e = e $0 "; "} END {print (e == "" ? "none" : e)}' "$1"; }
read -r s_rss2 _ _ < <(bench_rss "$spid")
read -r n_rss2 _ _ < <(bench_rss "$npid")

# Compressed schedule: every probe every second at default sizes, duty-cycle cap lifted.
runs0=$(bench_metrics "$sport" | awk '/^substrate_probe_runs_total\{/ {s += $NF} END {print s + 0}')
cp "$config" "$bench_tmp/before-compressed.yaml"
sed -i -e 's/^max_duty_cycle: .*/max_duty_cycle: 1/' -e 's/^    interval_seconds: .*/    interval_seconds: 1/' "$config"
kill -HUP "$spid"
# Scrapes while rounds run: workers start every second or so from here on.
sleep 2
scrape_run "$sport" "$bench_tmp/wrk-s-rounds.txt"
rounds_load=$(cut -d' ' -f1-3 /proc/loadavg)
sleep "$compressed"
runs1=$(bench_metrics "$sport" | awk '/^substrate_probe_runs_total\{/ {s += $NF} END {print s + 0}')
per_probe=$(bench_metrics "$sport" | awk '/^substrate_probe_runs_total\{/ {match($0, /probe="[a-z]*"/); printf "%s=%s ", substr($0, RSTART + 7, RLENGTH - 8), $NF}')
# Back to the shipped schedule, so rounds stop and the daemon can be sampled between them.
cp "$bench_tmp/before-compressed.yaml" "$config"
kill -HUP "$spid"
sleep 3
read -r s_rss3 s_anon3 s_file3 < <(bench_rss_between_rounds "$spid" 300)
read -r n_rss3 _ _ < <(bench_rss "$npid")
compressed_load=$(cut -d' ' -f1-3 /proc/loadavg)
kill -0 "$spid" || bench_die "substrated died during the compressed schedule"

# substrated without its device: the same configuration with no Vulkan driver to load
# (VK_ICD_FILENAMES names no file), so no device is found and no probe runs. What remains is the
# daemon's own footprint (HTTP, control socket, loop, state), without lavapipe's LLVM.
bare_port=$(free_port)
bench_config "$bench_tmp/bare.yaml" "$bare_port" "s|^state_directory: .*|state_directory: $bench_tmp/bare-state|" \
  "s|^runtime_directory: .*|runtime_directory: $bench_tmp/bare-run|"
VK_ICD_FILENAMES=$bench_tmp/no-driver.json "$bin" serve --config "$bench_tmp/bare.yaml" > "$bench_tmp/bare.log" 2>&1 &
bare_pid=$!
bench_pids+=("$bare_pid")
wait_until 20 url_ok "http://127.0.0.1:$bare_port/metrics" || bench_die "substrated without a driver did not serve /metrics"
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$bare_port/metrics" > /dev/null; done
read -r b_rss b_anon b_file < <(bench_rss "$bare_pid")

mib() { bench_calc "$1 / 1024"; }
verdict() { awk -v a="$1" -v b="$2" 'BEGIN { print (a <= b ? "met" : "missed") }'; }
s_p50=$(wrk_ms "$bench_tmp/wrk-s.txt" 50%); s_p99=$(wrk_ms "$bench_tmp/wrk-s.txt" 99%)
r_p50=$(wrk_ms "$bench_tmp/wrk-s-rounds.txt" 50%); r_p99=$(wrk_ms "$bench_tmp/wrk-s-rounds.txt" 99%)
n_p50=$(wrk_ms "$bench_tmp/wrk-n.txt" 50%); n_p99=$(wrk_ms "$bench_tmp/wrk-n.txt" 99%)
echo
echo "| figure | substrated | node_exporter | target | load (1/5/15 min) |"
echo "|---|---|---|---|---|"
echo "| daemon RSS between rounds after warm-up (anon + file) | $(mib "$s_rss") MiB ($(mib "$s_anon") + $(mib "$s_file")) | $(mib "$n_rss") MiB ($(mib "$n_anon") + $(mib "$n_file")) | substrated <= node_exporter: $(verdict "$s_rss" "$n_rss") | |"
echo "| /metrics body | $s_bytes bytes | $n_bytes bytes | | |"
echo "| idle CPU over ${idle} s | ${s_idle}% | ${n_idle}% | | $idle_load |"
echo "| scrape p50 ($connections concurrent) | ${s_p50} ms | ${n_p50} ms | | |"
echo "| scrape p99 ($connections concurrent) | ${s_p99} ms | ${n_p99} ms | substrated <= node_exporter: $(verdict "$s_p99" "$n_p99") | $s_load / $n_load |"
echo "| scrapes/s | $(rps "$bench_tmp/wrk-s.txt") | $(rps "$bench_tmp/wrk-n.txt") | | |"
echo "| scrape p50 / p99 while rounds run (compressed schedule, $connections concurrent) | ${r_p50} / ${r_p99} ms | ${n_p50} / ${n_p99} ms (idle host) | substrated p99 <= node_exporter: $(verdict "$r_p99" "$n_p99") | $rounds_load |"
echo "| RSS after the scrapes | $(mib "$s_rss2") MiB | $(mib "$n_rss2") MiB | | |"
echo "| daemon RSS between rounds after compressed schedule (${compressed} s, $((runs1 - runs0)) probe runs: $per_probe) | $(mib "$s_rss3") MiB ($(mib "$s_anon3") + $(mib "$s_file3")) | $(mib "$n_rss3") MiB | substrated <= node_exporter: $(verdict "$s_rss3" "$n_rss3") | $compressed_load |"
echo "| RSS without a device (no Vulkan driver; after 100 scrapes) | $(mib "$b_rss") MiB ($(mib "$b_anon") + $(mib "$b_file")) | $(mib "$n_rss") MiB (after warm-up) | substrated <= node_exporter: $(verdict "$b_rss" "$n_rss") | |"
echo
echo "wrk socket errors / non-2xx: substrated: $(errors "$bench_tmp/wrk-s.txt"), during rounds: $(errors "$bench_tmp/wrk-s-rounds.txt"); node_exporter: $(errors "$bench_tmp/wrk-n.txt")"
