#!/usr/bin/env bash
# The end-to-end drill with real servers, on loopback ports chosen free at run time:
#
#   substrated serve (lavapipe, gemm every 2 s at 64x64x64 exact f32, memory 4M once, attention
#     off, max_duty_cycle 1.0, slowdown verdict off, state and runtime dirs in a temp dir)
#     <- a real Prometheus (Debian's `prometheus`, 1 s scrape and evaluation) with the shipped rules
#     -> Alertmanager (Debian's `prometheus-alertmanager`) when installed, with the shipped
#        inhibition rules (deploy/alertmanager/substrated-inhibit.yml); skipped otherwise.
#
# Phase 1 (clean): SubstrateNumericalFault is not firing; `promtool check metrics` accepts a real
#   scrape; tests/deploy/grafana_test.sh passes with that scrape; `substrated probe --npd` exits 0;
#   `substrated status` shows the device healthy.
# Phase 2 (drill): the config gets `drill: "bit=30,row=0,col=0"` for gemm and the daemon SIGHUP
#   (the operator's path, docs/operations.md#the-drill); Prometheus's /api/v1/alerts must report
#   SubstrateNumericalFault firing within E2E_TIMEOUT s (time to detect printed); `--npd` exits 1
#   and `status` shows the device failed. In Alertmanager the drill's SubstrateNumericalFault and
#   SubstrateDeviceFailed are inhibited (no page) while SubstrateDrillActive and
#   SubstrateDrillDetected are active.
# Phase 3 (drill removed, SIGHUP): the last-run signal clears and SubstrateDrillActive resolves.
#   The shipped SubstrateNumericalFault also fires on any golden_mismatch failure in the last 30
#   minutes (substrate:probe_failures:new30m), so by design it stays firing for 30 minutes after
#   the drill's last failure: the test asserts it is held only by that branch, and proves the
#   resolution path with a copy of the same two rules whose window is scaled to E2E_WINDOW
#   (SubstrateNumericalFaultE2EWindow), which must resolve. The device recovers (--npd exits 0)
#   after verdict.passes_to_recover clean runs.
# The stale rule: SubstrateProbeStale reads each probe's interval and deferral reason from the
#   daemon (substrate_probe_interval_seconds, substrate_probe_deferred); a copy without its `for:`
#   (SubstrateProbeStaleE2E) is inactive while gemm passes (phase 1), fires once the drill has kept
#   gemm from passing for 3 of its 2 s intervals (phase 2) and resolves when it passes (phase 3).
# Phase 4: SIGTERM -> the daemon exits 0, state.json is in the state directory, the control socket
#   is gone.
#
# Everything started here is stopped on exit, whatever happens (trap EXIT).
# Environment: SUBSTRATED_BIN (default <repo>/build/substrated), E2E_TIMEOUT (bounded waits, 60),
# E2E_WINDOW (the scaled window, 20s), E2E_KEEP=1 keeps the work directory for inspection.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
rules="$repo/deploy/prometheus/substrated-rules.yml"
timeout_s="${E2E_TIMEOUT:-60}"
window="${E2E_WINDOW:-20s}"
source "$here/lib.sh" deploy-prometheus-e2e
note() { echo "# $*"; }

require_tools prometheus promtool python3 curl
require_substrated
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
alertmanager="$(command -v prometheus-alertmanager || command -v alertmanager || true)"

