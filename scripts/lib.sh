# shellcheck shell=bash
# Shell helpers shared by the benchmarks (bench/lib.sh) and the deploy checks (tests/deploy/lib.sh):
# free loopback ports, bounded waits and stopping what a script started. Sourced, not run; it only
# defines functions.

# A TCP port on 127.0.0.1 nobody listens on now (the kernel picks it).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# wait_until SECONDS CMD...: runs CMD every 0.5 s until it succeeds (0) or time is up (1).
wait_until() {
  local limit=$(($1 * 1000)) start
  shift
  start="$(now_ms)"
  until "$@"; do
    (($(now_ms) - start > limit)) && return 1
    sleep 0.5
  done
}

# url_ok URL: the URL answers with a 2xx status within 2 s.
url_ok() { curl -fsS -m 2 "$1" >/dev/null 2>&1; }

# stop_pid PID [GRACE_SECONDS]: SIGTERM, up to GRACE_SECONDS (10) to exit, then SIGKILL; reaps it.
# An empty PID does nothing, so cleanup can stop what may not have been started.
stop_pid() {
  local pid="$1" grace="${2:-10}"
  [[ -n "$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((grace * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
