#!/usr/bin/env bash
# Checks deploy/prometheus/substrated-rules.yml:
#   1. `promtool check rules` (syntax, PromQL, templates);
#   2. `promtool test rules` on every deploy/prometheus/tests/*.yml;
#   3. every alert has labels.severity and annotations summary, description and runbook_url, the
#      runbook_url points into docs/operations.md and its anchor exists there;
#   4. every alert is exercised by the tests with at least one firing and one not-firing case;
#   5. every metric the rules use is documented in docs/metrics.md (or is Prometheus's `up`).
# Needs promtool (Debian package prometheus) and python3 with PyYAML (python3-yaml; installed with
# apt-get when missing and running as root).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
rules="$repo/deploy/prometheus/substrated-rules.yml"
testdir="$repo/deploy/prometheus/tests"
source "$here/lib.sh" deploy-prometheus

require_tools promtool
require_pyyaml

# 1. promtool check rules
if out="$(promtool check rules "$rules" 2>&1)"; then
  pass "promtool check rules: $(printf '%s\n' "$out" | grep -o 'SUCCESS.*' | head -n1)"
else
  fail "promtool check rules"; printf '%s\n' "$out" | sed 's/^/    /'
fi

# 2. promtool test rules, one file at a time so a failure names its file.
shopt -s nullglob
tests=("$testdir"/*.yml)
if [[ ${#tests[@]} -eq 0 ]]; then fail "no rule tests in $testdir"; fi
for t in "${tests[@]}"; do
  if out="$(cd "$testdir" && promtool test rules "$(basename "$t")" 2>&1)"; then
    pass "promtool test rules $(basename "$t")"
  else
    fail "promtool test rules $(basename "$t")"; printf '%s\n' "$out" | grep -v '^$' | sed 's/^/    /'
  fi
done

# 3-5. structure, runbooks, coverage, metric names
if out="$(python3 - "$rules" "$testdir" "$repo/docs/operations.md" "$repo/docs/metrics.md" <<'PY'
import glob, os, re, sys, yaml

rules_path, testdir, ops_path, metrics_path = sys.argv[1:5]
results = []
def check(ok, msg):
    results.append((ok, msg))

doc = yaml.safe_load(open(rules_path))
alerts, records = [], []
for g in doc["groups"]:
    for r in g["rules"]:
        (alerts if "alert" in r else records).append(r)

# GitHub-style anchors of docs/operations.md headings.
anchors = set()
if os.path.exists(ops_path):
    in_code = False
    for line in open(ops_path, encoding="utf-8"):
        if line.startswith("```"):
            in_code = not in_code
        if in_code:
            continue
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            text = re.sub(r"`", "", m.group(1)).strip().lower()
            text = re.sub(r"[^\w\- ]", "", text)
            anchors.add(text.replace(" ", "-"))
else:
    check(False, "docs/operations.md missing")

prefix = "https://github.com/substrated/substrated/blob/main/docs/operations.md#"
sev_ok = {"critical", "warning", "info"}
for a in alerts:
    name = a["alert"]
    labels = a.get("labels") or {}
    ann = a.get("annotations") or {}
    problems = []
    if labels.get("severity") not in sev_ok:
        problems.append("severity %r" % labels.get("severity"))
    for k in ("summary", "description", "runbook_url"):
        if not str(ann.get(k, "")).strip():
            problems.append("no " + k)
    url = str(ann.get("runbook_url", ""))
    if not url.startswith(prefix):
        problems.append("runbook_url not into docs/operations.md: " + url)
    elif url[len(prefix):] not in anchors:
        problems.append("anchor #%s not in docs/operations.md" % url[len(prefix):])
    check(not problems, "alert %s: severity, summary, description, runbook anchor%s"
          % (name, (" -> " + "; ".join(problems)) if problems else ""))

# Coverage: each alert needs a firing and a not-firing case somewhere in the tests.
firing, quiet = set(), set()
for tf in sorted(glob.glob(os.path.join(testdir, "*.yml"))):
    td = yaml.safe_load(open(tf))
    for t in td.get("tests", []):
        for c in t.get("alert_rule_test", []) or []:
            (firing if c.get("exp_alerts") else quiet).add(c["alertname"])
for a in alerts:
    n = a["alert"]
    check(n in firing and n in quiet, "alert %s tested firing%s and not firing%s"
          % (n, "" if n in firing else " (MISSING)", "" if n in quiet else " (MISSING)"))

# Metric names used by the rules must be documented (or recorded here, or `up`).
documented = set(re.findall(r"\b(substrate_[a-z0-9_]+)\b", open(metrics_path).read()))
recorded = {r["record"] for r in records}
keywords = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
            "and", "or", "unless", "time", "increase", "rate", "changes", "max", "min", "sum",
            "count", "avg", "avg_over_time", "absent", "up"}
used = set()
for r in alerts + records:
    expr = re.sub(r'"[^"]*"', '""', r["expr"])           # drop label values
    expr = re.sub(r"\{[^}]*\}", "", expr)                # drop matchers
    used |= set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*=)", expr))
unknown = sorted(m for m in used
                 if (m.startswith("substrate_") and m not in documented)
                 or (":" in m and m not in recorded))
check(not unknown, "rule metrics documented in docs/metrics.md%s"
      % ((" -> unknown: " + ", ".join(unknown)) if unknown else ""))
check(len(alerts) > 0 and len(records) > 0, "%d alerts, %d recording rules" % (len(alerts), len(records)))

for ok, msg in results:
    print(("ok   - " if ok else "FAIL - ") + msg)
sys.exit(0 if all(ok for ok, _ in results) else 1)
PY
)"; then :; fi
while IFS= read -r line; do
  case "$line" in
    "ok   - "*) pass "${line#ok   - }" ;;
    "FAIL - "*) fail "${line#FAIL - }" ;;
    *) [[ -n "$line" ]] && echo "    $line" ;;
  esac
done <<< "$out"

finish
