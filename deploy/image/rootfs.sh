#!/bin/sh
# rootfs.sh DIR: builds the zuul-bridge binary and lays out the file system of the container
# image in DIR. Both image builds run it, so both images hold the same files built the same
# way: deploy/image/build.sh (offline, with this machine's Go and CA bundle) and the
# Dockerfile's build stage (with the golang image's).
#
#   /bridge                              static (CGO off), -trimpath, -tags nodemo (no
#                                        embedded demo brokers), version and commit stamped
#   /etc/ssl/certs/ca-certificates.crt   the CA bundle of Debian's ca-certificates (CA_BUNDLE)
#   /etc/passwd, /etc/group              root, nobody and nonroot (65532), as in distroless
#   /home/nonroot                        nonroot's home (the Containerfile gives it to 65532)
#   /tmp                                 1777
#
# Environment: VERSION and COMMIT (stamped into `bridge version`; default dev and unknown),
# GOOS/GOARCH (cross-compiling, as the multi-arch release does), CA_BUNDLE. Run it from the
# repository root.
set -eu
umask 022

if [ "$#" -ne 1 ]; then
	echo "usage: rootfs.sh DIR" >&2
	exit 2
fi
dir=$1
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
version=${VERSION:-dev}
commit=${COMMIT:-unknown}

if ! grep -q 'BEGIN CERTIFICATE' "$ca" 2>/dev/null; then
	echo "rootfs.sh: no PEM CA bundle at $ca (install ca-certificates or set CA_BUNDLE)" >&2
	exit 1
fi

rm -rf "$dir"
mkdir -p "$dir/etc/ssl/certs" "$dir/home/nonroot" "$dir/tmp"
# -s -w: no symbol table and DWARF; -buildvcs=false: the version is stamped instead, and the
# build context of the Dockerfile has no .git.
CGO_ENABLED=0 go build -trimpath -buildvcs=false -tags nodemo \
	-ldflags "-s -w -X main.version=$version -X main.commit=$commit" \
	-o "$dir/bridge" ./cmd/bridge
chmod 0755 "$dir/bridge"
cp "$ca" "$dir/etc/ssl/certs/ca-certificates.crt"
cat >"$dir/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PASSWD
cat >"$dir/etc/group" <<'GROUP'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
GROUP
chmod 0644 "$dir/etc/passwd" "$dir/etc/group" "$dir/etc/ssl/certs/ca-certificates.crt"
chmod 0700 "$dir/home/nonroot"
chmod 1777 "$dir/tmp"
