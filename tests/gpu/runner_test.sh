#!/usr/bin/env bash
# The GPU bundle and its runner, on a host without a GPU (ctest gpu-runner, cmake/GpuBundle.cmake):
#
#   A. the bundle: the files it promises, no stand-in inside, RUNPATH and NEEDED (readelf) resolve
#      to the bundle or to the libraries a Debian 12 / Ubuntu 22.04 host has, glibc no newer than
#      Debian 12's; the tarball unpacked elsewhere starts with an empty environment, and
#      `substrated devices` works without libcuda and NVML (this host has neither).
#   B. tests/gpu/run.sh end to end against the stand-ins: the fake nvidia-smi (tests/gpu/
#      fake_nvidia_smi.sh) on PATH, the libcuda stand-in (SUBSTRATE_CUDA_LIBRARY) and the NVML
#      stand-in (SUBSTRATE_NVML_LIBRARY, SUBSTRATE_NVML_STANDIN_SCRIPT) through the real dlopen
#      paths. Four GPUs: one idle (the libcuda stand-in's device), one busy, one in compute mode
#      Prohibited, one with MIG on. The results file must show the preflight, the three skips, and
#      every step that the stand-in can pass: devices, a [gpu] test, the memory probe, serve with
#      scrapes and peak RSS, NVML vs nvidia-smi.
#   C. failures are failures: a [gpu] test the stand-in fails (its kernels do nothing) and a
#      temperature nvidia-smi disagrees with make the run exit 1 with those steps marked; no
#      nvidia-smi fails the preflight; a missing bundle is a usage error (exit 2).
# The stand-in steps are chosen with the runner's SUBSTRATE_GPU_* variables; the GEMM and
# attention steps need a GPU (the stand-in's kernels do not compute).
#
# Environment (set by ctest): SUBSTRATE_GPU_BUNDLE, SUBSTRATE_GPU_BUNDLE_TARBALL,
# SUBSTRATE_FAKE_LIBCUDA, SUBSTRATE_NVML_STANDIN_DIR, SUBSTRATE_SANITIZED.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../deploy/lib.sh" gpu-runner

bundle=${SUBSTRATE_GPU_BUNDLE:?}
tarball=${SUBSTRATE_GPU_BUNDLE_TARBALL:?}
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-runner-test.XXXXXX")
trap 'rm -rf "$work"' EXIT

# ----------------------------------------------------------------------------- A: bundle
for f in bin/substrated bin/substrate_tests run.sh substrated.service MANIFEST; do
  [[ -f "$bundle/$f" ]] && pass "bundle has $f" || fail "bundle lacks $f"
