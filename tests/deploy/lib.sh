# shellcheck shell=bash
# Shared by the deploy checks (sourced, not run): ok/FAIL lines counted into one summary line, and
# the checks for what a check needs before it can run. Also brings in scripts/lib.sh.
#
#   source "$here/lib.sh" deploy-NAME     # NAME labels the summary: "deploy-NAME: 3 passed, 0 failed"
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

deploy_check_name="$1"
passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   - $*"; }
fail() { failed=$((failed + 1)); echo "FAIL - $*"; }
# The summary line; succeeds only when nothing failed, so it can end a check.
finish() { echo "${deploy_check_name}: ${passed} passed, ${failed} failed"; [[ "$failed" -eq 0 ]]; }

# require_tools TOOL...: a missing tool fails the check at once.
require_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || { fail "$tool not found (scripts/install-deps.sh)"; finish; exit 1; }
  done
}

# python3 with PyYAML, installed with apt-get when missing and running as root; else the check fails.
require_pyyaml() {
  if ! python3 -c 'import yaml' 2>/dev/null; then
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
      apt-get install -y -q python3-yaml >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q python3-yaml >/dev/null 2>&1; } || true
    fi
    python3 -c 'import yaml' 2>/dev/null || { fail "python3 PyYAML missing (apt-get install python3-yaml)"; finish; exit 1; }
  fi
}

# Sets bin to $SUBSTRATED_BIN (default <repo>/build/substrated, with repo set by the check); a
# binary that is not executable fails the check at once.
require_substrated() {
  bin="${SUBSTRATED_BIN:-$repo/build/substrated}"
  [[ -x "$bin" ]] || { fail "substrated binary not found at $bin (build it, or set SUBSTRATED_BIN)"; finish; exit 1; }
}