work="$(mktemp -d "${TMPDIR:-/tmp}/substrated-e2e.XXXXXX")"
daemon_pid="" prom_pid="" am_pid=""
cleanup() {
  local rc=$?
  stop_pid "$daemon_pid"; stop_pid "$prom_pid"; stop_pid "$am_pid"
  if [[ "$failed" -gt 0 || "$rc" -ne 0 ]]; then
    for log in substrated prometheus alertmanager; do
      [[ -s "$work/$log.log" ]] || continue
      echo "# --- last lines of $log.log"; tail -n 15 "$work/$log.log" | sed 's/^/#   /'
    done
  fi
  if [[ "${E2E_KEEP:-0}" == 1 ]]; then echo "# kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

secs() { awk -v ms="$1" 'BEGIN { printf "%.1f", ms / 1000 }'; }

daemon_port="$(free_port)"
prom_port="$(free_port)"
am_port="$(free_port)"
mkdir -p "$work/state" "$work/run" "$work/prom-data" "$work/am-data"
sock="$work/run/control.sock"
prom="http://127.0.0.1:$prom_port"

write_config() {  # write_config [DRILL]: atomically, so a SIGHUP never reads half a file
  local drill="${1:-}"
  cat > "$work/substrated.yaml.tmp" <<CONF
listen:
  address: 127.0.0.1
  port: $daemon_port
state_directory: $work/state
runtime_directory: $work/run
max_duty_cycle: 1.0
jitter_ratio: 0.1
shutdown_grace_seconds: 5
# lavapipe's device time for a 64^3 GEMM varies 10-20x on a loaded host: with the default 1.5 the
# slowdown verdict (which counts toward failed) would flap the device; correctness is what is tested.
verdict:
  slowdown_ratio: 100
probes:
  gemm:
    interval_seconds: 2
    timeout_seconds: 30
    size: "64"
    modes: [exact]
    dtypes: [f32]
    drill: ${drill:-~}
  attention:
    enabled: false
  memory:
    # one small run at start, so the memory metrics the dashboard uses are exported
    interval_seconds: 3600
    size: "4M"
CONF
  mv "$work/substrated.yaml.tmp" "$work/substrated.yaml"
}

# Prometheus API helper, one process per poll (python start-up is slow on a loaded CI host).
#   snap [EXPR...] prints
#     rules <count> <alerting count> <names with evaluation errors, or ->
#     alert <name> <firing|pending|inactive> <activeAt of the earliest firing alert, epoch ms, or ->
#     query <i> <values of EXPR i, or ->
#   am URL NAME prints 1 when Alertmanager holds an active alert NAME, else 0.
#   amstate URL NAME... prints NAME=<active|suppressed|-> for each NAME.
cat > "$work/prom.py" <<'PY'
import datetime, json, re, sys, urllib.parse, urllib.request
base, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
def get(url):
    with urllib.request.urlopen(url, timeout=3) as r:
        return json.load(r)
def epoch_ms(ts):  # RFC 3339 with up to 9 fractional digits
    m = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", ts)
    t = datetime.datetime.fromisoformat(m.group(1) + (m.group(3).replace("Z", "+00:00")))
    return int(t.timestamp() * 1000 + int(((m.group(2) or "0") + "000")[:3]))
try:
    if cmd == "snap":
        rules = [r for g in get(base + "/api/v1/rules")["data"]["groups"] for r in g["rules"]]
        bad = [r["name"] for r in rules if r.get("health") == "err"]
        print("rules", len(rules), len([r for r in rules if r["type"] == "alerting"]), ",".join(bad) or "-")
        for r in rules:
            if r["type"] != "alerting":
                continue
            alerts = r.get("alerts") or []
            firing = [epoch_ms(a["activeAt"]) for a in alerts if a["state"] == "firing"]
            state = "firing" if firing else "pending" if alerts else "inactive"
            print("alert", r["name"], state, min(firing) if firing else "-")
        for i, e in enumerate(args):
            res = get(base + "/api/v1/query?query=" + urllib.parse.quote(e))["data"]["result"]
            print("query", i, " ".join(x["value"][1] for x in res) or "-")
    elif cmd == "am":
        print(int(any(a["labels"].get("alertname") == args[1] for a in get(args[0] + "/api/v2/alerts?active=true"))))
    elif cmd == "amstate":
        st = {a["labels"].get("alertname"): a["status"]["state"] for a in get(args[0] + "/api/v2/alerts")}
        print(" ".join("%s=%s" % (n, st.get(n, "-")) for n in args[1:]))
except Exception as e:
    print("error", " ".join(str(e).split()))
PY
S=""
snap() { S="$(python3 "$work/prom.py" "$prom" snap "$@")"; }
state() { awk -v n="$1" '$1 == "alert" && $2 == n { print $3 }' <<< "$S"; }
active_at() { awk -v n="$1" '$1 == "alert" && $2 == n { print $4 }' <<< "$S"; }
qv() { awk -v i="$1" '$1 == "query" && $2 == i { $1 = ""; $2 = ""; sub(/^ +/, ""); print }' <<< "$S"; }
firing_list() { awk '$1 == "alert" && $3 == "firing" { printf "%s%s", sep, $2; sep = "," } END { if (!sep) print "-"; else print "" }' <<< "$S"; }
alert_is() { snap "${@:3}"; [[ "$(state "$1")" == "$2" ]]; }

# The window-scaled copy of the numerical-fault recording rule and alert (see the header).
python3 - "$rules" "$window" "$work/e2e-window-rules.yml" <<'PY'
import json, sys, yaml
src, window, out = sys.argv[1:4]
found = {}
for g in yaml.safe_load(open(src))["groups"]:
    for r in g["rules"]:
        if r.get("record") == "substrate:probe_failures:new30m" or r.get("alert") == "SubstrateNumericalFault":
            found[r.get("record") or r.get("alert")] = dict(r)
rec, alert = found["substrate:probe_failures:new30m"], found["SubstrateNumericalFault"]
name = "substrate_e2e:probe_failures:new" + window
assert rec["expr"].count("30m") == 3, rec["expr"]
rec["record"], rec["expr"] = name, rec["expr"].replace("30m", window)
assert "substrate:probe_failures:new30m" in alert["expr"], alert["expr"]
alert["alert"] = "SubstrateNumericalFaultE2EWindow"
alert["expr"] = alert["expr"].replace("substrate:probe_failures:new30m", name)
stale = next(dict(r) for g in yaml.safe_load(open(src))["groups"] for r in g["rules"] if r.get("alert") == "SubstrateProbeStale")
stale["alert"] = "SubstrateProbeStaleE2E"
stale.pop("for", None)
json.dump({"groups": [{"name": "substrated.e2e-window", "rules": [rec, alert, stale]}]}, open(out, "w"), indent=1)
PY

# ------------------------------------------------------------------------------------- start
write_config
"$bin" serve --config "$work/substrated.yaml" >"$work/substrated.log" 2>&1 &
daemon_pid=$!
t_start="$(now_ms)"

alerting=""
if [[ -n "$alertmanager" ]]; then
  cat > "$work/alertmanager.yml" <<CONF
route:
  receiver: blackhole
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: blackhole
CONF
  cat "$repo/deploy/alertmanager/substrated-inhibit.yml" >> "$work/alertmanager.yml"
  # --cluster.listen-address= (empty) turns gossip off, so nothing binds 9094.
  "$alertmanager" --config.file="$work/alertmanager.yml" --storage.path="$work/am-data" \
    --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address= --log.level=warn \
    >"$work/alertmanager.log" 2>&1 &
  am_pid=$!
  alerting="alerting:
  alertmanagers:
    - static_configs:
        - targets: [\"127.0.0.1:$am_port\"]"
fi

cat > "$work/prometheus.yml" <<CONF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $rules
  - $work/e2e-window-rules.yml
$alerting
scrape_configs:
  - job_name: substrated
    static_configs:
      - targets: ["127.0.0.1:$daemon_port"]
CONF
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prom-data" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$work/prometheus.log" 2>&1 &
prom_pid=$!

if wait_until 20 url_ok "http://127.0.0.1:$daemon_port/healthz" && [[ -S "$sock" ]]; then
  pass "substrated serve up on 127.0.0.1:$daemon_port in $(secs $(($(now_ms) - t_start)))s (control socket $sock)"
else
  fail "substrated not serving /healthz with a control socket within 20s"; finish; exit 1
fi
if wait_until 30 url_ok "$prom/-/ready"; then
  pass "prometheus $(prometheus --version 2>&1 | head -n1 | awk '{print $3}') ready on 127.0.0.1:$prom_port"
else
  fail "prometheus not ready within 30s"; finish; exit 1
fi
if [[ -n "$am_pid" ]]; then
  if wait_until 20 url_ok "http://127.0.0.1:$am_port/-/ready"; then pass "alertmanager ready on 127.0.0.1:$am_port"; else fail "alertmanager not ready"; fi
else
  note "alertmanager not installed (apt-get install prometheus-alertmanager): delivery not checked"
fi

# -------------------------------------------------------------------------- phase 1: clean
scraped() {  # completed gemm runs and the memory probe's first run are in Prometheus
  snap 'substrate_probe_runs_total{job="substrated"} > 0' 'substrate_memory_bad_words{job="substrated"}'
  [[ "$(qv 0)" =~ ^[0-9] && "$(qv 1)" =~ ^[0-9] ]]
}
if wait_until "$timeout_s" scraped; then pass "phase 1: Prometheus scraped completed gemm runs and the memory probe's first run"; else
  fail "phase 1: runs_total > 0 [$(qv 0)] and memory_bad_words [$(qv 1)] not both in Prometheus within ${timeout_s}s"; fi
sleep 2   # a couple of rule evaluations on the scraped runs
snap
read -r _ n_rules n_alerts bad <<< "$(grep '^rules ' <<< "$S" || echo "rules 0 0 ?")"
expected=$(($(grep -cE '^\s*- (alert|record):' "$rules") + 3))
if [[ "$n_rules" == "$expected" ]]; then pass "server loaded all $n_rules rules ($n_alerts alerts; 2 rules are the ${window} window copy, 1 the stale copy)"; else
  fail "server loaded $n_rules rules, expected $expected ($S)"; fi
if [[ "$bad" == "-" ]]; then pass "phase 1: no rule evaluation errors"; else fail "phase 1: rules with evaluation errors: $bad"; fi
for a in SubstrateNumericalFault SubstrateNumericalFaultE2EWindow SubstrateDrillActive SubstrateDeviceFailed SubstrateProbeStaleE2E; do
  if [[ "$(state "$a")" == inactive ]]; then pass "phase 1: $a not firing"; else fail "phase 1: $a is $(state "$a")"; fi
done
note "phase 1: firing now: $(firing_list)"

curl -fsS -m 5 "http://127.0.0.1:$daemon_port/metrics" > "$work/scrape.txt"
if lint="$(promtool check metrics < "$work/scrape.txt" 2>&1)"; then
  pass "promtool check metrics on a real scrape ($(grep -vc '^#' "$work/scrape.txt") samples): exit 0${lint:+ ($lint)}"
else
  fail "promtool check metrics:"; printf '%s\n' "$lint" | sed 's/^/    /'
fi
if g="$(bash "$here/grafana_test.sh" "$work/scrape.txt" 2>&1)"; then
  pass "grafana_test.sh with the real scrape: $(tail -n1 <<< "$g")"
else
  fail "grafana_test.sh with the real scrape:"; grep -E '^FAIL|passed' <<< "$g" | sed 's/^/    /'
fi

npd() { npd_out="$("$bin" probe --npd --socket "$sock" 2>&1)" && npd_rc=0 || npd_rc=$?; }
npd
if [[ "$npd_rc" -eq 0 && "$(wc -l <<< "$npd_out")" -eq 1 && ${#npd_out} -le 80 ]]; then
  pass "phase 1: probe --npd exit 0: $npd_out"
else fail "phase 1: probe --npd exit $npd_rc (want 0, one line <= 80 chars): $npd_out"; fi
status_out="$("$bin" status --socket "$sock" 2>&1 || true)"
if grep -qE '^vulkan[0-9]+ +healthy' <<< "$status_out"; then pass "phase 1: substrated status shows healthy"; else
  fail "phase 1: substrated status:"; sed 's/^/    /' <<< "$status_out"; fi

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$daemon_pid/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$daemon_pid/stat"; }
rss_warm="$(rss_kb)"; ticks0="$(cpu_ticks)"; t_cpu0="$(now_ms)"

# The scheduler's series the stale rule reads, as Prometheus scraped them.
snap 'substrate_probe_interval_seconds{job="substrated",probe="gemm"}' 'substrate_probe_deferred{job="substrated",probe="gemm",reason="busy"}' \
  'substrate_max_staleness_seconds{job="substrated"}' 'substrate_probe_next_run_timestamp_seconds{job="substrated",probe="gemm"} > time() - 10'
if [[ "$(qv 0) $(qv 1) $(qv 2)" == "2 0 3600" && "$(qv 3)" != "-" ]]; then
  pass "phase 1: gemm's interval 2 s, not deferred, max_staleness 3600 s, next run due, from a real scrape"
else fail "phase 1: interval [$(qv 0)] busy [$(qv 1)] max_staleness [$(qv 2)] next run [$(qv 3)] (want 2 0 3600 and a time)"; fi

# -------------------------------------------------------------------------- phase 2: drill
write_config '"bit=30,row=0,col=0"'
kill -HUP "$daemon_pid"
t_drill="$(now_ms)"
if wait_until "$timeout_s" alert_is SubstrateNumericalFault firing; then
  seen=$(($(now_ms) - t_drill)) since="$(active_at SubstrateNumericalFault)"
  ttd=$((since - t_drill))
  pass "phase 2: SubstrateNumericalFault firing (activeAt $(secs "$ttd")s after SIGHUP with the drill; seen by this poll after $(secs "$seen")s)"
  echo "time to detect: $(secs "$ttd")s from SIGHUP to firing (Prometheus activeAt; gemm interval 2 s, scrape and evaluation 1 s)"
else
  fail "phase 2: SubstrateNumericalFault not firing within ${timeout_s}s of the drill"
fi
all_firing() { snap 'substrate_config_last_reload_successful{job="substrated"}'
  [[ "$(state SubstrateDrillActive) $(state SubstrateNumericalFaultE2EWindow) $(state SubstrateDeviceFailed)" == "firing firing firing" ]]; }
if wait_until 10 all_firing; then pass "phase 2: SubstrateDrillActive, SubstrateNumericalFaultE2EWindow, SubstrateDeviceFailed firing"; else
  fail "phase 2: SubstrateDrillActive $(state SubstrateDrillActive), SubstrateNumericalFaultE2EWindow $(state SubstrateNumericalFaultE2EWindow), SubstrateDeviceFailed $(state SubstrateDeviceFailed)"; fi
if [[ "$(qv 0)" == 1 ]]; then pass "phase 2: reload with the drill succeeded (substrate_config_last_reload_successful 1)"; else
  fail "phase 2: substrate_config_last_reload_successful is $(qv 0)"; fi
npd_is() { npd; [[ "$npd_rc" -eq "$1" ]]; }
if wait_until 10 npd_is 1; then pass "phase 2: probe --npd exit 1: $npd_out"; else fail "phase 2: probe --npd exit $npd_rc (want 1): $npd_out"; fi
status_out="$("$bin" status --socket "$sock" 2>&1 || true)"
if grep -qE '^vulkan[0-9]+ +failed' <<< "$status_out" && grep -q 'golden_mismatch' <<< "$status_out"; then
  pass "phase 2: substrated status shows failed (golden_mismatch)"
else fail "phase 2: substrated status:"; sed 's/^/    /' <<< "$status_out"; fi

if wait_until "$timeout_s" alert_is SubstrateProbeStaleE2E firing; then
  pass "phase 2: SubstrateProbeStaleE2E firing $(secs $(($(now_ms) - t_drill)))s after the drill (gemm has not passed for 3 intervals)"
else fail "phase 2: SubstrateProbeStaleE2E is $(state SubstrateProbeStaleE2E) ${timeout_s}s after the drill"; fi

if [[ -n "$am_pid" ]]; then
  am_has() { [[ "$(python3 "$work/prom.py" "$prom" am "http://127.0.0.1:$am_port" SubstrateNumericalFault)" == 1 ]]; }
  if wait_until 20 am_has; then pass "phase 2: Alertmanager received SubstrateNumericalFault $(secs $(($(now_ms) - t_drill)))s after the drill"; else
    fail "phase 2: Alertmanager has no SubstrateNumericalFault"; fi
  want="SubstrateNumericalFault=suppressed SubstrateDeviceFailed=suppressed SubstrateDrillActive=active SubstrateDrillDetected=active"
  am_inhibited() { [[ "$(python3 "$work/prom.py" "$prom" amstate "http://127.0.0.1:$am_port" SubstrateNumericalFault SubstrateDeviceFailed SubstrateDrillActive SubstrateDrillDetected)" == "$want" ]]; }
  if wait_until 20 am_inhibited; then pass "phase 2: shipped inhibition: the drill's fault and verdict are inhibited, SubstrateDrillActive and SubstrateDrillDetected active"; else
    fail "phase 2: Alertmanager states: $(python3 "$work/prom.py" "$prom" amstate "http://127.0.0.1:$am_port" SubstrateNumericalFault SubstrateDeviceFailed SubstrateDrillActive SubstrateDrillDetected) (want $want)"; fi
fi

# ------------------------------------------------------------------- phase 3: drill removed
write_config
kill -HUP "$daemon_pid"
t_end="$(now_ms)"
last_run_clean() {  # the drill gauge and the last-run mismatch are gone
  snap 'substrate_probe_mismatched_elements{job="substrated"} > 0'
  [[ "$(state SubstrateDrillActive)" == inactive && "$(qv 0)" == "-" ]]
}
if wait_until "$timeout_s" last_run_clean; then
  pass "phase 3: SubstrateDrillActive resolved and mismatched_elements back to 0 $(secs $(($(now_ms) - t_end)))s after SIGHUP without the drill"
else fail "phase 3: SubstrateDrillActive $(state SubstrateDrillActive), mismatched_elements > 0: $(qv 0)"; fi
if wait_until "$timeout_s" alert_is SubstrateProbeStaleE2E inactive; then
  pass "phase 3: SubstrateProbeStaleE2E resolved $(secs $(($(now_ms) - t_end)))s after the drill ended"
else fail "phase 3: SubstrateProbeStaleE2E still $(state SubstrateProbeStaleE2E) after ${timeout_s}s"; fi
if wait_until "$timeout_s" alert_is SubstrateNumericalFaultE2EWindow inactive; then
  pass "phase 3: SubstrateNumericalFaultE2EWindow (window $window) resolved $(secs $(($(now_ms) - t_end)))s after the drill ended"
else fail "phase 3: SubstrateNumericalFaultE2EWindow still $(state SubstrateNumericalFaultE2EWindow) after ${timeout_s}s"; fi
# The shipped alert: held by the 30-minute golden_mismatch window only (by design).
snap 'substrate:probe_failures:new30m{reason="golden_mismatch"}' 'substrate_probe_mismatched_elements{job="substrated"} > 0'
if [[ "$(state SubstrateNumericalFault)" == firing && "$(qv 0)" != "-" && "$(qv 1)" == "-" ]]; then
  pass "phase 3: shipped SubstrateNumericalFault still firing, from the 30m golden_mismatch window only (resolves 30 min after the last drill failure)"
else
  fail "phase 3: shipped SubstrateNumericalFault is $(state SubstrateNumericalFault), new30m [$(qv 0)], mismatched [$(qv 1)]"
fi
if wait_until 30 npd_is 0; then pass "phase 3: device recovered (passes_to_recover clean runs), probe --npd exit 0 (checked $(secs $(($(now_ms) - t_end)))s after the drill ended): $npd_out"; else
  fail "phase 3: probe --npd exit $npd_rc (want 0 after passes_to_recover clean runs): $npd_out"; fi

ticks1="$(cpu_ticks)"; t_cpu1="$(now_ms)"
hwm_kb="$(awk '/^VmHWM:/ { print $2 }' "/proc/$daemon_pid/status")"
threads="$(awk '/^Threads:/ { print $2 }' "/proc/$daemon_pid/status")"
note "footprint (this drill config, gemm 64^3 every 2 s): VmRSS after warm-up $((rss_warm / 1024)) MiB, now $(($(rss_kb) / 1024)) MiB, VmHWM $((hwm_kb / 1024)) MiB, $threads threads, CPU $(awk -v t=$((ticks1 - ticks0)) -v hz="$(getconf CLK_TCK)" -v ms=$((t_cpu1 - t_cpu0)) 'BEGIN { printf "%.1f%%", 100 * t / hz / (ms / 1000) }') of one core over phases 2-3"

# --------------------------------------------------------------------------- phase 4: stop
kill -TERM "$daemon_pid"
stopped() { ! kill -0 "$daemon_pid" 2>/dev/null; }
if wait_until 20 stopped; then
  wait "$daemon_pid" && daemon_rc=0 || daemon_rc=$?
  daemon_pid=""
  if [[ "$daemon_rc" -eq 0 ]]; then pass "phase 4: SIGTERM -> substrated exited 0"; else fail "phase 4: SIGTERM -> substrated exited $daemon_rc"; fi
else
  fail "phase 4: substrated still running 20s after SIGTERM"
fi
if head -n1 "$work/state/state.json" 2>/dev/null | grep -q '^substrated-state v1 '; then
  pass "phase 4: state.json left in the state directory"
else fail "phase 4: no valid state.json in $work/state ($(ls "$work/state" | tr '\n' ' '))"; fi
if [[ ! -e "$sock" ]]; then pass "phase 4: control socket removed"; else fail "phase 4: control socket left behind at $sock"; fi

note "total $(secs $(($(now_ms) - t_start)))s"
finish
