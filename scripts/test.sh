#!/usr/bin/env bash
# Installs dependencies, then builds and runs the whole suite twice: a -Werror build and an
# AddressSanitizer + UndefinedBehaviorSanitizer build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)
status=0
for variant in release asan; do
  dir=build-test-$variant
  flags=(-DSUBSTRATE_WERROR=ON)
  if [ $variant = asan ]; then
    flags+=(-DSUBSTRATE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
  else
    flags+=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
  fi
  echo "== $variant build"
  cmake -S . -B $dir "${flags[@]}" >/dev/null
  cmake --build $dir -j"$jobs"
  echo "== $variant tests"
  # Mesa's LLVM JIT keeps allocations until exit; leaks in the project's own code still fail.
  export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  (cd $dir && ctest --output-on-failure --timeout 900) || status=1
done
exit $status
