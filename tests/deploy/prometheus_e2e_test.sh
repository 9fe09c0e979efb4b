#!/usr/bin/env bash
# A real Prometheus (Debian's `prometheus` package) with the shipped rules, scraping a stand-in
# exporter on loopback: checks that the server loads every rule without errors, that the drill's
# signal (substrate_probe_drill=1, substrate_probe_mismatched_elements>0) fires SubstrateDrillActive
# and SubstrateNumericalFault through the server's own rule evaluation (time to detect printed),
# and that both resolve when the drill ends. Ports are chosen free at run time; everything started
# is stopped on exit.
#
# The stand-in exporter serves a static text file; once `substrated serve` exists, the same flow
# runs against the daemon on lavapipe with a short interval and a drill in its configuration (see
# docs/operations.md#the-drill) -- that replaces the stand-in, the checks stay.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
rules="$repo/deploy/prometheus/substrated-rules.yml"
timeout_s="${E2E_TIMEOUT:-60}"
passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   - $*"; }
fail() { failed=$((failed + 1)); echo "FAIL - $*"; }
finish() { echo "deploy-prometheus-e2e: ${passed} passed, ${failed} failed"; [[ "$failed" -eq 0 ]]; }

prom="$(command -v prometheus || true)"
if [[ -z "$prom" ]]; then fail "prometheus not found (apt-get install prometheus)"; finish; exit 1; fi

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
exporter_port="$(free_port)"
prom_port="$(free_port)"

metrics() {  # metrics DRILL MISMATCHED: write the exporter's page atomically
  cat > "$work/www/metrics.tmp" <<METRICS
# HELP substrate_probe_drill 1 while a drill (fault injection) is configured.
# TYPE substrate_probe_drill gauge
substrate_probe_drill{device="vulkan0",probe="gemm"} $1
# HELP substrate_probe_mismatched_elements Elements outside the bound in the last scheduled run.
# TYPE substrate_probe_mismatched_elements gauge
substrate_probe_mismatched_elements{device="vulkan0",probe="gemm"} $2
# HELP substrate_config_last_reload_successful 1 when the last (re)load succeeded.
# TYPE substrate_config_last_reload_successful gauge
substrate_config_last_reload_successful 1
METRICS
  mv "$work/www/metrics.tmp" "$work/www/metrics"
}
mkdir -p "$work/www" "$work/data"
metrics 0 0

python3 -m http.server "$exporter_port" --bind 127.0.0.1 --directory "$work/www" >"$work/exporter.log" 2>&1 &
pids+=($!)

cat > "$work/prometheus.yml" <<CONF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $rules
scrape_configs:
  - job_name: substrated
    static_configs:
      - targets: ["127.0.0.1:$exporter_port"]
CONF
"$prom" --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$work/prometheus.log" 2>&1 &
pids+=($!)

api() { python3 - "http://127.0.0.1:$prom_port$1" <<'PY'
import json, sys, urllib.request
try:
    print(json.dumps(json.load(urllib.request.urlopen(sys.argv[1], timeout=2))))
except Exception as e:
    print(json.dumps({"status": "error", "error": str(e)}))
PY
}

wait_for() {  # wait_for DESCRIPTION PYTHON_CONDITION_ON_d (d = /api/v1/alerts JSON); prints seconds
  local start now
  start="$(date +%s.%N)"
  while true; do
    if api /api/v1/alerts | python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if ($2) else 1)"; then
      now="$(date +%s.%N)"; python3 -c "print('%.1f' % ($now - $start))"; return 0
    fi
    if python3 -c "import sys; sys.exit(0 if $(date +%s.%N) - $start > $timeout_s else 1)"; then return 1; fi
    sleep 0.5
  done
}

# Server up and rules loaded.
ready=0
for _ in $(seq 1 60); do
  if curl -fsS "http://127.0.0.1:$prom_port/-/ready" >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.5
done
if [[ "$ready" -eq 1 ]]; then pass "prometheus $("$prom" --version 2>&1 | head -n1 | awk '{print $3}') ready on 127.0.0.1:$prom_port"; else
  fail "prometheus not ready"; sed 's/^/    /' "$work/prometheus.log" | tail -n 20; finish; exit 1; fi

rules_json="$(api /api/v1/rules)"
summary="$(printf '%s' "$rules_json" | python3 -c '
import json, sys
d = json.load(sys.stdin)
rules = [r for g in d.get("data", {}).get("groups", []) for r in g["rules"]]
bad = [r["name"] for r in rules if r.get("health") not in ("ok", "unknown")]
print(len(rules), len([r for r in rules if r["type"] == "alerting"]), ",".join(bad) or "-")')"
read -r n_rules n_alerts bad <<< "$summary"
expected="$(grep -cE '^\s*- (alert|record):' "$rules")"
if [[ "$n_rules" -eq "$expected" ]]; then pass "server loaded all $n_rules rules ($n_alerts alerts)"; else fail "server loaded $n_rules rules, file has $expected"; fi

# Healthy target: nothing firing (SubstratedDown may be pending until the first scrape lands).
sleep 3
firing_now="$(api /api/v1/alerts | python3 -c 'import json,sys; print(",".join(sorted({a["labels"]["alertname"] for a in json.load(sys.stdin)["data"]["alerts"] if a["state"] == "firing"})) or "-")')"
if [[ "$firing_now" == "-" ]]; then pass "healthy target: no alert firing"; else fail "healthy target: firing $firing_now"; fi
sleep 1
bad="$(api /api/v1/rules | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(",".join(r["name"] for g in d["data"]["groups"] for r in g["rules"] if r.get("health") == "err") or "-")')"
if [[ "$bad" == "-" ]]; then pass "no rule evaluation errors"; else fail "rules with evaluation errors: $bad"; fi

# Drill on.
metrics 1 1
firing='any(a["labels"]["alertname"] == "%s" and a["state"] == "firing" and a["labels"].get("device") == "vulkan0" for a in d["data"]["alerts"])'
if t="$(wait_for "numerical fault" "$(printf "$firing" SubstrateNumericalFault)")"; then
  pass "SubstrateNumericalFault firing ${t}s after the drill's mismatch appeared"
else fail "SubstrateNumericalFault not firing within ${timeout_s}s"; fi
if api /api/v1/alerts | python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if ($(printf "$firing" SubstrateDrillActive)) else 1)"; then
  pass "SubstrateDrillActive firing beside it"
else fail "SubstrateDrillActive not firing"; fi

# Drill off: both resolve.
metrics 0 0
gone='not any(a["labels"]["alertname"] in ("SubstrateNumericalFault", "SubstrateDrillActive") for a in d["data"]["alerts"])'
if t="$(wait_for "resolved" "$gone")"; then pass "alerts resolved ${t}s after the drill ended"; else fail "alerts still active ${timeout_s}s after the drill ended"; fi

finish
