#!/usr/bin/env bash
# One command for a host with an NVIDIA GPU and driver: builds substrated with the CUDA backend
# (required, not auto), then runs
#   1. the host-side CUDA tests          substrate_tests "[cuda]"
#   2. the GPU group                     substrate_tests "[gpu]"   (hidden by default)
#      CUDA probes exact/random on both GEMM paths, injection, memory, retention, every
#      registered probe, Vulkan-vs-CUDA agreement in exact mode
#   3. the CLI end to end                substrated devices; substrated probe --device cudaN;
#                                        a drill that must exit 1
# and writes everything to $BUILD_DIR/gpu-run.log (default build dir: <repo>/build-gpu) so the
# output can be recorded. Exit status: 0 only if every step passed.
#
# Environment: BUILD_DIR, JOBS (default nproc), SUBSTRATE_CUDA_ARCHS (e.g. "90" to build SASS for
# this GPU only; default: every target, i.e. the fatbin that ships), CUDA_DEVICE (default cuda0).
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$root/build-gpu}
jobs=${JOBS:-$(nproc)}
device=${CUDA_DEVICE:-cuda0}
mkdir -p "$build"
log="$build/gpu-run.log"
: > "$log"

say() { printf '\n==== %s\n' "$*" | tee -a "$log"; }
run() {
  printf '$ %s\n' "$*" | tee -a "$log"
  "$@" 2>&1 | tee -a "$log"
  return "${PIPESTATUS[0]}"
}

failed=0
step() {  # step NAME EXPECTED_RC COMMAND...
  local name=$1 expected=$2
  shift 2
  run "$@"
  local rc=$?
  if [[ $rc -ne $expected ]]; then
    say "FAILED: $name (exit $rc, expected $expected)"
    failed=1
  else
    say "ok: $name"
  fi
  return 0
}

say "substrated GPU run: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
run git -C "$root" rev-parse HEAD || true
if command -v nvidia-smi > /dev/null; then
  run nvidia-smi --query-gpu=index,name,uuid,pci.bus_id,driver_version,compute_cap --format=csv || true
else
  say "nvidia-smi not found (continuing: the backend only needs libcuda.so.1)"
fi

configure=(cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSUBSTRATE_CUDA=ON -DSUBSTRATE_WERROR=ON)
if [[ -n "${SUBSTRATE_CUDA_ARCHS:-}" ]]; then configure+=("-DSUBSTRATE_CUDA_ARCHS=${SUBSTRATE_CUDA_ARCHS}"); fi
say "configure"
run "${configure[@]}" || { say "FAILED: configure"; exit 2; }
say "build"
run cmake --build "$build" -j "$jobs" || { say "FAILED: build"; exit 2; }

tests="$build/tests/substrate_tests"
bin="$build/substrated"
say "host-side CUDA tests"
step "[cuda] tests" 0 "$tests" "[cuda]"
say "GPU tests"
step "[gpu] tests" 0 "$tests" "[gpu]" --durations yes
say "CLI"
step "devices" 0 "$bin" devices
step "probe on $device" 0 "$bin" probe --device "$device"
step "drill on $device (must be reported: exit 1)" 1 \
  "$bin" probe --device "$device" --kernel gemm --mode exact --dtype f16 --size 512 --inject bit=30,row=3,col=7

if [[ $failed -eq 0 ]]; then say "ALL PASSED (log: $log)"; else say "SOME STEPS FAILED (log: $log)"; fi
exit $failed
