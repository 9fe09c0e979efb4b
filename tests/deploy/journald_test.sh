#!/usr/bin/env bash
# The daemon's lines reach the journal's native socket at their priority with their structured
# fields, checked at the socket level: in a private mount namespace (unshare -m) a tmpfs over
# /run/systemd holds a datagram socket at /run/systemd/journal/socket, where libsystemd's
# sd_journal_send writes (the path journald listens on), read by a small receiver that decodes
# the native protocol (KEY=value lines, or KEY\n<le64 size><bytes>\n for values with newlines).
# stderr is a file whose device:inode is put in JOURNAL_STREAM, as systemd does for a service.
# The daemon runs gemm on lavapipe with a drill, so device lines (DEVICE, PROBE, SPEC, SEED) come.
# Needs root and unshare (mount namespaces); where they are missing the check says so and fails.
# Environment: SUBSTRATED_BIN (default <repo>/build/substrated), E2E_KEEP=1 keeps the work directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
source "$here/lib.sh" deploy-journald

require_tools unshare python3 curl stat
require_substrated
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

work="$(mktemp -d "${TMPDIR:-/tmp}/substrated-journald.XXXXXX")"
cleanup() { if [[ "${E2E_KEEP:-0}" == 1 ]]; then echo "# kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT

port="$(free_port)"
cat > "$work/substrated.yaml" <<CONF
listen: {address: 127.0.0.1, port: $port}
state_directory: $work/state
runtime_directory: $work/run
max_duty_cycle: 1.0
verdict: {slowdown_ratio: 100}
probes:
  gemm: {interval_seconds: 1, timeout_seconds: 30, size: "16", modes: [exact], dtypes: [f32], drill: "bit=30,row=0,col=0"}
  attention: {enabled: false}
  memory: {enabled: false}
CONF
cat > "$work/receiver.py" <<'PY'
import json, socket, struct, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sys.argv[1])
out = open(sys.argv[2], "a", buffering=1)
while True:
    data, fields = sock.recv(1 << 20), {}
    while data:
        line, _, rest = data.partition(b"\n")
        if b"=" in line:
            key, _, value = line.partition(b"=")
            data = rest
        else:  # binary-safe form: KEY\n<little-endian u64 size><value>\n
            key, (size,) = line, struct.unpack("<Q", rest[:8])
            value, data = rest[8:8 + size], rest[8 + size + 1:]
        fields[key.decode()] = value.decode(errors="replace")
    out.write(json.dumps(fields) + "\n")
PY

# Inside the namespace: tmpfs, receiver, daemon until a failing-run line arrives (or 90 s).
cat > "$work/inner.sh" <<EOF2
set -euo pipefail
mount -t tmpfs substrated-test /run/systemd
mkdir -p /run/systemd/journal
python3 "$work/receiver.py" /run/systemd/journal/socket "$work/journal.jsonl" &
receiver=\$!
for _ in \$(seq 50); do [[ -S /run/systemd/journal/socket ]] && break; sleep 0.1; done
: > "$work/stderr.log"
JOURNAL_STREAM="\$(stat -c %d:%i "$work/stderr.log")" "$bin" serve --config "$work/substrated.yaml" 2>>"$work/stderr.log" &
daemon=\$!
for _ in \$(seq 180); do grep -q '"SEED"' "$work/journal.jsonl" 2>/dev/null && break; sleep 0.5; done
kill -TERM \$daemon; wait \$daemon || true
kill \$receiver; wait \$receiver 2>/dev/null || true
EOF2
if ! unshare -m bash "$work/inner.sh" 2>"$work/unshare.err"; then
  fail "cannot run in a private mount namespace (root and unshare -m needed): $(head -c 300 "$work/unshare.err")"
  finish; exit 1
fi

result="$(python3 - "$work/journal.jsonl" <<'PY'
import json, sys
entries = [json.loads(l) for l in open(sys.argv[1])]
def show(e): return " ".join("%s=%s" % (k, e[k]) for k in sorted(e) if k != "MESSAGE") + " | " + e.get("MESSAGE", "")[:80]
print("count", len(entries))
print("ident", bool(entries) and all(e.get("SYSLOG_IDENTIFIER") == "substrated" for e in entries))
for p in "3467":
    hit = [e for e in entries if e.get("PRIORITY") == p]
    print("priority%s" % p, show(hit[0]) if hit else "-")
run = [e for e in entries if "SEED" in e and e.get("PRIORITY") == "4"]
print("run", show(run[0]) if run else "-")
ok = bool(run) and run[0].get("DEVICE", "").startswith("vulkan") and run[0].get("PROBE") == "gemm" \
    and run[0].get("SPEC") == "gemm/f32/exact/16x16x16" and run[0].get("SEED") == "1"
print("fields", ok)
PY
)"
echo "$result" | sed 's/^/# /'
line() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print }' <<< "$result"; }
[[ "$(line count)" -gt 3 ]] && pass "$(line count) entries reached the journal socket" || fail "no entries on the journal socket"
[[ "$(line ident)" == True ]] && pass "every entry has SYSLOG_IDENTIFIER=substrated" || fail "SYSLOG_IDENTIFIER missing"
[[ "$(line priority6)" != - ]] && pass "info lines at PRIORITY=6" || fail "no PRIORITY=6 entry"
[[ "$(line priority4)" != - ]] && pass "warnings at PRIORITY=4 (journalctl -p warning finds them)" || fail "no PRIORITY=4 entry"
[[ "$(line fields)" == True ]] && pass "the failing run's entry has DEVICE, PROBE, SPEC and SEED: $(line run)" ||
  fail "failing-run entry without the expected fields: $(line run)"
# Worker processes keep their own "worker[PID]: ..." stderr lines; the daemon's must not repeat there.
if grep -v '^worker\[' "$work/stderr.log" | grep -q .; then
  fail "daemon lines on stderr although the journal socket took them: $(grep -v '^worker\[' "$work/stderr.log" | head -n 3)"
else
  pass "no daemon line duplicated on stderr"
fi
finish
