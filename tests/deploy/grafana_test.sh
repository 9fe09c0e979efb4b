#!/usr/bin/env bash
# Checks deploy/grafana/substrated-dashboard.json: valid JSON with the structure Grafana needs
# (unique panel ids, grid positions, targets with refIds, a Prometheus datasource variable), the
# topics the dashboard must cover, and that every metric name its queries use is documented in
# docs/metrics.md. Given a scrape file (the text of GET /metrics from a running daemon), it also
# checks that the metrics are really exported: every metric of the "Daemon and checks" table must
# be present; metrics of the "Telemetry" table are reported as skipped when absent (a host without
# NVML/amdgpu exports none), or required with --strict.
#
# Usage: tests/deploy/grafana_test.sh [--strict] [SCRAPE_FILE]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dashboard="${GRAFANA_DASHBOARD:-$repo/deploy/grafana/substrated-dashboard.json}"
strict=0
scrape=""
for arg in "$@"; do
  case "$arg" in
    --strict) strict=1 ;;
    -*) echo "unknown option $arg" >&2; exit 2 ;;
    *) scrape="$arg" ;;
  esac
done
source "$here/lib.sh" deploy-grafana

if [[ -n "$scrape" && ! -r "$scrape" ]]; then fail "scrape file $scrape not readable"; finish; exit 1; fi

out="$(python3 - "$dashboard" "$repo/docs/metrics.md" "$scrape" "$strict" <<'PY' 2>&1 || true
import json, re, sys

dash_path, metrics_md, scrape_path, strict = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
def check(ok, msg):
    print(("ok   - " if ok else "FAIL - ") + msg)

try:
    d = json.load(open(dash_path))
    check(True, "dashboard is valid JSON")
except Exception as e:
    check(False, "dashboard is valid JSON: %s" % " ".join(str(e).split()))
    sys.exit(0)

check(all(d.get(k) for k in ("title", "uid", "schemaVersion", "panels")), "title, uid, schemaVersion and panels present")

def walk(panels):
    for p in panels:
        yield p
        yield from walk(p.get("panels") or [])
panels = list(walk(d.get("panels") or []))
ids = [p.get("id") for p in panels]
check(len(ids) == len(set(ids)) and None not in ids, "panel ids unique (%d panels)" % len(panels))

grid_ok, target_ok = True, True
exprs = []
for p in panels:
    g = p.get("gridPos") or {}
    if not all(isinstance(g.get(k), int) for k in ("h", "w", "x", "y")) or g["x"] + g["w"] > 24:
        grid_ok = False
        print("    bad gridPos in panel %r" % p.get("title"))
    if p.get("type") == "row":
        continue
    ts = p.get("targets") or []
    refs = [t.get("refId") for t in ts]
    if not ts or len(refs) != len(set(refs)) or not all(t.get("expr") for t in ts):
        target_ok = False
        print("    panel %r: targets need expr and unique refId" % p.get("title"))
    exprs += [(p.get("title"), t.get("expr", "")) for t in ts]
check(grid_ok, "every panel has a gridPos within 24 columns")
check(target_ok, "every panel has targets with an expr and a unique refId")

variables = {v.get("name"): v for v in (d.get("templating") or {}).get("list") or []}
check(variables.get("datasource", {}).get("type") == "datasource" and variables["datasource"].get("query") == "prometheus",
      "datasource variable of type prometheus")
for v in variables.values():
    q = v.get("query")
    if isinstance(q, dict):
        q = q.get("query", "")
    if v.get("type") == "query":
        exprs.append(("variable " + v["name"], q or ""))
for a in (d.get("annotations") or {}).get("list") or []:
    if a.get("expr"):
        exprs.append(("annotation " + a.get("name", ""), a["expr"]))
used_ds = {json.dumps(p.get("datasource"), sort_keys=True) for p in panels if p.get("type") != "row"}
check(used_ds == {json.dumps({"type": "prometheus", "uid": "${datasource}"}, sort_keys=True)},
      "every panel uses the ${datasource} variable")

text = " ".join((p.get("title", "") + " " + p.get("description", "")).lower() for p in panels)
for topic, pattern in [("per-device health", r"health|verdict"), ("error budget", r"error budget"),
                       ("fingerprint changes", r"fingerprint"), ("mismatches", r"mismatch"), ("ECC", r"\becc\b"),
                       ("XIDs", r"\bxid"), ("temperatures", r"temperature"), ("throttling", r"throttl"),
                       ("probe duration", r"device time|duration")]:
    check(re.search(pattern, text) is not None, "dashboard covers %s" % topic)

