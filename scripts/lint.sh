#!/usr/bin/env bash
# Lint checks run by the test command (ctest lint-format, lint-shell):
#   lint.sh format   every tracked C++/CUDA source is as clang-format (.clang-format) writes it
#   lint.sh shell    every tracked shell script passes shellcheck at severity warning (.shellcheckrc)
# Exit status 0 when clean; otherwise 1 and the offending files or findings.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  format)
    mapfile -t files < <(git ls-files '*.cpp' '*.hpp' '*.cu' '*.cuh')
    bad=()
    for f in "${files[@]}"; do
      clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
    done
    if [ ${#bad[@]} -gt 0 ]; then
      printf 'not clang-formatted (run: clang-format -i FILE): %s\n' "${bad[@]}"
      exit 1
    fi
    echo "clang-format: ${#files[@]} files clean"
    ;;
  shell)
    mapfile -t files < <(git ls-files '*.sh')
    shellcheck -S warning "${files[@]}"
    echo "shellcheck: ${#files[@]} scripts clean"
    ;;
  *)
    echo "usage: scripts/lint.sh format|shell" >&2
    exit 2
    ;;
esac
