#!/usr/bin/env bash
# Builds the container image ghcr.io/substrated/substrated:<version> (deploy/container/Containerfile)
# from Debian 12 packages, with no container registry: the base image is made with debootstrap
# from Debian's archive (the mirror in /etc/apt/sources.list*) and imported with podman; the
# build runs with `--isolation chroot` (no `podman run` needed). Its proof stage runs
# `substrated probe --local` on lavapipe inside the image; the build fails if that fails.
#
# Usage (as root): scripts/build-image.sh [TAG]      (default ghcr.io/substrated/substrated:<version>)
# Environment: SUBSTRATE_IMAGE_WORK (scratch directory, default a mktemp under /var/tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
version="$(sed -n -E 's/^project\(substrated VERSION ([0-9.]+).*/\1/p' CMakeLists.txt)"
tag="${1:-ghcr.io/substrated/substrated:${version}}"
base=localhost/substrated-base:bookworm

missing=()
for tool in debootstrap podman; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap podman
fi

mirror="$( (cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null || true) |
  sed -n -E 's#^(URIs:|deb) *(http[^ ]*debian)/?( .*)?$#\2#p' | grep -v security | head -n 1 || true)"
mirror="${mirror:-http://deb.debian.org/debian}"

if ! podman image exists "$base"; then
  work="${SUBSTRATE_IMAGE_WORK:-$(mktemp -d /var/tmp/substrated-image.XXXXXX)}"
  trap 'rm -rf "$work"' EXIT
  echo "== debootstrap bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$work"/root/var/cache/apt/archives/*.deb "$work"/root/var/lib/apt/lists/*
  echo "== podman import $base"
  tar -C "$work/root" -c . | podman import - "$base" >/dev/null
fi

volumes=()
[ -x /usr/local/cuda/bin/nvcc ] && volumes=(-v /usr/local/cuda:/usr/local/cuda:ro)
echo "== podman build $tag"
podman build --isolation chroot "${volumes[@]}" --build-arg "BASE=$base" -f deploy/container/Containerfile -t "$tag" .
echo "== $tag"
podman image inspect "$tag" --format '{{.Id}} {{.Size}} bytes'