done
strays=$(find "$bundle" \( -iname '*fake*' -o -iname '*standin*' -o -name 'libcuda*' -o -name 'libnvidia-ml*' \) | tr '\n' ' ')
[[ -z "$strays" ]] && pass "no stand-in in the bundle" || fail "stand-ins in the bundle: $strays"
# What a Debian 12 / Ubuntu 22.04 host provides (glibc, libgcc_s, libstdc++, libsystemd).
before=$failed
host_ok=" ld-linux-x86-64.so.2 ld-linux-aarch64.so.1 libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1 libgcc_s.so.1 libstdc++.so.6 libsystemd.so.0 "
for elf in "$bundle"/bin/* "$bundle"/lib/*; do
  name=${elf#"$bundle"/}
  runpath=$(readelf -d "$elf" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p')
  expected="\$ORIGIN/../lib"
  [[ "$name" == lib/* ]] && expected="\$ORIGIN"
  [[ "$runpath" == "$expected" ]] || fail "$name: RUNPATH '$runpath', expected '$expected'"
  for soname in $(readelf -d "$elf" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    [[ -f "$bundle/lib/$soname" || "$host_ok" == *" $soname "* ]] || fail "$name needs $soname: neither bundled nor on a base host"
  done
done
((failed == before)) && pass "readelf: RUNPATH set, every NEEDED bundled or a base library (bundled: $(cd "$bundle/lib" && printf '%s ' *))"
glibc=$(awk '/^host_needs / { print $2 }' "$bundle/MANIFEST")
if [[ -n "$glibc" ]] && printf '%s\n' "$glibc" GLIBC_2.36 | sort -C -V; then pass "needs $glibc (Debian 12 has 2.36)"; else
  fail "needs '$glibc', newer than Debian 12's GLIBC_2.36"; fi

# An empty environment, but for the sanitizers' settings in a sanitizer build (Mesa's suppressions).
clean_env=(env -i)
for var in ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS; do
  [[ -n "${!var:-}" ]] && clean_env+=("$var=${!var}")
done
mkdir -p "$work/elsewhere"
tar -C "$work/elsewhere" -xzf "$tarball" || fail "cannot unpack $tarball"
moved="$work/elsewhere/$(basename "$bundle")"
version=$(cd / && "${clean_env[@]}" "$moved/bin/substrated" version 2>&1)
[[ "$version" == "substrated "* ]] && pass "unpacked elsewhere, empty environment: $version" || fail "unpacked bundle does not start: $version"
devices=$(cd / && "${clean_env[@]}" "$moved/bin/substrated" devices 2>&1)
rc=$?
if [[ $rc -eq 0 && "$devices" == *"libcuda.so.1 not found"* && "$devices" == *"libnvidia-ml.so.1 not found"* ]]; then
  pass "substrated devices without libcuda and NVML: exit 0, both named as absent"
else
  fail "substrated devices without libcuda/NVML: rc=$rc: $devices"
fi
gpu_tests=$("${clean_env[@]}" "$moved/bin/substrate_tests" --list-test-names-only "[gpu]" | grep -c '^cuda:')
((gpu_tests >= 10)) && pass "the bundled test binary holds the [gpu] group ($gpu_tests tests)" || fail "[gpu] group: $gpu_tests tests"

# ------------------------------------------------------------------------- B: runner
mkdir -p "$work/bin"
ln -s "$here/fake_nvidia_smi.sh" "$work/bin/nvidia-smi"
idle=GPU-ab1200ff-0102-0304-0506-0708090a0bcd  # the libcuda stand-in's device (docs/testing.md)
smi_scenario() {  # smi_scenario TEMPERATURE_OF_GPU0
  cat <<EOF
0 uuid $idle
0 pci.bus_id 00000000:3B:00.0
0 name Fake GPU 80GB
0 driver_version 580.65.06
0 compute_cap 9.0
0 compute_mode Default
0 mig.mode.current Disabled
0 ecc.mode.current Enabled
0 persistence_mode Enabled
0 memory.total 81559
0 memory.used 0
0 temperature.gpu $1
0 enforced.power.limit 700.00
0 ecc.errors.corrected.aggregate.total 12
0 ecc.errors.uncorrected.aggregate.total 0
0 remapped_rows.correctable 1
0 remapped_rows.uncorrectable 0
1 uuid GPU-11111111-2222-3333-4444-555555555555
1 compute_mode Default
1 mig.mode.current Disabled
app 1 4242 python 30000
2 uuid GPU-22222222-2222-3333-4444-555555555555
2 compute_mode Prohibited
2 mig.mode.current Disabled
3 uuid GPU-33333333-2222-3333-4444-555555555555
3 compute_mode Default
3 mig.mode.current Enabled
EOF
}
cat >"$work/nvml.txt" <<EOF
devices 1
0 uuid $idle
0 pci 0000:3b:00.0
0 temperature.gpu 42
0 power_limit 700000
0 ecc.corrected.aggregate.total 12
0 ecc.uncorrected.aggregate.total 0
0 remapped_rows 1 0 0 0
EOF
runner() {  # runner RESULTS ARGS...: the runner against the stand-ins; its exit status
  local results=$1
  shift
  (cd "$work" && env PATH="$work/bin:$PATH" SUBSTRATE_FAKE_NVIDIA_SMI="$work/smi.txt" \
    SUBSTRATE_CUDA_LIBRARY="${SUBSTRATE_FAKE_LIBCUDA:?}" \
    SUBSTRATE_NVML_LIBRARY="${SUBSTRATE_NVML_STANDIN_DIR:?}/libnvidia-ml.so.1" SUBSTRATE_NVML_STANDIN_SCRIPT="$work/nvml.txt" \
    SUBSTRATE_GPU_PROBE_KERNELS=memory "$@" bash "$here/run.sh" --prebuilt "$bundle" --results "$results" --serve-seconds 8 \
    >"$results.out" 2>&1)
}
expect_line() {  # expect_line FILE REGEX WHAT
  if grep -Eq "$2" "$1"; then pass "$3"; else fail "$3: no line matching /$2/ in $1:"; sed 's/^/    /' "$1"; fi
}

smi_scenario 41 >"$work/smi.txt"
runner "$work/ok.txt" SUBSTRATE_GPU_STEPS=devices,gpu-test,probe,serve,telemetry \
  SUBSTRATE_GPU_TESTS="cuda: device identity is complete"
rc=$?
[[ $rc -eq 0 ]] && pass "runner against the stand-ins: exit 0" || { fail "runner exit $rc:"; sed 's/^/    /' "$work/ok.txt.out"; }
r="$work/ok.txt"
expect_line "$r" '^host driver=580\.65\.06 cuda=13\.0 gpus=4 under_test=1$' "preflight: driver and the CUDA version the driver reports"
expect_line "$r" "^gpu index=0 uuid=$idle pci=00000000:3B:00.0 .* compute_mode=Default mig=Disabled ecc=Enabled persistence=Enabled memory_used=0/81559MiB compute_processes=0 -> run$" \
  "preflight: modes and processes of the idle GPU, which is tested"
expect_line "$r" '^gpu index=1 .* -> SKIP busy: 1 compute process\(es\): pid 4242 python 30000 MiB$' "busy GPU skipped with its process"
expect_line "$r" '^gpu index=2 .* -> SKIP compute mode Prohibited' "compute mode Prohibited skipped"
expect_line "$r" '^gpu index=3 .* -> SKIP MIG enabled' "MIG-enabled GPU skipped"
expect_line "$r" '^step pass devices device=host .*cuda0=ab1200ff-0102-0304-0506-0708090a0bcd\(cuda 13\.0, fatbin-' "devices: the GPU is the CUDA device of the same UUID"
expect_line "$r" '^step pass gpu-test:"cuda: device identity is complete" device=gpu0 ' "a [gpu] test case ran on the GPU"
expect_line "$r" '^step pass probe device=gpu0 .*rc=0' "probe --local on the GPU"
# MemoryMax as the shipped unit sets it, in KiB (the runner reads the unit inside the bundle).
memory_max_kib="$(sed -n -E 's/^MemoryMax=([0-9]+)([KMG]?)$/\1 \2/p' "$here/../../deploy/systemd/substrated.service" |
  awk '{ print $1 * ($2 == "G" ? 1048576 : $2 == "M" ? 1024 : $2 == "K" ? 1 : 1 / 1024) }')"
expect_line "$r" "^step pass serve device=all .*scrapes=[1-9][0-9]* failed_scrapes=0 peak_rss=[1-9][0-9]*KiB .*memory_max=${memory_max_kib}KiB" \
  "serve: scrapes answered, peak RSS recorded against MemoryMax"
expect_line "$r" '^telemetry pass device=gpu0 id=cuda0 field=temperature\.gpu nvidia_smi=41 substrated=42$' "telemetry: temperature within 5 C"
expect_line "$r" '^telemetry pass device=gpu0 id=cuda0 field=enforced\.power\.limit nvidia_smi=700\.00 substrated=700$' "telemetry: power limit"
expect_line "$r" '^telemetry pass device=gpu0 id=cuda0 field=remapped_rows\.correctable nvidia_smi=1 substrated=1$' "telemetry: remapped rows"
expect_line "$r" '^step pass telemetry device=all .*compared=6$' "telemetry: six fields compared"
expect_line "$r" '^result pass passed=5 failed=0 ' "result line: five steps passed"
if grep -q 'device=gpu[123]' "$r"; then fail "a skipped GPU was tested"; else pass "no step touched a skipped GPU"; fi

# -------------------------------------------------------------------- C: failures
smi_scenario 80 >"$work/smi.txt"
runner "$work/bad.txt" SUBSTRATE_GPU_STEPS=gpu-test,serve,telemetry SUBSTRATE_GPU_TESTS="cuda: generator parity on the GPU"
rc=$?
[[ $rc -eq 1 ]] && pass "failing steps: exit 1" || fail "failing steps: exit $rc, expected 1"
expect_line "$work/bad.txt" '^step fail gpu-test:"cuda: generator parity on the GPU" device=gpu0 .*rc=1 expected=0' "a failing [gpu] test is a failed step"
expect_line "$work/bad.txt" '^telemetry fail device=gpu0 id=cuda0 field=temperature\.gpu nvidia_smi=80 substrated=42 ' "a temperature 38 C apart is a mismatch"
expect_line "$work/bad.txt" '^result fail passed=1 failed=2 ' "result line: one passed (serve), two failed"

(cd "$work" && env PATH=/usr/bin:/bin bash "$here/run.sh" --prebuilt "$bundle" --results "$work/nosmi.txt" >/dev/null 2>&1)
rc=$?
[[ $rc -eq 1 ]] && pass "no nvidia-smi: exit 1" || fail "no nvidia-smi: exit $rc"
expect_line "$work/nosmi.txt" '^step fail preflight device=host .*nvidia-smi not found' "no nvidia-smi: the preflight fails saying so"
out=$(bash "$here/run.sh" --prebuilt "$work/nothing" 2>&1)
rc=$?
[[ $rc -eq 2 && "$out" == *"no such directory"* ]] && pass "missing bundle: exit 2, '$out'" || fail "missing bundle: exit $rc: $out"
finish
