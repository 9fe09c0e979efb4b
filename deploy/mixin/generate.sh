#!/usr/bin/env bash
# Regenerates the files the mixin owns (deploy/prometheus/substrated-rules.yml,
# deploy/grafana/substrated-dashboard.json, deploy/alertmanager/*.yml) from deploy/mixin with
# Debian's jsonnet (apt-get install jsonnet; scripts/install-deps.sh installs it).
#
# Usage: deploy/mixin/generate.sh [OUTDIR]     (default: deploy/, i.e. in place)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/..}"
command -v jsonnet >/dev/null 2>&1 || { echo "jsonnet not found (apt-get install jsonnet)" >&2; exit 1; }
files="$(jsonnet -J "$here" -S -e 'std.join("\n", std.objectFields(import "build.jsonnet"))')"
while IFS= read -r f; do
  mkdir -p "$out/$(dirname "$f")"
  # *.json: jsonnet's JSON output of an object; everything else: a string written as is (-S).
  case "$f" in *.json) mode=() ;; *) mode=(-S) ;; esac
  jsonnet -J "$here" "${mode[@]}" -e "(import 'build.jsonnet')['$f']" > "$out/$f.tmp"
  mv "$out/$f.tmp" "$out/$f"
done <<< "$files"
