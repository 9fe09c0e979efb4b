#!/usr/bin/env bash
# `substrated probe --npd`, the node-problem-detector plugin mode (deploy/kubernetes/base/
# npd-substrated-plugin.json): exit 0 healthy, 1 a device failed or hung, 2 unknown, always one
# short line (<= the plugin's max_output_length) and always within the plugin's timeout.
#
# Unknown (2): no socket, SUBSTRATED_SOCKET pointing nowhere, a stale socket file nobody listens
# on, a listener that accepts and never answers, one that answers garbage, a daemon with no verdict
# yet (every probe disabled), a daemon that has stopped.
# Against a running daemon (lavapipe, temp dirs, loopback port chosen free): no verdict -> 2;
# SIGHUP enabling gemm -> 0 (via --socket and via SUBSTRATED_SOCKET); SIGHUP with a drill -> 1
# naming the device; SIGTERM -> 2.
#
# Environment: SUBSTRATED_BIN (default <repo>/build/substrated).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
plugin="$repo/deploy/kubernetes/base/npd-substrated-plugin.json"
source "$here/lib.sh" deploy-npd

require_tools python3 curl
require_substrated

# The plugin's limits: every answer must fit them.
read -r plugin_timeout max_len <<< "$(python3 -c '
import json, re, sys
c = json.load(open(sys.argv[1]))["pluginConfig"]
m = re.fullmatch(r"([0-9.]+)(ms|s)", c["timeout"])
print(float(m.group(1)) * (1e-3 if m.group(2) == "ms" else 1), c.get("max_output_length", 80))' "$plugin")"

work="$(mktemp -d "${TMPDIR:-/tmp}/substrated-npd.XXXXXX")"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do stop_pid "$pid"; done
  if [[ "$failed" -gt 0 && -s "$work/substrated.log" ]]; then tail -n 15 "$work/substrated.log" | sed 's/^/#   /'; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# npd_expect WANT DESCRIPTION [ENV=VALUE...] -- ARGS...: runs `substrated probe --npd ARGS` (under
# `timeout` so a hang cannot stall the test), checks exit code, one line <= max_len, and time.
npd_run() {
  local env=() start
  while [[ "$1" != "--" ]]; do env+=("$1"); shift; done; shift
  start="$(now_ms)"
  out="$(env "${env[@]}" timeout -k 1 20 "$bin" probe --npd "$@" 2>"$work/stderr")" && rc=0 || rc=$?
  took=$(($(now_ms) - start))
}
npd_expect() {
  local want="$1" what="$2"; shift 2
  npd_run "$@"
  local lines; lines="$(printf '%s' "$out" | grep -c '' || true)"
  local limit_ms; limit_ms="$(awk -v t="$plugin_timeout" 'BEGIN { print int(t * 1000) }')"
  if [[ "$rc" -eq "$want" && "$lines" -eq 1 && ${#out} -le "$max_len" && "$took" -lt "$limit_ms" ]]; then
    pass "$what: exit $rc in ${took} ms: $out"
  else
    fail "$what: exit $rc (want $want), ${lines} line(s), ${#out} chars (max $max_len), ${took} ms (plugin timeout ${plugin_timeout}s): $out $(head -c 200 "$work/stderr")"
  fi
}

# ------------------------------------------------------------------------ no daemon: unknown
npd_expect 2 "no daemon (--socket to a missing path)" -- --socket "$work/missing/control.sock"
npd_expect 2 "no daemon (SUBSTRATED_SOCKET to a missing path)" SUBSTRATED_SOCKET="$work/missing.sock" --
python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.close()' "$work/stale.sock"
npd_expect 2 "stale socket file, nobody listening" -- --socket "$work/stale.sock"

# A listener that accepts and never answers, and one that answers garbage.
cat > "$work/fake.py" <<'PY'
import socket, sys, time
path, mode = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX)
s.bind(path)
s.listen(8)
held = []
while True:
    c, _ = s.accept()
    if mode == "silent":
        held.append(c)          # keep it open, say nothing
    else:
        c.recv(65536)
        c.sendall(b"this is not json\n")
        c.close()
PY
python3 "$work/fake.py" "$work/silent.sock" silent & pids+=($!)
python3 "$work/fake.py" "$work/garbage.sock" garbage & pids+=($!)
for _ in $(seq 1 50); do [[ -S "$work/silent.sock" && -S "$work/garbage.sock" ]] && break; sleep 0.1; done
npd_expect 2 "listener that never answers (bounded by the CLI's own timeout)" -- --socket "$work/silent.sock"
npd_expect 2 "listener that answers garbage" -- --socket "$work/garbage.sock"

# ------------------------------------------------------------------------- a running daemon
port="$(free_port)"
mkdir -p "$work/state" "$work/run"
sock="$work/run/control.sock"
write_config() {  # write_config GEMM_ENABLED [DRILL]
  cat > "$work/substrated.yaml.tmp" <<CONF
listen: {address: 127.0.0.1, port: $port}
state_directory: $work/state
runtime_directory: $work/run
max_duty_cycle: 1.0
shutdown_grace_seconds: 5
verdict: {slowdown_ratio: 100}
probes:
  gemm: {enabled: $1, interval_seconds: 2, size: "64", modes: [exact], dtypes: [f32], drill: ${2:-~}}
  attention: {enabled: false}
  memory: {enabled: false}
CONF
  mv "$work/substrated.yaml.tmp" "$work/substrated.yaml"
}
write_config false
"$bin" serve --config "$work/substrated.yaml" >"$work/substrated.log" 2>&1 &
daemon_pid=$!
pids+=("$daemon_pid")
daemon_ready() { [[ -S "$sock" ]] && url_ok "http://127.0.0.1:$port/healthz"; }
wait_until 20 daemon_ready || true  # the socket check below names what is missing
if [[ -S "$sock" ]]; then pass "daemon up, control socket $sock"; else fail "daemon did not create $sock"; finish; exit 1; fi
sleep 1
npd_expect 2 "daemon running, every probe disabled: no verdict yet" -- --socket "$sock"

npd_exits() {  # npd_exits WANT ARGS...: one --npd run exits WANT
  local want="$1"; shift
  npd_run -- "$@"
  [[ "$rc" -eq "$want" ]]
}
write_config true
kill -HUP "$daemon_pid"
if wait_until 30 npd_exits 0 --socket "$sock"; then npd_expect 0 "daemon healthy after SIGHUP enabled gemm" -- --socket "$sock"; else
  fail "daemon never healthy after enabling gemm: exit $rc: $out"; fi
npd_expect 0 "daemon healthy, socket from SUBSTRATED_SOCKET" SUBSTRATED_SOCKET="$sock" --

write_config true '"bit=30,row=0,col=0"'
kill -HUP "$daemon_pid"
if wait_until 30 npd_exits 1 --socket "$sock"; then npd_expect 1 "drill failed the device" -- --socket "$sock"; else
  fail "--npd never exit 1 with the drill: exit $rc: $out"; fi
if grep -q 'vulkan[0-9]* failed' <<< "$out"; then pass "message names the failed device: $out"; else fail "message does not name the device: $out"; fi

kill -TERM "$daemon_pid"
for _ in $(seq 1 100); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
wait "$daemon_pid" 2>/dev/null && drc=0 || drc=$?
if [[ "$drc" -eq 0 ]]; then pass "daemon exited 0 on SIGTERM"; else fail "daemon exited $drc on SIGTERM"; fi
npd_expect 2 "daemon stopped" -- --socket "$sock"

finish
