#!/usr/bin/env bash
# build.sh: builds the zuul-bridge container image offline and exports it as an OCI archive.
#
#   deploy/image/build.sh                  -> _out/image/zuul-bridge.oci.tar
#   VERSION=v1.2.3 deploy/image/build.sh   stamps another version (default: git describe)
#
# No registry is needed: the image is FROM scratch (deploy/image/Containerfile) and its files
# come from this machine (deploy/image/rootfs.sh: the binary built by the local Go, the CA
# bundle of Debian's ca-certificates). buildah builds it as root, with the vfs storage driver
# and chroot isolation, in a throw-away store, so it needs no daemon, no overlay mounts and no
# container runtime. deploy/image/check.sh checks the archive.
#
# Environment: VERSION, COMMIT (defaults from git), GOARCH (default: this machine's), OUT (the
# output folder, default _out/image), SOURCE_DATE_EPOCH (the image's creation time, default
# the commit time, so that the same commit builds the same image).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

export VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
export COMMIT=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
out=${OUT:-$root/_out/image}
archive=$out/zuul-bridge.oci.tar

if ! command -v buildah >/dev/null; then
	echo "build.sh: buildah is not installed (apt-get install buildah)" >&2
	exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
store=(--root "$work/storage" --runroot "$work/run" --storage-driver vfs)

echo "== binary and file system (deploy/image/rootfs.sh), version $VERSION, commit $COMMIT"
sh deploy/image/rootfs.sh "$work/rootfs"

echo "== buildah bud (FROM scratch, vfs, chroot isolation)"
# --identity-label=false: no io.buildah.version label, so that the labels are the same as the
# Dockerfile's image. --timestamp: reproducible creation times.
buildah "${store[@]}" bud --quiet --isolation chroot --identity-label=false \
	--timestamp "$epoch" \
	--build-context rootfs="$work/rootfs" \
	--build-arg VERSION="$VERSION" --build-arg COMMIT="$COMMIT" \
	-f deploy/image/Containerfile -t "localhost/zuul-bridge:build" "$work/rootfs" >"$work/id"

mkdir -p "$out"
rm -f "$archive"
buildah "${store[@]}" push --quiet "localhost/zuul-bridge:build" "oci-archive:$archive:zuul-bridge:$VERSION"
echo "== $archive ($(du -h "$archive" | cut -f1)), image id $(cat "$work/id")"
