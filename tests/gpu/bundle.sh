#!/usr/bin/env bash
# Makes the relocatable GPU bundle (the CMake target gpu-bundle, cmake/GpuBundle.cmake): what a
# GPU host needs to prove the CUDA backend without building anything there.
#
#   bin/substrated        the daemon with its embedded fatbin (the one that ships)
#   bin/substrate_tests   the test binary; its hidden [.gpu] group runs on the GPU
#   lib/                  every shared library the two need beyond a Debian 12 / Ubuntu 22.04+ base
#                         system (below), found with ldd; both binaries and these libraries carry
#                         RUNPATH $ORIGIN/../lib resp. $ORIGIN, so the bundle runs from any directory
#   run.sh                the runner (tests/gpu/run.sh)
#   substrated.service    the deploy unit (the runner compares peak RSS with its MemoryMax)
#   MANIFEST              version, commit, fatbin targets, libraries, glibc/libstdc++ needed, sha256s
# The test-only libcuda and NVML stand-ins are never put in. Debug info is stripped (symbols stay).
#
# Base libraries assumed on the host: glibc (libc, libm, libdl, libpthread, librt, the loader),
# libgcc_s, libstdc++ and libsystemd with its dependencies (all Priority: required in Debian 12 and
# Ubuntu, through apt itself). libcuda and libnvidia-ml are not linked: substrated dlopens them.
# The check below fails the build when a binary needs anything else from outside the bundle.
#
# Usage: bundle.sh OUT_DIR TARBALL SUBSTRATED SUBSTRATE_TESTS RUNNER UNIT VERSION FATBIN_TARGETS SOURCE_DIR
set -euo pipefail

if [[ $# -ne 9 ]]; then
  echo "usage: bundle.sh OUT_DIR TARBALL SUBSTRATED SUBSTRATE_TESTS RUNNER UNIT VERSION FATBIN_TARGETS SOURCE_DIR" >&2
  exit 2
fi
out=$1 tarball=$2 substrated=$3 tests=$4 runner=$5 unit=$6 version=$7 targets=$8 source_dir=$9
for tool in patchelf strip ldd objdump sha256sum tar gzip; do
  command -v "$tool" >/dev/null || { echo "bundle.sh: $tool not found (scripts/install-deps.sh)" >&2; exit 1; }
done

# Sonames a Debian 12 / Ubuntu 22.04+ host always has (see above).
base_re='^(linux-vdso\.so\.1|linux-gate\.so\.1|ld-linux[-a-z0-9_]*\.so\.[0-9]+|libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|libgcc_s\.so\.1|libstdc\+\+\.so\.6|libsystemd\.so\.0|libcap\.so\.2|libgcrypt\.so\.20|libgpg-error\.so\.0|liblzma\.so\.5|libzstd\.so\.1|liblz4\.so\.1)$'

rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
out=$(cd "$out" && pwd -P)
cp "$substrated" "$out/bin/substrated"
cp "$tests" "$out/bin/substrate_tests"

# The closure of shared libraries (ldd lists the transitive ones), base ones left to the host.
for elf in "$out"/bin/*; do
  while read -r soname path; do
    # A library without dependencies of its own: ldd says "statically linked".
    [[ "$soname" =~ $base_re || "$soname" == statically ]] && continue
    if [[ -z "$path" || "$path" == "not" ]]; then
      echo "bundle.sh: $(basename "$elf") needs $soname, which is not found on the build host" >&2
      exit 1
    fi
    [[ -e "$out/lib/$soname" ]] || cp -L "$path" "$out/lib/$soname"
  done < <(ldd "$elf" | awk '$2 == "=>" { print $1, $3; next } { print $1, "" }' | sed 's#^/.*/##')
done

for elf in "$out"/bin/* "$out"/lib/*; do
  chmod u+w "$elf"
  strip --strip-debug "$elf"
done
# shellcheck disable=SC2016  # $ORIGIN is for the dynamic loader, not the shell
for elf in "$out"/bin/*; do patchelf --set-rpath '$ORIGIN/../lib' "$elf"; done
# shellcheck disable=SC2016
for lib in "$out"/lib/*; do patchelf --set-rpath '$ORIGIN' "$lib"; done

# Check: with an empty environment, everything resolves inside the bundle or to a base library.
for elf in "$out"/bin/* "$out"/lib/*; do
  while read -r soname path; do
    if [[ "$soname" =~ $base_re || "$soname" == statically ]]; then continue; fi
    case "$(realpath -m "$path")" in
      "$out"/lib/*) ;;
      *) echo "bundle.sh: $(basename "$elf") resolves $soname to '$path', outside the bundle" >&2; exit 1 ;;
    esac
  done < <(env -i ldd "$elf" | awk '$2 == "=>" { print $1, $3; next } { print $1, "" }' | sed 's#^/.*/##')
done

cp "$runner" "$out/run.sh"
chmod 755 "$out/run.sh"
cp "$unit" "$out/substrated.service"

# The newest symbol versions any file asks of the host's glibc and libstdc++.
newest() {
  objdump -T "$out"/bin/* "$out"/lib/* 2>/dev/null | grep -o "($1_[0-9.]*)" | tr -d '()' | sort -uV | tail -n 1
}
commit=$(git -C "$source_dir" rev-parse HEAD 2>/dev/null || echo unknown)
{
  echo "# substrated GPU bundle: run ./run.sh on a host with an NVIDIA GPU and driver (docs/cuda.md)"
  echo "version $version"
  echo "commit $commit"
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m)"
  echo "fatbin_targets $targets"
  echo "host_needs $(newest GLIBC) $(newest GLIBCXX)"
  echo "host_libraries $(readelf -d "$out"/bin/* "$out"/lib/* | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u |
    while read -r soname; do [[ -e "$out/lib/$soname" ]] || printf '%s ' "$soname"; done)"
  echo "bundled_libraries $(cd "$out/lib" && printf '%s ' *)"
  (cd "$out" && find bin lib run.sh substrated.service -type f | sort | xargs sha256sum | sed 's/^/sha256 /')
} > "$out/MANIFEST"

tar -C "$(dirname "$out")" -czf "$tarball" "$(basename "$out")"
echo "GPU bundle: $out ($(du -sh "$out" | cut -f1)), $tarball ($(du -h "$tarball" | cut -f1))"
