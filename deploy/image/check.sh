#!/usr/bin/env bash
# check.sh [ARCHIVE]: checks the image that deploy/image/build.sh exported (default
# _out/image/zuul-bridge.oci.tar), without starting a container:
#   - config: user 65532:65532, entrypoint /bridge, cmd run, port 8080, the OCI labels
#     source, version, revision and licenses (version and revision those of this checkout,
#     or VERSION/COMMIT as given to build.sh);
#   - size: under 25 MB unpacked (as `podman images` shows it);
#   - files: `podman image mount` gives the root file system, which must hold exactly the
#     files of deploy/image/rootfs.sh with their modes and owners;
#   - the binary runs there: chroot into a copy of it as 65532:65532, `bridge version` prints
#     the stamped version and `bridge check` decides on a sample Zuul report;
#   - the Dockerfile's final stage is this Containerfile, so docker users get the same image.
# Needs podman (apt-get install podman) and root. Exits non-zero on the first failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
archive=${1:-$root/_out/image/zuul-bridge.oci.tar}
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
commit=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
max_bytes=25000000
sample=internal/samples/periodic-daily_failure_mixed.json

fail() {
	echo "FAIL: $*" >&2
	exit 1
}
pass() { echo "ok   $*"; }

[ -s "$archive" ] || fail "no image archive at $archive (run deploy/image/build.sh)"
command -v podman >/dev/null || fail "podman is not installed (apt-get install podman)"

work=$(mktemp -d)
podman=(podman --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
image=""
cleanup() {
	if [ -n "$image" ]; then
		"${podman[@]}" image unmount "$image" >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

echo "== load $archive ($(du -h "$archive" | cut -f1) compressed)"
"${podman[@]}" load --quiet -i "$archive" >"$work/load"
image=$("${podman[@]}" images --quiet --no-trunc | head -1)
[ -n "$image" ] || fail "podman load gave no image: $(cat "$work/load")"
echo "     $(cat "$work/load"), id $image"

echo "== config"
inspect() { "${podman[@]}" image inspect --format "$1" "$image"; }
expect() { # what, got, want
	[ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
	pass "$1 = $3"
}
expect "user" "$(inspect '{{.Config.User}}')" "65532:65532"
expect "entrypoint" "$(inspect '{{json .Config.Entrypoint}}')" '["/bridge"]'
expect "cmd" "$(inspect '{{json .Config.Cmd}}')" '["run"]'
expect "exposed ports" "$(inspect '{{json .Config.ExposedPorts}}')" '{"8080/tcp":{}}'
expect "os" "$(inspect '{{.Os}}')" "linux"
label() { inspect "{{index .Labels \"org.opencontainers.image.$1\"}}"; }
expect "label source" "$(label source)" "https://github.com/SovereignCloudStack/zuul-bridge"
expect "label version" "$(label version)" "$version"
expect "label revision" "$(label revision)" "$commit"
expect "label licenses" "$(label licenses)" "Apache-2.0"

echo "== size"
size=$(inspect '{{.Size}}')
[ "$size" -lt "$max_bytes" ] || fail "image is $size bytes unpacked, the limit is $max_bytes"
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
pass "size $(mb "$size") unpacked (limit $(mb "$max_bytes")), $(mb "$(stat -c %s "$archive")") as OCI archive"

echo "== files (podman image mount)"
mnt=$("${podman[@]}" image mount "$image")
(cd "$mnt" && find . -mindepth 1 -printf '%M %U:%G %p\n' | LC_ALL=C sort -k3) >"$work/files"
cat >"$work/want" <<'FILES'
-rwxr-xr-x 0:0 ./bridge
drwxr-xr-x 0:0 ./etc
-rw-r--r-- 0:0 ./etc/group
-rw-r--r-- 0:0 ./etc/passwd
drwxr-xr-x 0:0 ./etc/ssl
drwxr-xr-x 0:0 ./etc/ssl/certs
-rw-r--r-- 0:0 ./etc/ssl/certs/ca-certificates.crt
drwxr-xr-x 0:0 ./home
drwx------ 65532:65532 ./home/nonroot
drwxrwxrwt 0:0 ./tmp
FILES
diff -u "$work/want" "$work/files" >&2 || fail "the image's files differ from rootfs.sh's layout (- want, + got)"
pass "files, modes and owners as rootfs.sh lays them out"
grep -qx 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' "$mnt/etc/passwd" || fail "/etc/passwd has no nonroot 65532"
grep -qx 'nonroot:x:65532:' "$mnt/etc/group" || fail "/etc/group has no nonroot 65532"
pass "/etc/passwd and /etc/group name 65532 nonroot"
certs=$(grep -c 'BEGIN CERTIFICATE' "$mnt/etc/ssl/certs/ca-certificates.crt")
[ "$certs" -ge 50 ] || fail "the CA bundle holds $certs certificates"
pass "CA bundle with $certs certificates"
file_out=$(file -b "$mnt/bridge" 2>/dev/null || true)
case "$file_out" in
"") pass "binary: file(1) is not installed, not checked for static linking" ;;
*"statically linked"*) pass "binary: statically linked ($(echo "$file_out" | cut -d, -f1-2))" ;;
*) fail "binary is not static: $file_out" ;;
esac

