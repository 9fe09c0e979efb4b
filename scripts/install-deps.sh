#!/usr/bin/env bash
# Installs every Debian 12 package that building, running and testing substrated needs.
# Idempotent: apt is only called when something is missing.
set -euo pipefail
packages=(
  build-essential cmake pkg-config git clang-format shellcheck  # clang-format, shellcheck: scripts/lint.sh
  libboost-dev libboost-program-options-dev libspdlog-dev prometheus-cpp-dev libyaml-cpp-dev nlohmann-json3-dev catch2
  libvulkan-dev glslc mesa-vulkan-drivers vulkan-tools
  libsystemd-dev systemd
  libssl-dev libcrypt-dev zlib1g-dev  # gzip, TLS and bcrypt basic auth on the HTTP endpoint (daemon/web_config.cpp)
  prometheus python3 python3-yaml python3-numpy curl
  jsonnet prometheus-alertmanager  # deploy/mixin (generated rules, dashboard), tests/deploy/alertmanager_test.sh
  wrk prometheus-node-exporter  # bench/smoke.sh: scrape latency and footprint beside node_exporter
  libopenblas-dev  # bench/gemm.cpp: the CPU's own sgemm beside the GEMM probe
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc  # daemon/kubelet: the kubelet's pod-resources API
  dpkg-dev lintian bash-completion man-db  # tests/deploy/package_test.sh: cpack's dpkg-shlibdeps, lintian, completion and man page checks
  python3-torch  # probes/backends/torch: the reference external worker, tested on torch's CPU device
  patchelf  # tests/gpu/bundle.sh: RUNPATH of the relocatable GPU bundle (cmake/GpuBundle.cmake)
  chromium  # tests/deploy/report_browser_test.sh and the screenshot in docs/diag-report.md (headless)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# tests/deploy/manifests_test.sh renders the kustomize overlays with kubectl's built-in kustomize:
# any kubectl already installed serves; else Debian's (kubernetes-client).
if ! command -v kubectl >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends kubernetes-client || { apt-get update -qq && apt-get install -y -qq --no-install-recommends kubernetes-client; }
fi
