#!/usr/bin/env bash
# Checks the jsonnet mixin in deploy/mixin (Debian's jsonnet; scripts/install-deps.sh):
#   1. deploy/mixin/generate.sh into a temporary directory gives exactly the committed files
#      (deploy/prometheus/substrated-rules.yml, deploy/grafana/substrated-dashboard.json,
#      deploy/alertmanager/*.yml): edit the .libsonnet files and regenerate, never the output;
#   2. _config is honoured: with another job selector and runbook URL pattern, no rule or
#      dashboard query keeps the default selector and every runbook_url follows the pattern.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
mixin="$repo/deploy/mixin"
source "$here/lib.sh" deploy-mixin

require_tools jsonnet diff
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# 1. regenerate and compare
if out="$("$mixin/generate.sh" "$work/gen" 2>&1)"; then
  pass "deploy/mixin/generate.sh ran"
else
  fail "deploy/mixin/generate.sh: $out"; finish; exit 1
fi
files="$(cd "$work/gen" && find . -type f | sed 's|^\./||' | sort)"
[[ -n "$files" ]] || fail "the mixin generated no files"
while IFS= read -r f; do
  [[ -n "$f" ]] || continue
  if [[ ! -f "$repo/deploy/$f" ]]; then
    fail "deploy/$f is generated but not committed (run deploy/mixin/generate.sh)"
  elif d="$(diff -u "$repo/deploy/$f" "$work/gen/$f")"; then
    pass "deploy/$f equals the mixin output"
  else
    fail "deploy/$f differs from the mixin output (edit deploy/mixin/*.libsonnet, run deploy/mixin/generate.sh):"
    printf '%s\n' "$d" | head -n 20 | sed 's/^/    /'
  fi
done <<< "$files"

# 2. _config overrides reach every rule and query
cat > "$work/custom.jsonnet" <<'J'
local m = (import 'mixin.libsonnet') + {
  _config+:: { substratedSelector: 'job="gpu-check"', runbookURLPattern: 'https://wiki.example/%s' },
};
{
  rules: m.prometheusRules + m.prometheusAlerts,
  dashboard: m.grafanaDashboards['substrated-dashboard.json'],
}
J
if jsonnet -J "$mixin" "$work/custom.jsonnet" > "$work/custom.json" 2>"$work/custom.err"; then
  res="$(python3 - "$work/custom.json" <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))
rules = [r for g in d["rules"]["groups"] for r in g["rules"]]
dash = json.dumps(d["dashboard"])
problems = []
if 'job=\\"substrated\\"' in dash or any('job="substrated"' in r["expr"] for r in rules):
    problems.append("default selector left")
# Grouping clauses name labels (substrate_device), not series.
grouping = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
raw = [r.get("alert") or r.get("record") for r in rules
       if re.search(r"\b(substrate_[a-z0-9_]+|up)\b(?!\{[^}]*job=\"gpu-check\")", grouping.sub("", r["expr"]))]
if raw:
    problems.append("raw series without the selector in " + ", ".join(raw))
bad = [r["alert"] for r in rules if "alert" in r
       and r["annotations"]["runbook_url"] != "https://wiki.example/" + r["alert"].lower()]
if bad:
    problems.append("runbook_url not from the pattern: " + ", ".join(bad))
print("; ".join(problems) or "ok")
PY
)"
  if [[ "$res" == ok ]]; then pass "_config selector and runbook URL pattern reach every rule and dashboard query"
  else fail "_config override: $res"; fi
else
  fail "jsonnet with a _config override: $(head -n 3 "$work/custom.err")"
fi

finish
