#!/usr/bin/env bash
# Proves the CUDA backend on a host with NVIDIA GPUs, from the prebuilt GPU bundle (the CMake
# target gpu-bundle; nothing is built here, so the fatbin tested is the one that ships):
#
#   tar xzf substrated-gpu-bundle-*.tar.gz && substrated-gpu-bundle/run.sh
#   tests/gpu/run.sh --prebuilt build/substrated-gpu-bundle          (from a source tree)
#
#   1. preflight  driver version, the CUDA version the driver reports, and per GPU compute mode,
#                 MIG mode, ECC mode, persistence mode and compute processes (nvidia-smi
#                 --query-gpu / --query-compute-apps). A GPU with compute processes, compute mode
#                 Prohibited or MIG enabled is skipped with one line saying why; the rest are
#                 the GPUs under test (CUDA_VISIBLE_DEVICES=<their UUIDs> for every step).
#   2. devices    `substrated devices --json`: each GPU under test is a CUDA device with the same
#                 UUID and PCI bus id.
#   Per GPU (CUDA_VISIBLE_DEVICES=<its UUID>, so it is cuda0):
#   3. gpu-test   each test case of the [gpu] group on its own (substrate_tests, hidden [.gpu]):
#                 identity, generator parity, GEMM exact/random on both paths, injection,
#                 attention, memory, retention, every registered probe (the canary: skipped),
#                 Vulkan-vs-CUDA, the adversarial exact GEMM (K=4096, same-sign inputs whose
#                 partial sums reach 2^24, uploaded to the shipped kernels), a run whose memory the
#                 device cannot give (skipped, not failed), and the memory kernels' bandwidth next
#                 to cuMemcpyDtoDAsync ("bandwidth:" lines are copied to the results file).
#   4. probe      `substrated probe --local --device cuda0`: every stable probe (exit 0).
#   5. drill      an injected flip in an exact f16 GEMM must be reported (exit 1).
#   6. gemm-k4096 exact GEMM at K=4096 (the longest K at the largest exact radius, R=64) in f32,
#                 f16 and bf16: bit-exact against the golden (exit 0).
#   Then, for all GPUs under test at once:
#   7. serve      `substrated serve` on 127.0.0.1 for SERVE_SECONDS (60) with /metrics scraped
#                 every 2 s: every scrape answers, every probe ran on every GPU without failure,
#                 and the peak RSS of the daemon plus its workers stays within the unit's MemoryMax.
#   8. telemetry  NVML values in the last scrape against `nvidia-smi --query-gpu` read right
#                 after: identity, temperature (within 5 C), enforced power limit (within 1 W),
#                 aggregate ECC counts, retired pages, remapped rows (where both report them).
#
# Every command runs with --local (never through an installed daemon) under `timeout`. Output:
# one results file (one line per fact; the last line is "result pass|fail ...") and a log with
# every command's full output next to it. Exit status 0 only when no step failed.
#
# Options: --prebuilt DIR (default: the directory of this script when it holds bin/substrated),
# --results FILE (default ./substrated-gpu-results-<UTC time>.txt), --serve-seconds N (60).
# Environment (all optional):
#   SUBSTRATE_GPU_STEPS          steps to run, comma-separated (default all:
#                                devices,gpu-test,probe,drill,gemm-k4096,serve,telemetry)
#   SUBSTRATE_GPU_TESTS          Catch2 test spec of the gpu-test step (default "[gpu]")
#   SUBSTRATE_GPU_PROBE_KERNELS  --kernel of the probe step and of serve (default: every stable probe)
#   SUBSTRATE_GPU_STEP_TIMEOUT   seconds per command (default 1800)
#   SUBSTRATE_SANITIZED=1        a sanitizer build: peak RSS is recorded, not held to MemoryMax
# The tests of this script (tests/gpu/runner_test.sh) use these to run it against stand-ins.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bundle=""
results=""
serve_seconds=60
usage() {
  sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --prebuilt) bundle=${2:-}; shift 2 ;;
    --prebuilt=*) bundle=${1#*=}; shift ;;
    --results) results=${2:-}; shift 2 ;;
    --results=*) results=${1#*=}; shift ;;
    --serve-seconds) serve_seconds=${2:-}; shift 2 ;;
    --serve-seconds=*) serve_seconds=${1#*=}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (--help)" >&2; exit 2 ;;
  esac
done
if [[ -z "$bundle" && -x "$here/bin/substrated" ]]; then bundle=$here; fi
if [[ -z "$bundle" ]]; then
  echo "run.sh: no bundle: pass --prebuilt DIR (build it: cmake --build build --target gpu-bundle)" >&2
  exit 2
fi
bundle=$(cd "$bundle" 2>/dev/null && pwd) || { echo "run.sh: --prebuilt: no such directory" >&2; exit 2; }
bin=$bundle/bin/substrated
tests=$bundle/bin/substrate_tests
unit=$bundle/substrated.service
for f in "$bin" "$tests"; do
  [[ -x "$f" ]] || { echo "run.sh: $f missing or not executable: not a GPU bundle" >&2; exit 2; }
done
[[ -f "$unit" ]] || { echo "run.sh: $unit missing: not a GPU bundle" >&2; exit 2; }
[[ "$serve_seconds" =~ ^[0-9]+$ ]] || { echo "run.sh: --serve-seconds needs whole seconds" >&2; exit 2; }
steps=",${SUBSTRATE_GPU_STEPS:-devices,gpu-test,probe,drill,gemm-k4096,serve,telemetry},"
test_spec=${SUBSTRATE_GPU_TESTS:-[gpu]}
kernels=${SUBSTRATE_GPU_PROBE_KERNELS:-}
step_timeout=${SUBSTRATE_GPU_STEP_TIMEOUT:-1800}
results=${results:-$PWD/substrated-gpu-results-$(date -u +%Y%m%dT%H%M%SZ).txt}
log=${results%.txt}.log
: >"$results" || { echo "run.sh: cannot write $results" >&2; exit 2; }
: >"$log"
work=$(mktemp -d "${TMPDIR:-/tmp}/substrated-gpu.XXXXXX")
daemon_pid=""
cleanup() {
  if [[ -n "$daemon_pid" ]]; then
    kill -TERM "$daemon_pid" 2>/dev/null
    wait "$daemon_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# record LINE: one fact, to the results file and the terminal.
record() { echo "$*" | tee -a "$results"; }
passed=0 failed=0
# finish_step STATUS NAME DEVICE SECONDS DETAIL: one "step" line, counted.
finish_step() {
  if [[ "$1" == pass ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  record "step $1 $2 device=$3 seconds=$4 $5"
}
wanted() { [[ "$steps" == *",$1,"* ]]; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# run_cmd OUT CMD...: runs CMD under the step timeout with its output in OUT and the log; the
# exit status is CMD's (124 or 137: timed out).
run_cmd() {
  local out=$1
  shift
  printf '\n$ %s\n' "$*" >>"$log"
  timeout --kill-after=10 "$step_timeout" "$@" >"$out" 2>&1
  local rc=$?
  cat "$out" >>"$log"
  return $rc
}
# command_step NAME DEVICE EXPECTED_RC CMD...: a step that passes when CMD exits EXPECTED_RC.
command_step() {
  local name=$1 device=$2 expected=$3 start rc
  shift 3
  start=$(now)
  run_cmd "$work/out" "$@"
  rc=$?
  local why="rc=$rc expected=$expected"
  [[ $rc -eq 124 || $rc -eq 137 ]] && why="$why (timed out after ${step_timeout}s)"
  if [[ $rc -eq $expected ]]; then
    finish_step pass "$name" "$device" "$(elapsed "$start")" "$why"
  else
    finish_step fail "$name" "$device" "$(elapsed "$start")" "$why: $(grep -v '^\s*$' "$work/out" | tail -n 1 | cut -c1-200)"
  fi
}

# csv_query ARGS...: nvidia-smi CSV without header and units, fields split by ", " into "|".
smi() { timeout 30 nvidia-smi "$@" 2>>"$log"; }
csv_query() { smi "$@" --format=csv,noheader,nounits | sed 's/, /|/g'; }

# ------------------------------------------------------------------------------ preflight
record "# substrated GPU run (tests/gpu/run.sh): one fact per line; 'result' is the last line"
record "run started=$(date -u +%Y-%m-%dT%H:%M:%SZ) host=$(hostname) bundle=$bundle"
if [[ -f "$bundle/MANIFEST" ]]; then
  record "bundle $(grep -E '^(version|commit|fatbin_targets|host_needs) ' "$bundle/MANIFEST" | tr '\n' ' ')"
fi
record "bundle substrated=\"$("$bin" version 2>&1)\""

if command -v systemctl >/dev/null && systemctl is-active --quiet substrated 2>/dev/null; then
  # Its rounds would share the GPUs with this run (and its workers show as compute processes).
  record "note: substrated.service is active on this host; stop it for a clean run (systemctl stop substrated)"
fi

declare -a run_uuids=()
declare -A gpu_index=() gpu_pci=()
if ! command -v nvidia-smi >/dev/null; then
  finish_step fail preflight host 0 "nvidia-smi not found: no driver installed, or not on PATH"
else
  fields=index,uuid,pci.bus_id,name,driver_version,compute_cap,compute_mode,mig.mode.current,ecc.mode.current,persistence_mode,memory.total,memory.used
  if ! csv_query --query-gpu="$fields" >"$work/gpus" || [[ ! -s "$work/gpus" ]]; then
    finish_step fail preflight host 0 "nvidia-smi --query-gpu failed or listed no GPU (see $log)"
  else
    csv_query --query-compute-apps=gpu_uuid,pid,process_name,used_memory >"$work/apps" || :
    while IFS='|' read -r index uuid pci name _driver cc mode mig ecc persistence total used; do
      procs=$(awk -F'|' -v u="$uuid" '$1 == u { n++; s = s sep "pid " $2 " " $3 " " $4 " MiB"; sep = "; " }
              END { printf "%d%s", n, n ? " compute process(es): " s : "" }' "$work/apps")
      line="gpu index=$index uuid=$uuid pci=$pci name=\"$name\" compute_cap=$cc compute_mode=$mode mig=$mig ecc=$ecc persistence=$persistence memory_used=${used}/${total}MiB compute_processes=${procs%% *}"
      gpu_index[$uuid]=$index
      gpu_pci[$uuid]=$pci
      if [[ "${procs%% *}" != 0 ]]; then
        record "$line -> SKIP busy: $procs"
      elif [[ "$mode" == Prohibited ]]; then
        record "$line -> SKIP compute mode Prohibited: no CUDA context is allowed"
      elif [[ "$mig" == Enabled ]]; then
        record "$line -> SKIP MIG enabled: CUDA sees its MIG instances, not the GPU (not covered by this runner)"
      else
        record "$line -> run"
        run_uuids+=("$uuid")
      fi
    done <"$work/gpus"
    # The CUDA version the driver reports (cuDriverGetVersion), as `substrated devices` prints it
    # (api_version), asked of the GPUs under test only: a busy GPU gets no context of ours.
    cuda_version=unknown
    if [[ ${#run_uuids[@]} -gt 0 ]]; then
      cuda_version=$(CUDA_VISIBLE_DEVICES=$(IFS=,; echo "${run_uuids[*]}") "$bin" devices --json 2>>"$log" |
        awk -F'"' '/"api_version"/ { v = $4 } /"backend": "cuda"/ { print v; exit }')
    fi
    record "host driver=$(head -n 1 "$work/gpus" | cut -d'|' -f5) cuda=${cuda_version:-unknown} gpus=$(wc -l <"$work/gpus") under_test=${#run_uuids[@]}"
  fi
fi
if [[ ${#run_uuids[@]} -eq 0 ]]; then
  finish_step fail preflight host 0 "no GPU to test (every GPU skipped, or none listed)"
fi
visible=$(IFS=,; echo "${run_uuids[*]}")
export CUDA_DEVICE_ORDER=PCI_BUS_ID

# plain_uuid GPU-UUID: the form substrated prints (lower case, no GPU- prefix).
plain_uuid() { local u=${1#GPU-}; echo "${u,,}"; }
# plain_pci 00000000:3B:00.0 -> 0000:3b:00.0 (substrated's form).
plain_pci() { local p=${1,,}; echo "${p: -12}"; }

# -------------------------------------------------------------------------------- devices
if wanted devices && [[ -n "$visible" ]]; then
  start=$(now)
  CUDA_VISIBLE_DEVICES=$visible run_cmd "$work/devices.json" "$bin" devices --json
  rc=$?
  awk -F'"' '/^    \{/ { id = uuid = pci = backend = build = api = "" }
             /"id":/ { id = $4 } /"uuid":/ { uuid = $4 } /"pci_bus_id":/ { pci = $4 }
             /"backend":/ { backend = $4 } /"kernel_build":/ { build = $4 } /"api_version":/ { api = $4 }
             /^    \}/ { print backend, id, uuid, pci, api, build }' "$work/devices.json" >"$work/devices"
  missing=""
  for uuid in "${run_uuids[@]}"; do
    pci=$(awk -F'|' -v u="$uuid" '$2 == u { print $3 }' "$work/gpus")
    if ! awk -v u="$(plain_uuid "$uuid")" -v p="$(plain_pci "$pci")" '$1 == "cuda" && $3 == u && $4 == p { f = 1 } END { exit !f }' "$work/devices"; then
      missing="$missing $uuid"
    fi
  done
  found=$(awk '$1 == "cuda" { printf "%s%s=%s(cuda %s, %s)", s, $2, $3, $5, $6; s = " " }' "$work/devices")
  if [[ $rc -eq 0 && -z "$missing" ]]; then
    finish_step pass devices host "$(elapsed "$start")" "$found"
  else
    finish_step fail devices host "$(elapsed "$start")" "rc=$rc; not found as CUDA devices with the same UUID and PCI bus id:${missing:- none}; found: ${found:-none}"
  fi
fi

# --------------------------------------------------------------------------- per GPU
kernel_args=()
if [[ -n "$kernels" ]]; then kernel_args=(--kernel "$kernels"); fi
for uuid in "${run_uuids[@]}"; do
  device="gpu${gpu_index[$uuid]}"
  export CUDA_VISIBLE_DEVICES=$uuid
  if wanted gpu-test; then
    mapfile -t names < <("$tests" --list-test-names-only "$test_spec" 2>>"$log" | grep -v '^\s*$')
    if [[ ${#names[@]} -eq 0 ]]; then finish_step fail gpu-test "$device" 0 "no test matches '$test_spec'"; fi
    for name in "${names[@]}"; do
      # Catch2 reads the name as a test spec: escape its special characters.
      spec=$(printf '%s' "$name" | sed 's/[][,*~\\"]/\\&/g')
      command_step "gpu-test:\"$name\"" "$device" 0 "$tests" "$spec" --durations yes
      grep '^bandwidth:' "$work/out" | sed "s/^bandwidth:/bandwidth device=$device/" | while read -r line; do record "$line"; done
    done
  fi
  if wanted probe; then
    command_step probe "$device" 0 "$bin" probe --local --device cuda0 "${kernel_args[@]}" --timeout 120
  fi
  if wanted drill; then
    command_step drill "$device" 1 "$bin" probe --local --device cuda0 --kernel gemm --mode exact --dtype f16 \
      --size 512 --inject bit=30,row=3,col=7
  fi
  if wanted gemm-k4096; then
    for dtype in f32 f16 bf16; do
      command_step "gemm-k4096:$dtype" "$device" 0 "$bin" probe --local --device cuda0 --kernel gemm --mode exact \
        --dtype "$dtype" --size 1024x1024x4096 --timeout 120
    done
  fi
done
unset CUDA_VISIBLE_DEVICES

# ------------------------------------------------------------------------ serve, telemetry
# http_get PATH: the body of GET http://127.0.0.1:$port/PATH (bash's /dev/tcp: no curl needed).
http_get() {
  # shellcheck disable=SC2016  # expanded by the inner bash
  timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" "$2" >&3 && cat <&3' \
    _ "$port" "$1" 2>/dev/null | awk 'body { print } /^\r?$/ { body = 1 }'
}
# tree_rss_kib: VmRSS of the daemon plus every process below it (its workers), in KiB.
tree_rss_kib() {
  local pids=("$daemon_pid") all
  all=$(awk '{ print $1, $4 }' /proc/[0-9]*/stat 2>/dev/null)
  local i=0
  while [[ $i -lt ${#pids[@]} ]]; do
    mapfile -t -O "${#pids[@]}" pids < <(awk -v p="${pids[$i]}" '$2 == p { print $1 }' <<<"$all")
    i=$((i + 1))
  done
  for p in "${pids[@]}"; do awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null; done | awk '{ s += $1 } END { print s + 0 }'
}
# unit_kib KEY: a size setting of the unit (MemoryMax=256M) in KiB.
unit_kib() {
  sed -n -E "s/^$1=([0-9]+)([KMG]?)$/\1 \2/p" "$unit" | awk '{ m = $2 == "K" ? 1 : $2 == "M" ? 1024 : $2 == "G" ? 1048576 : 1 / 1024; print int($1 * m) }'
}
# metric NAME LABEL=\"VALUE\"...: the value of the first sample of NAME carrying every label given.
metric() {
  local name=$1
  shift
  awk -v n="$name" -v want="$*" 'BEGIN { k = split(want, w, " ") }
    index($0, n "{") == 1 { for (i = 1; i <= k; i++) if (!index($0, w[i])) next; print $NF; exit }' "$work/metrics"
}

if { wanted serve || wanted telemetry; } && [[ -n "$visible" ]]; then
  start=$(now)
  # A loopback port nobody answers on (a refused connection), picked at random.
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
  done
  mkdir -p "$work/state" "$work/run"
  selectors=""
  for uuid in "${run_uuids[@]}"; do selectors="$selectors${selectors:+, }$(plain_uuid "$uuid")"; done
  {
    echo "listen: {address: 127.0.0.1, port: $port}"
    echo "state_directory: $work/state"
    echo "runtime_directory: $work/run"
    echo "devices: [$selectors]"
    if [[ -n "$kernels" ]]; then
      echo "probes:"
      for probe in gemm attention memory; do
        if [[ ",$kernels," == *",$probe,"* ]]; then echo "  $probe: {enabled: true}"; else echo "  $probe: {enabled: false}"; fi
      done
    fi
  } >"$work/serve.yaml"
  CUDA_VISIBLE_DEVICES=$visible "$bin" serve --config "$work/serve.yaml" >"$work/serve.log" 2>&1 &
  daemon_pid=$!
  peak=0 scrapes=0 bad_scrapes=0 up=0
  for _ in $(seq 1 40); do
    if http_get /healthz | grep -q .; then up=1; break; fi
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.5
  done
  deadline=$(($(date +%s) + serve_seconds))
  next_scrape=0
  while [[ $up -eq 1 ]] && (($(date +%s) < deadline)) && kill -0 "$daemon_pid" 2>/dev/null; do
    rss=$(tree_rss_kib)
    ((rss > peak)) && peak=$rss
    if (($(date +%s) >= next_scrape)); then
      scrapes=$((scrapes + 1))
      http_get /metrics >"$work/metrics.new"
      if grep -q '^substrate_build_info' "$work/metrics.new"; then mv "$work/metrics.new" "$work/metrics"; else bad_scrapes=$((bad_scrapes + 1)); fi
      next_scrape=$(($(date +%s) + 2))
    fi
    sleep 0.5
  done
  # A last scrape once telemetry has been read, for the comparison.
  for _ in $(seq 1 40); do
    http_get /metrics >"$work/metrics.new"
    if grep -q '^substrate_build_info' "$work/metrics.new"; then
      mv "$work/metrics.new" "$work/metrics"
      awk '/^substrate_telemetry_last_read_timestamp_seconds / { exit !($2 > 0) }' "$work/metrics" && break
    fi
    sleep 0.5
  done
  alive=0
  kill -0 "$daemon_pid" 2>/dev/null && alive=1
  hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$daemon_pid/status" 2>/dev/null)
  kill -TERM "$daemon_pid" 2>/dev/null
  wait "$daemon_pid"
  daemon_rc=$?
  daemon_pid=""
  { printf '\n$ substrated serve (%s s)\n' "$serve_seconds"; cat "$work/serve.log"; } >>"$log"
  [[ -f "$work/metrics" ]] && { echo "# last scrape"; cat "$work/metrics"; } >>"$log"
  touch "$work/metrics"

  if wanted serve; then
    problems=""
    [[ $up -eq 1 ]] || problems="$problems; /healthz never answered"
    [[ $alive -eq 1 ]] || problems="$problems; the daemon exited early"
    [[ $daemon_rc -eq 0 ]] || problems="$problems; exit status $daemon_rc after SIGTERM"
    ((bad_scrapes == 0 && scrapes > 0)) || problems="$problems; $bad_scrapes of $scrapes scrapes failed"
    probes=${kernels:-gemm,attention,memory}
    ids=$(awk -F'"' '/^substrate_device_info\{/ { for (i = 1; i < NF; i++) if ($i ~ /[{,]substrate_device=$/) print $(i + 1) }' "$work/metrics" | sort -u)
    [[ $(wc -w <<<"$ids") -eq ${#run_uuids[@]} ]] || problems="$problems; devices in /metrics: ${ids//$'\n'/ } (expected ${#run_uuids[@]})"
    for id in $ids; do
      for probe in ${probes//,/ }; do
        runs=$(metric substrate_probe_runs_total "substrate_device=\"$id\"" "probe=\"$probe\"")
        [[ "${runs:-0}" != 0 ]] || problems="$problems; $probe never ran on $id"
        bad=$(awk -v d="substrate_device=\"$id\"" -v p="probe=\"$probe\"" \
          'index($0, "substrate_probe_failures_total{") == 1 && index($0, d) && index($0, p) && $NF > 0' "$work/metrics")
        [[ -z "$bad" ]] || problems="$problems; $probe failed on $id: $(echo "$bad" | tr '\n' ' ')"
      done
    done
    memory_max=$(unit_kib MemoryMax)
    rss_text="peak_rss=${peak}KiB (daemon+workers, sampled every 0.5 s) daemon_vmhwm=${hwm:-?}KiB memory_max=${memory_max}KiB"
    if [[ "${SUBSTRATE_SANITIZED:-0}" == 1 ]]; then
      rss_text="$rss_text (sanitizer build: not compared)"
    elif ((peak == 0 || peak > memory_max)); then
      problems="$problems; peak RSS ${peak} KiB is above the unit's MemoryMax ${memory_max} KiB"
    fi
    detail="seconds_served=$serve_seconds scrapes=$scrapes failed_scrapes=$bad_scrapes $rss_text"
    if [[ -z "$problems" ]]; then finish_step pass serve all "$(elapsed "$start")" "$detail"; else
      finish_step fail serve all "$(elapsed "$start")" "$detail${problems}"; fi
  fi

  if wanted telemetry; then
    start=$(now)
    # nvidia-smi field, metric, labels, tolerance ("" = equal; "le" = substrated <= nvidia-smi,
    # a counter read earlier), unit scale (substrated value x scale = nvidia-smi unit).
    compare_fields=(
      "temperature.gpu|substrate_gpu_temperature_celsius|sensor=\"gpu\"|5|1"
      "enforced.power.limit|substrate_power_limit_watts||1|1"
      "ecc.errors.corrected.aggregate.total|substrate_ecc_errors_total|kind=\"corrected\" scope=\"aggregate\" location=\"total\"|le|1"
      "ecc.errors.uncorrected.aggregate.total|substrate_ecc_errors_total|kind=\"uncorrected\" scope=\"aggregate\" location=\"total\"|le|1"
      "retired_pages.sbe|substrate_retired_pages|cause=\"single_bit\"|le|1"
      "retired_pages.dbe|substrate_retired_pages|cause=\"double_bit\"|le|1"
      "remapped_rows.correctable|substrate_remapped_rows|kind=\"correctable\"|le|1"
      "remapped_rows.uncorrectable|substrate_remapped_rows|kind=\"uncorrectable\"|le|1"
    )
    compared=0 tel_failed=0
    for uuid in "${run_uuids[@]}"; do
      device="gpu${gpu_index[$uuid]}"
      # The identity labels as nvidia-smi prints them (docs/metrics.md#device-identity): UUID,
      # pci_bus_id and gpu equal to nvidia-smi's uuid, pci.bus_id and index.
      id=$(awk -F'"' -v u="$uuid" '/^substrate_device_info\{/ && index($0, "UUID=\"" u "\"") {
             for (i = 1; i < NF; i++) if ($i ~ /[{,]substrate_device=$/) { print $(i + 1); exit } }' "$work/metrics")
      if [[ -z "$id" ]]; then
        record "telemetry fail device=$device: no substrate_device_info with UUID=\"$uuid\" (nvidia-smi's form) in /metrics"
        tel_failed=$((tel_failed + 1))
        continue
      fi
      if [[ -z "$(metric substrate_device_info "substrate_device=\"$id\"" "pci_bus_id=\"${gpu_pci[$uuid]}\"" "gpu=\"${gpu_index[$uuid]}\"")" ]]; then
        record "telemetry fail device=$device id=$id: substrate_device_info lacks pci_bus_id=\"${gpu_pci[$uuid]}\" gpu=\"${gpu_index[$uuid]}\" (nvidia-smi's)"
        tel_failed=$((tel_failed + 1))
        continue
      fi
      if [[ -z "$(metric substrate_telemetry_source_info "substrate_device=\"$id\"" 'source="nvml"')" ]]; then
        record "telemetry fail device=$device id=$id: NVML is not joined to it (substrate_telemetry_source_info)"
        tel_failed=$((tel_failed + 1))
        continue
      fi
      for entry in "${compare_fields[@]}"; do
        IFS='|' read -r field name labels tolerance scale <<<"$entry"
        smi_value=$(csv_query -i "${gpu_index[$uuid]}" --query-gpu="$field" 2>/dev/null | head -n 1)
        # shellcheck disable=SC2086  # the labels are separate words
        ours=$(metric "$name" "substrate_device=\"$id\"" $labels)
        if [[ ! "$smi_value" =~ ^[0-9.]+$ || -z "$ours" ]]; then
          record "telemetry n/a device=$device id=$id field=$field nvidia_smi=\"${smi_value:-none}\" substrated=${ours:-absent}"
          continue
        fi
        compared=$((compared + 1))
        if awk -v a="$ours" -v b="$smi_value" -v t="$tolerance" -v s="$scale" 'BEGIN {
             a *= s; if (t == "le") exit !(a <= b); if (t == "") exit !(a == b); d = a - b; exit !(d <= t && -d <= t) }'; then
          record "telemetry pass device=$device id=$id field=$field nvidia_smi=$smi_value substrated=$ours"
        else
          record "telemetry fail device=$device id=$id field=$field nvidia_smi=$smi_value substrated=$ours (tolerance ${tolerance:-0})"
          tel_failed=$((tel_failed + 1))
        fi
      done
    done
    if ((tel_failed == 0 && compared > 0)); then
      finish_step pass telemetry all "$(elapsed "$start")" "compared=$compared"
    else
      finish_step fail telemetry all "$(elapsed "$start")" "compared=$compared mismatched_or_missing=$tel_failed"
    fi
  fi
fi

status=pass
((failed > 0 || passed == 0)) && status=fail
record "result $status passed=$passed failed=$failed results=$results log=$log"
[[ $status == pass ]]
