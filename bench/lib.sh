# shellcheck shell=bash
# Shared shell helpers for the daemon-level benchmarks (sourced, not run).
# Everything binds to 127.0.0.1 on free ports, lives in one temporary directory, and is stopped
# by PID on exit.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

bench_pids=()
bench_tmp=$(mktemp -d "${TMPDIR:-/tmp}/sdbench.XXXXXX")

bench_cleanup() {
  local pid
  for pid in "${bench_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${bench_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$bench_tmp"
}
trap bench_cleanup EXIT

bench_die() {
  echo "bench: $*" >&2
  exit 2
}

bench_now() { date +%s.%N; }

bench_machine() {
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- machine: nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
  echo "- lavapipe: mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || echo unknown)"
  echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# bench_config OUT PORT [sed expressions...]: the shipped config with loopback, the given port
# and private state/runtime directories; extra sed expressions edit it further.
bench_config() {
  local out=$1 port=$2
  shift 2
  local repo
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  local args=(-e "s|^  address: 0.0.0.0|  address: 127.0.0.1|" -e "s|^  port: 19400|  port: $port|"
              -e "s|^state_directory: .*|state_directory: $bench_tmp/state|"
              -e "s|^runtime_directory: .*|runtime_directory: $bench_tmp/run|")
  local e
  for e in "$@"; do args+=(-e "$e"); done
  sed "${args[@]}" "$repo/config/substrated.yaml" > "$out"
}

# bench_start_daemon BIN CONFIG LOG: starts `substrated serve`; sets bench_daemon_pid.
bench_start_daemon() {
  SUBSTRATED_SOCKET="$bench_tmp/run/control.sock" "$1" serve --config "$2" > "$3" 2>&1 &
  bench_daemon_pid=$!
  bench_pids+=("$bench_daemon_pid")
}

bench_metrics() { curl -sf --max-time 5 "http://127.0.0.1:$1/metrics"; }

# bench_metric PORT NAME LABEL_REGEX: the value of the first sample matching, or empty.
bench_metric() {
  { bench_metrics "$1" || true; } | { grep -E "^$2\{[^}]*$3[^}]*\} " || true; } | awk 'NR == 1 {print $NF}'
}

# bench_wait_runs PORT TIMEOUT PROBES...: waits until every probe has at least one run.
bench_wait_runs() {
  local port=$1 timeout=$2
  shift 2
  local deadline probe value ready
  deadline=$(( $(date +%s) + timeout ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    ready=1
    for probe in "$@"; do
      value=$(bench_metric "$port" substrate_probe_runs_total "probe=\"$probe\"")
      if [ -z "$value" ] || [ "${value%.*}" -lt 1 ]; then ready=0; fi
    done
    [ $ready = 1 ] && return 0
    kill -0 "$bench_daemon_pid" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

# Resident memory of a PID in KiB: "rss anon file".
bench_rss() {
  awk '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} /^RssFile/ {f=$2} END {print r, a, f}' "/proc/$1/status"
}

# Whether a PID has no live child (the daemon between rounds: no worker process running).
bench_no_children() {
  local pid=$1 child
  for child in /proc/[0-9]*/stat; do
    awk -v p="$pid" '{sub(/.*\) /, ""); if ($2 == p && $1 != "Z") found = 1} END {exit found ? 0 : 1}' "$child" 2>/dev/null &&
      return 1
  done
  return 0
}

# RSS of a PID sampled when it has no live child ("rss anon file", KiB), within `limit` seconds.
bench_rss_between_rounds() {
  local pid=$1 limit=${2:-60}
  wait_until "$limit" bench_no_children "$pid" || bench_die "PID $pid always had a worker running"
  bench_rss "$pid"
}

# CPU seconds (user + system) a PID has used.
bench_cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f\n", ($14 + $15) / hz}' "/proc/$1/stat"
}

# Floating-point arithmetic: bench_calc "1.5 + 2" prints 3.500.
bench_calc() { awk "BEGIN { printf \"%.3f\", $* }"; }

# sed-free edit for the smoke: small per-probe sizes (gemm, attention, memory in file order) and
# no duty-cycle cap, so a daemon warms up in seconds even under sanitizers.
bench_quick_config() {
  awk 'BEGIN {n = 0; split("\"32\" \"16x1x16\" \"64K\"", s, " ")}
       /^    size: ~/ {n++; print "    size: " s[n]; next}
       /^max_duty_cycle:/ {print "max_duty_cycle: 1"; next} {print}' "$1" > "$1.quick" && mv "$1.quick" "$1"
}
