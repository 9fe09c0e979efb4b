#!/usr/bin/env bash
# Checks deploy/grafana/substrated-dashboard.json (generated from deploy/mixin): valid JSON with
# the structure Grafana needs (unique panel ids, grid positions, targets with refIds, a Prometheus
# datasource variable), the topics the dashboard must cover, the variables (optional cluster, node
# and pod whose "All" also matches series without the label, then instance and device) and that
# every query honours them, and that every metric name its queries use is documented in
# docs/metrics.md or is a recording rule of deploy/prometheus/substrated-rules.yml (the drift
# panel must use the recording rules rather than recompute 7-day averages). Given a scrape file (the text of GET /metrics from a running daemon), it also
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
require_pyyaml

if [[ -n "$scrape" && ! -r "$scrape" ]]; then fail "scrape file $scrape not readable"; finish; exit 1; fi

out="$(python3 - "$dashboard" "$repo/docs/metrics.md" "$scrape" "$strict" "$repo/deploy/prometheus/substrated-rules.yml" <<'PY' 2>&1 || true
import json, re, sys, yaml

dash_path, metrics_md, scrape_path, strict = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
recorded = {r["record"] for g in yaml.safe_load(open(sys.argv[5]))["groups"] for r in g["rules"] if "record" in r}
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
# Variables: the optional label variables match series without the label when "All" is chosen.
optional = ("cluster", "node", "pod")
for name in optional + ("instance", "substrate_device"):
    v = variables.get(name)
    ok = v is not None and v.get("type") == "query" and v.get("includeAll") and v.get("allValue") == ".*"
    check(ok, "variable %s: query, multi-value with All = .* (matches series without the label)" % name)
# Every query honours the variables: all of them, but $substrate_device only where the series has one.
host_level = re.compile(r"\b(up|substrate_config_last_reload_\w+|substrate_build_info|substrate_telemetry_\w+)\b")
ignoring = []
for title, e in exprs:
    if title.startswith("variable "):
        continue
    need = list(optional) + ["instance"] + ([] if host_level.search(e) else ["substrate_device"])
    for sel in re.findall(r"\b(?:substrate[_:][a-zA-Z0-9_:]*|up)\{([^}]*)\}", e) or [""]:
        missing = [n for n in need if '%s=~"$%s"' % (n, n) not in sel]
        if missing:
            ignoring.append("%s (%s)" % (title, ", ".join(missing)))
check(not ignoring, "every query filters by the dashboard variables%s" % ("" if not ignoring else ": not in " + "; ".join(sorted(set(ignoring)))))
drift = [e for t, e in exprs if "7 d" in t]
check(bool(drift) and all("substrate:probe_error_budget_ratio:avg7d" in e and "avg_over_time" not in e for e in drift),
      "the 7-day drift panel reads the recording rules instead of recomputing")
fleet = [e for t, e in exprs if t.lower().startswith("fleet")]
check(bool(fleet) and all('instance=~"$instance"' in e for e in fleet), "the fleet table honours the variables")

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
    # Label names are not metric names: drop matchers, grouping clauses and label_values' label.
    e2 = re.sub(r"\{[^}]*\}", "", e2)
    e2 = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e2)
    e2 = re.sub(r"^(label_values\(.*),\s*\w+\)$", r"\1)", e2)
    for name in re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b", e2):
        if name.startswith("substrate_") or ":" in name:
            used.setdefault(name, set()).add(title)
    if re.search(r"\bup\b", e2) and 'job="substrated"' not in e:
        check(False, "%s: `up` without job=\"substrated\"" % title)
unknown = sorted(n for n in used if n not in documented and n not in recorded)
missing_rec = sorted(n for n in used if ":" in n and n not in recorded)
check(not missing_rec, "recording rules used by the dashboard are defined in substrated-rules.yml%s"
      % ("" if not missing_rec else ": missing " + ", ".join(missing_rec)))
check(not unknown, "all %d metric names in queries are in docs/metrics.md or recorded%s"
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
          .replace("$instance", ".*").replace("$substrate_device", ".*"))
    e = re.sub(r"\$(cluster|node|pod)\b", ".*", e)
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
