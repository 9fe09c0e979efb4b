#!/usr/bin/env bash
# Checks the shipped Alertmanager files (deploy/alertmanager/, generated from deploy/mixin) with
# Debian's prometheus-alertmanager:
#   1. `amtool check-config` passes on alertmanager.example.yml, and substrated-inhibit.yml holds
#      the same inhibit_rules;
#   2. a real Alertmanager on 127.0.0.1 (free ports, HA clustering off) runs the example's routing
#      and inhibition, with the two webhook receivers pointed at a local catcher and the group
#      timers shortened to 1 s. Alerts are posted to its API v2 with the labels and severities of
#      the shipped rules:
#      - one failing GPU (NumericalFault, DeviceFailed, Nondeterminism, CrossDeviceMismatch,
#        FleetFingerprintMinority, ErrorBudgetHigh on one device): exactly one alert is active
#        (SubstrateDeviceFailed, routed to the pager), the others are inhibited, and the pager
#        webhook gets one notification with that one alert;
#      - a drill on another device (DrillActive, DrillDetected and the faults it provokes): nothing
#        active routes to the pager, the pager gets nothing new, and the notification receiver gets
#        the drill's notification;
#      - a fault on a third device is not inhibited by the first device's verdict (it pages).
# Every wait is bounded; Alertmanager and the catcher are stopped and the work directory removed
# on exit. Takes a few seconds.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
example="$repo/deploy/alertmanager/alertmanager.example.yml"
inhibit="$repo/deploy/alertmanager/substrated-inhibit.yml"
rules="$repo/deploy/prometheus/substrated-rules.yml"
source "$here/lib.sh" deploy-alertmanager

require_tools amtool curl python3
require_pyyaml
am_bin="$(command -v prometheus-alertmanager || command -v alertmanager || true)"
[[ -n "$am_bin" ]] || { fail "prometheus-alertmanager not found (scripts/install-deps.sh)"; finish; exit 1; }

