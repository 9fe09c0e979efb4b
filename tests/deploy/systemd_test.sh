#!/usr/bin/env bash
# Checks deploy/systemd/substrated.service with the tools of the target platform (systemd 252,
# Debian 12): `systemd-analyze verify` and `systemd-analyze security --offline=yes`, asserting an
# overall exposure <= 2.0, plus the settings the service contract requires.
#
# `systemd-analyze verify` fails when ExecStart= points at a missing binary. Until /usr/bin/substrated
# is installed, the unit is verified as a copy in a temporary directory whose ExecStart= binary path
# is replaced by an existing executable (the built binary when given, else /bin/true); every other
# line is unchanged. Set SUBSTRATED_BIN=/path/to/substrated to verify against a real build.
#
# Usage: tests/deploy/systemd_test.sh [UNIT_FILE]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
unit="${1:-$repo/deploy/systemd/substrated.service}"
max_exposure="${SUBSTRATED_MAX_EXPOSURE:-2.0}"
source "$here/lib.sh" deploy-systemd

require_tools systemd-analyze
[[ -f "$unit" ]] || { fail "no unit file at $unit"; finish; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

bin="${SUBSTRATED_BIN:-}"
if [[ -z "$bin" ]]; then
  if [[ -x /usr/bin/substrated ]]; then bin=/usr/bin/substrated; else bin=/bin/true; fi
fi
# ExecStart= needs an absolute path.
[[ "$bin" == /* ]] || bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
echo "# systemd: $(systemd-analyze --version | head -n1)"
echo "# verifying a copy with ExecStart binary -> $bin"
copy="$tmp/substrated.service"
sed -E "s#^(ExecStart=[-@:+!]*)/usr/bin/substrated#\1${bin}#" "$unit" > "$copy"
if ! grep -q "^ExecStart=.*${bin} serve --config /etc/substrated/substrated.yaml" "$copy"; then
  fail "ExecStart rewrite did not apply (unexpected ExecStart= line)"
fi

# 1. systemd-analyze verify: any output on stderr is a warning we treat as a failure.
if out="$(systemd-analyze verify "$copy" 2>&1)"; then
  if [[ -z "$out" ]]; then
    pass "systemd-analyze verify: clean"
  else
    fail "systemd-analyze verify printed warnings:"; echo "$out" | sed 's/^/    /'
  fi
else
  fail "systemd-analyze verify failed:"; echo "$out" | sed 's/^/    /'
fi

# 2. systemd-analyze security --offline=yes: overall exposure <= max.
sec="$(systemd-analyze security --offline=yes --no-pager "$copy" 2>&1 || true)"
exposure="$(printf '%s\n' "$sec" | sed -n -E 's/.*Overall exposure level for [^:]*: *([0-9]+(\.[0-9]+)?).*/\1/p' | tail -n1)"
if [[ -z "$exposure" ]]; then
  fail "could not parse exposure from systemd-analyze security output:"; echo "$sec" | tail -n5 | sed 's/^/    /'
elif awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e + 0 <= m + 0) }'; then
  pass "systemd-analyze security exposure $exposure <= $max_exposure"
else
  fail "systemd-analyze security exposure $exposure > $max_exposure"
  printf '%s\n' "$sec" | grep -F '✗' | sed 's/^/    /' || true
fi

# 3. Contract: directives the issue requires, with their exact values.
require() {  # require KEY VALUE: a line KEY=VALUE exists (after stripping trailing spaces)
  if grep -E -q "^$1=$(printf '%s' "$2" | sed 's/[]\/$*.^[]/\\&/g')[[:space:]]*$" "$unit"; then
    pass "$1=$2"
  else
    fail "missing or different: $1=$2"
  fi
}
require Type notify
require NotifyAccess main
require WatchdogSec 30s
require ExecStart "/usr/bin/substrated serve --config /etc/substrated/substrated.yaml"
require ExecReload '/bin/kill -HUP $MAINPID'
require Restart on-failure
require StateDirectory substrated
require RuntimeDirectory substrated
require ConfigurationDirectory substrated
require DevicePolicy closed
require ProtectSystem strict
require NoNewPrivileges yes
require SupplementaryGroups "render video"
# Sized from the measured footprint, equal to the DaemonSet's memory limit (docs/operations.md#resources).
require MemoryHigh 2560M
require MemoryMax 3G
for dev in 'char-nvidia\*' 'char-drm' 'char-accel'; do
  if grep -E -q "^DeviceAllow=${dev} rw" "$unit"; then pass "DeviceAllow=${dev//\\/} rw"; else fail "DeviceAllow ${dev//\\/} missing"; fi
done
if grep -E -q '^(DynamicUser=yes|User=[a-z_][a-z0-9_-]*)' "$unit"; then pass "unprivileged user"; else fail "no DynamicUser=yes or User="; fi

# 4. Settings that would hide or break the GPUs must stay off, with a comment saying why.
for key in PrivateDevices MemoryDenyWriteExecute; do
  if grep -E -q "^${key}=(yes|true|1|on)" "$unit"; then
    fail "$key is enabled (breaks GPU access)"
  elif grep -E -q "^#.*${key}" "$unit"; then
    pass "$key off, with a comment"
  else
    fail "$key: no comment explaining why it stays off"
  fi
done

finish
