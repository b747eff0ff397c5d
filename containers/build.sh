#!/usr/bin/env bash
# Build the CausalGeD images with podman on a Debian base made locally with debootstrap, so that
# no image registry is needed (only the Debian mirror and the Python package indexes).
#
# Usage: containers/build.sh [cpu|cuda|all] (default: cpu)   run as root (debootstrap needs it)
# Env:
#   BASE_TAG         local base image tag                (localhost/debian-bookworm-minbase:latest)
#   REBUILD_BASE=1   remake the base even if it exists
#   DEBIAN_MIRROR    mirror for debootstrap              (http://deb.debian.org/debian)
#   TORCH_INDEX_URL  where torch comes from              (the Dockerfile's default)
#   WHEELS_DIR       folder of local wheels, mounted into the build and given to pip as --find-links
#                    (e.g. a torch CPU wheel when download.pytorch.org is not reachable)
#   CA_BUNDLE        CA certificates file for pip, mounted into the build (TLS-inspecting proxies)
# Afterwards: tags localhost/causalged:<version> and localhost/causalged:<version>-cuda, each
# smoke-tested (causalged, a step script, multiqc, ps) without network.
# Singularity/Apptainer: podman save -o causalged.tar IMAGE; apptainer build causalged-<version>.sif docker-archive://causalged.tar
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${1:-cpu}"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "${root}/pyproject.toml" | head -n 1)"
base_tag="${BASE_TAG:-localhost/debian-bookworm-minbase:latest}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Smoke tests run offline, read-only, as a non-root user: as on an HPC node. runc when installed
# (crun cannot set rlimits in some sandboxes); nproc is lowered because raising it needs privileges.
podman_run=(podman)
if command -v runc >/dev/null; then
    podman_run+=(--runtime runc)
fi
podman_run+=(run --rm --network none --read-only -u 1000:1000 -w /tmp
             --ulimit nofile=20000:20000 --ulimit nproc=4096:4096)

for tool in podman debootstrap; do
    command -v "${tool}" >/dev/null || { echo "error: ${tool} not found (apt-get install podman debootstrap)" >&2; exit 1; }
done

make_base() {
    if podman image exists "${base_tag}" && [[ -z "${REBUILD_BASE:-}" ]]; then
        echo "base image ${base_tag} exists (REBUILD_BASE=1 to remake it)"
        return
    fi
    local rootfs
    rootfs="$(mktemp -d)"
    debootstrap --variant=minbase bookworm "${rootfs}" "${mirror}"
    tar -C "${rootfs}" -c . | podman import - "${base_tag}"
    rm -rf "${rootfs}"
}

build_image() {  # build_image DOCKERFILE TAG
    local args=(--isolation chroot --network host --ulimit nofile=20000:20000
                --build-arg "BASE_IMAGE=${base_tag}" -f "${root}/containers/$1" -t "$2")
    if [[ -n "${TORCH_INDEX_URL:-}" ]]; then
        args+=(--build-arg "TORCH_INDEX_URL=${TORCH_INDEX_URL}")
    fi
    if [[ -n "${WHEELS_DIR:-}" ]]; then
        args+=(-v "$(cd "${WHEELS_DIR}" && pwd):/wheels:ro" --build-arg "PIP_FIND_LINKS=/wheels")
    fi
    if [[ -n "${CA_BUNDLE:-}" ]]; then
        args+=(-v "$(realpath "${CA_BUNDLE}"):/run/build-ca.crt:ro" --build-arg "PIP_CERT=/run/build-ca.crt")
    fi
    podman build "${args[@]}" "${root}"
    "${podman_run[@]}" "$2" causalged --version
    "${podman_run[@]}" "$2" causalged-qc --help >/dev/null
    "${podman_run[@]}" "$2" multiqc --version
    "${podman_run[@]}" "$2" ps --version
    echo "built and smoke-tested $2"
}

make_base
case "${target}" in
    cpu)  build_image Dockerfile "localhost/causalged:${version}" ;;
    cuda) build_image Dockerfile.cuda "localhost/causalged:${version}-cuda" ;;
    all)  build_image Dockerfile "localhost/causalged:${version}"
          build_image Dockerfile.cuda "localhost/causalged:${version}-cuda" ;;
    *)    echo "usage: $0 [cpu|cuda|all]" >&2; exit 2 ;;
esac