work="$(mktemp -d)"
am_pid="" hook_pid=""
cleanup() {
  stop_pid "$am_pid" 5
  stop_pid "$hook_pid" 5
  if [[ "${AM_KEEP:-0}" == 1 ]]; then echo "# kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# 1. static checks
if out="$(amtool check-config "$example" 2>&1)"; then
  pass "amtool check-config deploy/alertmanager/alertmanager.example.yml"
else
  fail "amtool check-config alertmanager.example.yml:"; printf '%s\n' "$out" | sed 's/^/    /'
fi
if python3 -c 'import sys, yaml; a = yaml.safe_load(open(sys.argv[1]))["inhibit_rules"]; b = yaml.safe_load(open(sys.argv[2]))["inhibit_rules"]; sys.exit(0 if a == b and a else 1)' "$example" "$inhibit"; then
  pass "substrated-inhibit.yml holds the example's inhibit_rules"
else
  fail "substrated-inhibit.yml and alertmanager.example.yml disagree on inhibit_rules"
fi

# 2. a real Alertmanager
am_port="$(free_port)" hook_port="$(free_port)"
cat > "$work/am.py" <<'PY'
import json, sys, time, urllib.request, yaml
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

cmd = sys.argv[1]
if cmd == "hook":            # hook PORT FILE: append each POSTed notification as one JSON line
    port, path = int(sys.argv[2]), sys.argv[3]
    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            with open(path, "a") as f:
                f.write(json.dumps({"path": self.path, "body": body}) + "\n")
            self.send_response(200); self.end_headers()
        def log_message(self, *a):
            pass
    ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()

elif cmd == "config":        # config EXAMPLE HOOK_PORT OUT: the example with local receivers, 1 s timers
    cfg = yaml.safe_load(open(sys.argv[2]))
    port = sys.argv[3]
    for r in cfg["receivers"]:
        for w in r.get("webhook_configs", []):
            w["url"] = "http://127.0.0.1:%s/%s" % (port, r["name"])
    def timers(route):
        for k in ("group_wait", "group_interval"):
            if k in route:
                route[k] = "1s"
        for sub in route.get("routes", []):
            timers(sub)
    timers(cfg["route"])
    yaml.safe_dump(cfg, open(sys.argv[4], "w"))

elif cmd == "post":          # post RULES AM_URL INSTANCE DEVICE ALERTNAME[:k=v,...]...
    rules = yaml.safe_load(open(sys.argv[2]))
    sev = {r["alert"]: r["labels"]["severity"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    now = time.time()
    fmt = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    alerts = []
    for spec in sys.argv[6:]:
        name, _, extra = spec.partition(":")
        labels = {"alertname": name, "severity": sev[name], "job": "substrated",
                  "instance": sys.argv[4], "substrate_device": sys.argv[5]}
        labels.update(dict(kv.split("=", 1) for kv in extra.split(",") if kv))
        alerts.append({"labels": labels, "annotations": {"summary": name},
                       "startsAt": fmt(now), "endsAt": fmt(now + 3600)})
    req = urllib.request.Request(sys.argv[3] + "/api/v2/alerts", json.dumps(alerts).encode(),
                                 {"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=5).read()

elif cmd == "state":         # state AM_URL INSTANCE DEVICE: "alertname state receivers" per alert
    alerts = json.load(urllib.request.urlopen(sys.argv[2] + "/api/v2/alerts", timeout=5))
    for a in sorted(alerts, key=lambda a: a["labels"]["alertname"]):
        l = a["labels"]
        if l.get("instance") == sys.argv[3] and l.get("substrate_device") == sys.argv[4]:
            print(l["alertname"], a["status"]["state"], ",".join(r["name"] for r in a["receivers"]))

elif cmd == "got":           # got FILE RECEIVER INSTANCE DEVICE: notifications, then their alertnames
    n, names = 0, set()
    try:
        lines = open(sys.argv[2]).read().splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
        m = json.loads(line)
        if m["path"] != "/" + sys.argv[3] or m["body"].get("status") != "firing":
            continue
        mine = [a for a in m["body"]["alerts"] if a["labels"].get("instance") == sys.argv[4]
                and a["labels"].get("substrate_device") == sys.argv[5] and a["status"] == "firing"]
        if mine:
            n += 1
            names |= {a["labels"]["alertname"] for a in mine}
    print(n, ",".join(sorted(names)) or "-")
PY

python3 "$work/am.py" config "$example" "$hook_port" "$work/alertmanager.yml"
if out="$(amtool check-config "$work/alertmanager.yml" 2>&1)"; then :; else
  fail "test configuration rejected:"; printf '%s\n' "$out" | sed 's/^/    /'; finish; exit 1
fi
python3 "$work/am.py" hook "$hook_port" "$work/hook.jsonl" &
hook_pid=$!
"$am_bin" --config.file="$work/alertmanager.yml" --storage.path="$work/data" \
  --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address= --log.level=warn \
  >"$work/alertmanager.log" 2>&1 &
am_pid=$!
am="http://127.0.0.1:$am_port"
if wait_until 20 url_ok "$am/-/ready"; then pass "alertmanager ready on 127.0.0.1:$am_port"; else
  fail "alertmanager not ready within 20 s"; tail -n 20 "$work/alertmanager.log" | sed 's/^/    /'; finish; exit 1
fi

post() { python3 "$work/am.py" post "$rules" "$am" "$@"; }
state() { python3 "$work/am.py" state "$am" "$1" "$2"; }
got() { python3 "$work/am.py" got "$work/hook.jsonl" "$@"; }
fp="spec=m256n256k256,model=H100,driver=550.54.15,kernel_build=k1,fingerprint=bbbb"

# One failing GPU: h1 cuda0.
post h1:19400 cuda0 SubstrateNumericalFault:probe=gemm SubstrateDeviceFailed:state=failed \
  SubstrateNondeterminism:probe=gemm SubstrateCrossDeviceMismatch:probe=gemm \
  "SubstrateFleetFingerprintMinority:probe=gemm,$fp" SubstrateErrorBudgetHigh:probe=gemm
# The drill: h2 cuda0.
post h2:19400 cuda0 SubstrateDrillActive:probe=gemm SubstrateDrillDetected:probe=gemm \
  SubstrateNumericalFault:probe=gemm SubstrateDeviceFailed:state=failed \
  SubstrateNondeterminism:probe=gemm SubstrateCrossDeviceMismatch:probe=gemm
# Another GPU on the failing GPU's host: its own fault is not inhibited by cuda0's verdict.
post h1:19400 cuda1 SubstrateNumericalFault:probe=gemm

settled() { [[ "$(state h1:19400 cuda0 | wc -l)" -eq 6 && "$(state h2:19400 cuda0 | wc -l)" -eq 6 \
  && "$(got substrated-page h1:19400 cuda0)" != "0 -" && "$(got substrated-notify h2:19400 cuda0)" != "0 -" ]]; }
if wait_until 20 settled; then pass "alerts received and first notifications delivered"; else
  fail "alerts or notifications missing after 20 s"; fi
sleep 3   # three more group intervals: anything else that would be sent has been sent

s1="$(state h1:19400 cuda0)"
active1="$(awk '$2 == "active"' <<< "$s1")"
if [[ "$active1" == "SubstrateDeviceFailed active substrated-page" && "$(grep -c ' suppressed ' <<< "$s1")" -eq 5 ]]; then
  pass "one failing GPU: one active alert (SubstrateDeviceFailed, to the pager), 5 inhibited"
else
  fail "one failing GPU: expected only SubstrateDeviceFailed active, got:"; sed 's/^/    /' <<< "$s1"
fi
g="$(got substrated-page h1:19400 cuda0)"
if [[ "$g" == "1 SubstrateDeviceFailed" ]]; then pass "one failing GPU: the pager got 1 notification (SubstrateDeviceFailed)"; else
  fail "one failing GPU: pager notifications: $g (expected 1 SubstrateDeviceFailed)"; fi
g="$(got substrated-notify h1:19400 cuda0)"
if [[ "$g" == "0 -" ]]; then pass "one failing GPU: nothing to the notification receiver (its warning is inhibited)"; else
  fail "one failing GPU: notification receiver got $g"; fi

s2="$(state h2:19400 cuda0)"
active2="$(awk '$2 == "active" {print $1, $3}' <<< "$s2" | tr '\n' ' ')"
if [[ "$active2" == "SubstrateDrillActive substrated-notify SubstrateDrillDetected substrated-notify " ]]; then
  pass "drill: only SubstrateDrillActive and SubstrateDrillDetected active, to the notification receiver; the faults it provokes inhibited"
else
  fail "drill: active alerts: ${active2:-none}"; sed 's/^/    /' <<< "$s2"
fi
g="$(got substrated-page h2:19400 cuda0)"
if [[ "$g" == "0 -" ]]; then pass "drill: no page"; else fail "drill: the pager got $g"; fi
g="$(got substrated-notify h2:19400 cuda0)"
if [[ "$g" == *SubstrateDrillActive* && "$g" == *SubstrateDrillDetected* && "$g" != *SubstrateNumericalFault* ]]; then
  pass "drill: the notification receiver was told the drill fired ($g)"
else
  fail "drill: notification receiver got $g"
fi

s3="$(state h1:19400 cuda1)"
if [[ "$s3" == "SubstrateNumericalFault active substrated-page" && "$(got substrated-page h1:19400 cuda1)" == "1 SubstrateNumericalFault" ]]; then
  pass "inhibition stays within one device: cuda1's fault on the same host pages"
else
  fail "other device on the same host: $s3 / pager $(got substrated-page h1:19400 cuda1)"
fi

if [[ "$failed" -gt 0 ]]; then echo "    alertmanager log:"; tail -n 20 "$work/alertmanager.log" | sed 's/^/    /'; fi
finish
