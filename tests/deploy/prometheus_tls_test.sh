#!/usr/bin/env bash
# A real Prometheus (Debian's `prometheus`) scrapes substrated over TLS with a client certificate
# and basic auth, from an exporter-toolkit web configuration (--web.config.file) with
# certificates made here by openssl (tests/support/make_test_certs.sh):
#   - curl: no credentials 401 with WWW-Authenticate, right ones 200, /healthz open, plain HTTP 400;
#   - Prometheus with the right credentials: up == 1 and substrate_build_info scraped; a second job
#     with a wrong password: up == 0 with a 401 as its scrape error;
#   - a broken web config at SIGHUP is refused (reload metric 0) and the old one keeps serving;
#   - a broken web config at start exits 78 naming the problem.
# Probes are all disabled: the endpoint is under test, not the GPU checks.
# Environment: SUBSTRATED_BIN (default <repo>/build/substrated), E2E_KEEP=1 keeps the work directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
source "$here/lib.sh" deploy-prometheus-tls

require_tools prometheus python3 curl openssl
require_substrated

work="$(mktemp -d "${TMPDIR:-/tmp}/substrated-tls.XXXXXX")"
daemon_pid="" prom_pid=""
cleanup() {
  local rc=$?
  stop_pid "$daemon_pid"; stop_pid "$prom_pid"
  if [[ "$failed" -gt 0 || "$rc" -ne 0 ]]; then
    for log in substrated prometheus; do
      [[ -s "$work/$log.log" ]] || continue
      echo "# --- last lines of $log.log"; tail -n 15 "$work/$log.log" | sed 's/^/#   /'
    done
  fi
  if [[ "${E2E_KEEP:-0}" == 1 ]]; then echo "# kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bash "$repo/tests/support/make_test_certs.sh" "$work/pki"
hash="$(python3 -W ignore -c 'import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))' 's3cret')"
daemon_port="$(free_port)"
prom_port="$(free_port)"
mkdir -p "$work/state" "$work/run" "$work/prom-data"

# Relative file names resolve against the web config's directory, as in exporter-toolkit.
cat > "$work/pki/web.yml" <<CONF
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_ca_file: ca.crt
  client_auth_type: RequireAndVerifyClientCert
basic_auth_users:
  prometheus: '$hash'
CONF
cat > "$work/substrated.yaml" <<CONF
listen:
  address: 0.0.0.0
  port: 1
state_directory: $work/state
runtime_directory: $work/run
probes:
  gemm: {enabled: false}
  attention: {enabled: false}
  memory: {enabled: false}
CONF

# ----------------------------------------------------------------- bad web config at start: 78
printf 'tls_server_config:\n  cert_file: server.crt\n' > "$work/pki/broken.yml"
rc=0
out="$("$bin" serve --config "$work/substrated.yaml" --web.config.file "$work/pki/broken.yml" \
  --web.listen-address "127.0.0.1:$daemon_port" 2>&1)" || rc=$?
if [[ "$rc" == 78 && "$out" == *"broken.yml"*"needs both cert_file and key_file"* ]]; then
  pass "a broken web config at start exits 78: $out"
else
  fail "broken web config at start: exit $rc, output: $out"
fi

# ------------------------------------------------------------------------------------- start
# --web.listen-address overrides the YAML's (port 1, which would fail to bind).
"$bin" serve --config "$work/substrated.yaml" --web.config.file "$work/pki/web.yml" \
  --web.listen-address "127.0.0.1:$daemon_port" >"$work/substrated.log" 2>&1 &
daemon_pid=$!
url="https://localhost:$daemon_port"
tls=(--cacert "$work/pki/ca.crt" --cert "$work/pki/client.crt" --key "$work/pki/client.key")
code() { curl -s -o /dev/null -w '%{http_code}' -m 5 "$@" || true; }
healthy() { [[ "$(code "${tls[@]}" "$url/healthz")" == 200 ]]; }
if wait_until 20 healthy; then pass "substrated serves TLS on 127.0.0.1:$daemon_port (--web.listen-address)"; else
  fail "substrated not serving https /healthz within 20s"; finish; exit 1; fi

[[ "$(code "${tls[@]}" "$url/metrics")" == 401 ]] && pass "no credentials: 401" || fail "no credentials: not 401"
header="$(curl -s -D - -o /dev/null -m 5 "${tls[@]}" "$url/status" | tr -d '\r' | grep -i '^www-authenticate:' || true)"
[[ "$header" == *"Basic realm="* ]] && pass "/status 401 carries $header" || fail "no WWW-Authenticate on /status: '$header'"
[[ "$(code "${tls[@]}" -u prometheus:wrong "$url/metrics")" == 401 ]] && pass "wrong password: 401" || fail "wrong password: not 401"
[[ "$(code "${tls[@]}" -u prometheus:s3cret "$url/metrics")" == 200 ]] && pass "right password: 200" || fail "right password: not 200"
[[ "$(code --cacert "$work/pki/ca.crt" -u prometheus:s3cret "$url/metrics")" == 000 ]] &&
  pass "no client certificate: the handshake is refused" || fail "served without a client certificate"
plain="$(curl -s -m 5 "http://127.0.0.1:$daemon_port/metrics" || true)"
[[ "$plain" == *"HTTP request to an HTTPS server"* ]] && pass "plain HTTP to the TLS port: 400 saying so" ||
  fail "plain HTTP to the TLS port: '$plain'"

# ------------------------------------------------------------------------------- Prometheus
cat > "$work/prometheus.yml" <<CONF
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: substrated
    scheme: https
    tls_config: &tls
      ca_file: $work/pki/ca.crt
      cert_file: $work/pki/client.crt
      key_file: $work/pki/client.key
      server_name: localhost
    basic_auth: {username: prometheus, password: s3cret}
    static_configs:
      - targets: ["127.0.0.1:$daemon_port"]
  - job_name: wrong-password
    scheme: https
    tls_config: *tls
    basic_auth: {username: prometheus, password: wrong}
    static_configs:
      - targets: ["127.0.0.1:$daemon_port"]
CONF
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prom-data" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$work/prometheus.log" 2>&1 &
prom_pid=$!
prom="http://127.0.0.1:$prom_port"
if wait_until 30 url_ok "$prom/-/ready"; then pass "prometheus ready"; else fail "prometheus not ready within 30s"; finish; exit 1; fi

targets() {  # one line per target: JOB HEALTH LAST_ERROR
  curl -s -m 3 "$prom/api/v1/targets" | python3 -c '
import json, sys
for t in json.load(sys.stdin)["data"]["activeTargets"]:
    print(t["labels"]["job"], t["health"], t["lastError"].replace("\n", " ") or "-")'
}
query() { curl -s -m 3 "$prom/api/v1/query" --data-urlencode "query=$1" | python3 -c '
import json, sys
print(" ".join(r["value"][1] for r in json.load(sys.stdin)["data"]["result"]) or "-")'; }
both_scraped() { T="$(targets)"; grep -q '^substrated up' <<< "$T" && grep -q '^wrong-password down' <<< "$T"; }
T=""
if wait_until 30 both_scraped; then pass "Prometheus scrapes over TLS with a client certificate and basic auth (up)"; else
  fail "targets not as expected within 30s: $T"; fi
[[ "$(grep '^wrong-password' <<< "$T")" == *401* ]] && pass "the wrong password's scrape error names 401" ||
  fail "wrong-password target: $(grep '^wrong-password' <<< "$T")"
v="$(query 'substrate_build_info{job="substrated"}')"
[[ "$v" == 1 ]] && pass "substrate_build_info scraped through TLS" || fail "substrate_build_info: $v"

# ------------------------------------------------- a broken web config at reload keeps the old
printf 'tls_server_config:\n  cert_file: server.crt\n  key_file: missing.key\n' > "$work/pki/web.yml"
kill -HUP "$daemon_pid"
reload_failed() { grep -q "reload: .*missing.key.*keeping the previous configuration" "$work/substrated.log"; }
if wait_until 10 reload_failed; then pass "reload with a broken web config refused: $(grep -o 'reload: .*' "$work/substrated.log" | tail -n1)"; else
  fail "no reload error naming missing.key in the log"; fi
m="$(curl -s -m 5 "${tls[@]}" -u prometheus:s3cret "$url/metrics" || true)"
[[ "$m" == *"substrate_config_last_reload_successful 0"* ]] && pass "old TLS and users still serve; reload metric 0" ||
  fail "after the broken reload: $(head -c 200 <<< "$m")"

finish