# Metric names: documented in docs/metrics.md (by table section).
section, documented = None, {}
for line in open(metrics_md, encoding="utf-8"):
    if line.startswith("## "):
        section = "telemetry" if "telemetry" in line.lower() else "daemon"
    m = re.match(r"^\|\s*(substrate_[a-z0-9_]+)\s*\|\s*(\w+)", line)
    if m:
        documented[m.group(1)] = (section, m.group(2))

used = {}
for title, e in exprs:
    e2 = re.sub(r'"(?:[^"\\]|\\.)*"', '""', e)
    for name in re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b", e2):
        if name.startswith("substrate_") or ":" in name:
            used.setdefault(name, set()).add(title)
    if re.search(r"\bup\b", e2) and 'job="substrated"' not in e:
        check(False, "%s: `up` without job=\"substrated\"" % title)
unknown = sorted(n for n in used if n not in documented)
check(not unknown, "all %d metric names in queries are in docs/metrics.md%s"
      % (len(used), "" if not unknown else ": unknown " + ", ".join("%s (%s)" % (n, "; ".join(sorted(used[n]))) for n in unknown)))

# PromQL syntax: every query, with Grafana's variables substituted, as a recording rule for
# `promtool check rules` (run by the shell part below when promtool exists).
import os, tempfile
rules = {"groups": [{"name": "dashboard", "rules": []}]}
for i, (title, e) in enumerate(exprs):
    if e.startswith("label_values("):
        m = re.match(r"label_values\((.*),\s*\w+\)$", e)
        e = m.group(1) if m else e
    e = (e.replace("$__rate_interval", "5m").replace("$__range", "1h").replace("$__interval", "1m")
          .replace("$instance", ".*").replace("$device", ".*"))
    rules["groups"][0]["rules"].append({"record": "dashboard:query_%d" % i, "expr": e})
fd, tmp = tempfile.mkstemp(suffix=".yml", prefix="dashboard-rules-")
with os.fdopen(fd, "w") as f:
    json.dump(rules, f)   # JSON is valid YAML
print("RULES " + tmp)

if scrape_path:
    exported = set()
    for line in open(scrape_path, encoding="utf-8", errors="replace"):
        line = line.strip()
        if line.startswith("# TYPE ") or line.startswith("# HELP "):
            parts = line.split()
            if len(parts) >= 3:
                exported.add(parts[2])
        elif line and not line.startswith("#"):
            exported.add(re.split(r"[{\s]", line, 1)[0])
    def present(n):
        return n in exported or (n.endswith("_total") and n[:-6] in exported)
    missing_daemon = sorted(n for n in used if n in documented and documented[n][0] == "daemon" and not present(n))
    missing_tel = sorted(n for n in used if n in documented and documented[n][0] == "telemetry" and not present(n))
    check(not missing_daemon, "daemon metrics used by the dashboard are in the scrape %s%s"
          % (scrape_path, "" if not missing_daemon else ": missing " + ", ".join(missing_daemon)))
    if strict:
        check(not missing_tel, "telemetry metrics used by the dashboard are in the scrape%s"
              % ("" if not missing_tel else ": missing " + ", ".join(missing_tel)))
    else:
        present_tel = sorted(n for n in used if n in documented and documented[n][0] == "telemetry" and present(n))
        check(True, "telemetry metrics in the scrape: %d present, %d absent (skipped; --strict requires them)%s"
              % (len(present_tel), len(missing_tel), (": " + ", ".join(missing_tel)) if missing_tel else ""))
PY
)"
rules_tmp=""
while IFS= read -r line; do
  case "$line" in
    "RULES "*) rules_tmp="${line#RULES }" ;;
    "ok   - "*) pass "${line#ok   - }" ;;
    "FAIL - "*) fail "${line#FAIL - }" ;;
    "    "*) echo "$line" ;;
    "") ;;
    *) fail "python: $line" ;;
  esac
done <<< "$out"
if [[ -n "$rules_tmp" ]]; then
  if command -v promtool >/dev/null 2>&1; then
    if res="$(promtool check rules "$rules_tmp" 2>&1)"; then
      pass "every dashboard query parses as PromQL (promtool check rules)"
    else
      fail "dashboard queries do not parse:"; printf '%s\n' "$res" | sed 's/^/    /'
    fi
  else
    echo "# promtool not found: PromQL syntax of the queries not checked"
  fi
  rm -f "$rules_tmp"
fi
[[ $((passed + failed)) -gt 0 ]] || fail "no checks ran"
finish
