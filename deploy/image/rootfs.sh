#!/bin/sh
# rootfs.sh BINARY DIR: lays out the file system of the zuul-bridge image in DIR, the part
# of the image that is not the Containerfile's metadata. Both image builds use it:
# deploy/image/build.sh (offline, with the build machine's files) and the Dockerfile's build
# stage (with the golang image's files), so both images have the same files.
#
#   /bridge                              the static binary (BINARY)
#   /etc/ssl/certs/ca-certificates.crt   the CA bundle (CA_BUNDLE, default: this machine's,
#                                        from Debian's ca-certificates package)
#   /etc/passwd, /etc/group              root and nonroot (65532), as distroless has them
#   /home/nonroot                        nonroot's home (the Containerfile gives it to 65532)
#   /tmp                                 1777, for `bridge demo`'s embedded NATS store
set -eu
umask 022

if [ "$#" -ne 2 ]; then
	echo "usage: rootfs.sh BINARY DIR" >&2
	exit 2
fi
bin=$1
dir=$2
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

if [ ! -s "$ca" ]; then
	echo "rootfs.sh: no CA bundle at $ca (install ca-certificates or set CA_BUNDLE)" >&2
	exit 1
fi
if ! grep -q 'BEGIN CERTIFICATE' "$ca"; then
	echo "rootfs.sh: $ca holds no PEM certificate" >&2
	exit 1
fi

rm -rf "$dir"
mkdir -p "$dir/etc/ssl/certs" "$dir/home/nonroot" "$dir/tmp"
install -m 0755 "$bin" "$dir/bridge"
install -m 0644 "$ca" "$dir/etc/ssl/certs/ca-certificates.crt"
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
chmod 0644 "$dir/etc/passwd" "$dir/etc/group"
chmod 0700 "$dir/home/nonroot"
chmod 1777 "$dir/tmp"
