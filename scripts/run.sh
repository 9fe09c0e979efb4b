#!/usr/bin/env bash
# Installs dependencies, builds substrated and probes every device (lavapipe when there is no GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSUBSTRATE_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)" --target substrated
./build/substrated devices
exec ./build/substrated probe "$@"