echo "== the binary runs in the image's file system, as 65532:65532"
# A copy, so that the sample put into its /tmp does not change the image.
cp -a "$mnt/." "$work/rootfs"
cp "$sample" "$work/rootfs/tmp/sample.json"
run() { chroot --userspec=65532:65532 "$work/rootfs" /bridge "$@"; }
got=$(run version) || fail "bridge version exited $?"
expect "bridge version" "$got" "zuul-bridge $version (commit $commit)"
run check /tmp/sample.json >"$work/check" 2>&1 || { cat "$work/check" >&2; fail "bridge check /tmp/sample.json exited non-zero"; }
for want in 'route(s), valid' 'report [0-9a-f]*-FAILURE: action failure' 'MATCH:' 'nats subject: zuul\.scs\.periodic-daily\.'; do
	grep -q -- "$want" "$work/check" || { cat "$work/check" >&2; fail "bridge check output lacks '$want'"; }
done
pass "bridge check $sample: $(grep -m1 -o 'MATCH:.*' "$work/check" | cut -c1-70)"
printf 'not json' >"$work/rootfs/tmp/bad.json"
if run check /tmp/bad.json >"$work/bad" 2>&1; then
	fail "bridge check accepted a payload that is not a Zuul report"
fi
grep -q 'not a Zuul report' "$work/bad" || { cat "$work/bad" >&2; fail "bridge check on a bad payload: no 'not a Zuul report'"; }
pass "bridge check rejects a payload that is not a Zuul report"
if run demo >"$work/demo" 2>&1; then
	fail "bridge demo ran in the image: the binary was built without -tags nodemo"
fi
grep -q 'no demo' "$work/demo" || { cat "$work/demo" >&2; fail "bridge demo: unexpected output"; }
pass "bridge demo is left out (-tags nodemo)"

echo "== the Dockerfile's final stage is the Containerfile"
final_stage() { # from the last FROM line to the end, without comments and blank lines
	awk '/^FROM /{n=NR} {l[NR]=$0} END{for(i=n;i<=NR;i++) print l[i]}' "$1" | grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$'
}
diff -u <(final_stage deploy/image/Containerfile) <(final_stage Dockerfile) >&2 ||
	fail "the final stages of deploy/image/Containerfile (-) and Dockerfile (+) differ"
grep -q 'deploy/image/rootfs.sh' Dockerfile || fail "the Dockerfile does not build with deploy/image/rootfs.sh"
pass "same final stage, files from deploy/image/rootfs.sh"

echo "deploy/image/check.sh: the image passed"
