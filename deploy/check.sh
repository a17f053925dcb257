#!/usr/bin/env bash
# Offline checks of the Helm chart, called by .ci/run:
#   helm lint --strict; helm template with the default values and with every optional
#   feature on; every rendered document validated by tools/k8scheck (strict decoding and
#   the Kubernetes API schemas compiled into client-go; ServiceMonitor and PrometheusRule
#   against a hand-written allow-list of fields, see tools/k8scheck/crd.go); the hardening
#   policy; values.schema.json rejecting wrong types; the unsafe replicas/topic combination
#   refused with a clear message; a rules change rolling the pods.
# Needs Go; installs helm v3.22.0 with `go install` when it is missing (about 200 s, 1 GB).
# Exits non-zero on the first failure.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
chart=$root/deploy/helm/zuul-bridge
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

export PATH="$(go env GOPATH)/bin:$PATH"
[ -n "$(go env GOBIN)" ] && export PATH="$(go env GOBIN):$PATH"
if ! command -v helm >/dev/null; then
	echo "== installing helm v3.22.0 (go install, a few minutes)"
	go install helm.sh/helm/v3/cmd/helm@v3.22.0
fi
echo "== $(helm version --short 2>/dev/null || helm version)"

echo "== building tools/k8scheck"
(cd "$root/tools/k8scheck" && go build -o "$work/k8scheck" .)

fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
pass() { echo "ok   $*"; }

echo "== helm lint --strict"
helm lint --strict "$chart" >"$work/lint" 2>&1 || { cat "$work/lint"; fail "helm lint (default values)"; }
helm lint --strict "$chart" -f "$chart/ci/all-features-values.yaml" >"$work/lint" 2>&1 ||
	{ cat "$work/lint"; fail "helm lint (all features)"; }
[ "$fails" = 0 ] && pass "helm lint --strict (default values, all features)"

render() { # name, then helm template arguments
	local name=$1
	shift
	helm template zuul-bridge "$chart" --namespace zuul "$@" >"$work/$name.yaml" 2>"$work/$name.err"
}

echo "== render and validate"
for v in default all-features; do
	args=()
	[ "$v" = all-features ] && args=(-f "$chart/ci/all-features-values.yaml")
	if ! render "$v" "${args[@]}"; then
		cat "$work/$v.err" >&2
		fail "helm template ($v)"
		continue
	fi
	if "$work/k8scheck" -policy -q "$work/$v.yaml"; then
		pass "k8scheck -policy ($v values)"
	else
		fail "k8scheck ($v values)"
	fi
done
# The validator must not be vacuous: a misspelt field, a wrong type and a policy breach
# injected into the rendered manifests must each fail.
mutant() { # name, sed expression, expected message
	sed -e "$2" "$work/all-features.yaml" >"$work/mutant-$1.yaml"
	if "$work/k8scheck" -policy -q "$work/mutant-$1.yaml" 2>"$work/mutant-$1.err"; then
		fail "k8scheck accepted mutant $1"
	elif grep -q -- "$3" "$work/mutant-$1.err"; then
		pass "k8scheck rejects mutant $1: $(grep -m1 -o -- "$3.*" "$work/mutant-$1.err" | cut -c1-70)"
	else
		cat "$work/mutant-$1.err" >&2
		fail "k8scheck rejected mutant $1 without '$3'"
	fi
}
if [ -s "$work/all-features.yaml" ]; then
	mutant misspelt-field 's/periodSeconds: 10/periodSecond: 10/' 'unknown field'
	mutant wrong-type 's/^  replicas: 3/  replicas: "3"/' 'replicas'
	mutant policy 's/enableServiceLinks: false/enableServiceLinks: true/' 'enableServiceLinks must be false'
	mutant crd-field 's/^      scrapeTimeout: 10s/      scrapeTimeot: 10s/' 'unknown field'
fi
# Every optional kind must appear with all features on, or the validation above proved less.
for kind in StatefulSet Service ConfigMap Secret ServiceAccount ServiceMonitor PodDisruptionBudget NetworkPolicy PrometheusRule; do
	grep -q "^kind: $kind\$" "$work/all-features.yaml" 2>/dev/null || fail "all-features render has no $kind"
done

# expect_fail NAME PATTERN helm-template-args...: rendering must fail, saying PATTERN.
expect_fail() {
	local name=$1 pattern=$2
	shift 2
	if render "$name" "$@"; then
		fail "$name: helm template succeeded, expected an error matching '$pattern'"
	elif grep -Eq -- "$pattern" "$work/$name.err"; then
		pass "$name refused: $(grep -Eo -- "$pattern" "$work/$name.err" | head -1)"
	else
		cat "$work/$name.err" >&2
		fail "$name: failed, but without '$pattern'"
	fi
}

echo "== values.schema.json rejects wrong types"
expect_fail replicas-string "replicaCount.*got string, want integer" --set replicaCount=two
expect_fail port-string "port.*got string, want integer" --set-string http.port=8080
expect_fail bool-string "enabled.*got string, want boolean" --set-string serviceMonitor.enabled=yes
expect_fail bad-duration "sessionExpiry.*does not match pattern" --set-string mqtt.sessionExpiry=5
expect_fail bad-loglevel "level.*value must be one of" --set log.level=verbose
expect_fail typo "additional properties 'replicas' not allowed" --set replicas=2
expect_fail threshold-promql-matcher "thresholds/0/pipelines.*'not' failed" \
	--set 'prometheusRule.nightlyNotReported.thresholds[0].name=daily' --set 'prometheusRule.nightlyNotReported.thresholds[0].maxAgeSeconds=93600' \
	--set-string 'prometheusRule.nightlyNotReported.thresholds[0].pipelines=pipeline=~periodic-daily'
expect_fail threshold-incomplete "thresholds/0.*missing properties 'pipelines', 'maxAgeSeconds'" \
	--set 'prometheusRule.nightlyNotReported.thresholds[0].name=daily'
expect_fail nightly-old-keys "maxAgeSeconds and pipelineMatcher were replaced in chart 0.3.0 by prometheusRule.nightlyNotReported.thresholds" \
	--set prometheusRule.enabled=true --set prometheusRule.nightlyNotReported.maxAgeSeconds=93600
expect_fail bad-nightly-enabled "enabled.*value must be one of" --set prometheusRule.nightlyNotReported.enabled=sometimes

echo "== unsafe combinations are refused"
expect_fail replicas-without-share "not a shared subscription" --set replicaCount=2
expect_fail nats-password-without-user "nats.user is empty" --set credentials.values.natsPassword=x
expect_fail statuspage-rule-without-url "has a statuspage: block, but statuspage.url is empty" \
	--set 'rules.routes[0].name=r' --set 'rules.routes[0].statuspage.component=Zuul'
expect_fail zuul-url-without-tenants "zuul.tenants is empty" --set zuul.url=https://zuul.example.org
expect_fail oidc-and-static-token "statuspage.oidc.issuer and credentials statuspageToken are both set" \
	--set statuspage.url=https://status.example.org --set statuspage.oidc.issuer=https://idp.example.org \
	--set credentials.values.statuspageToken=x
expect_fail oidc-seed-without-issuer "statuspage.oidc.issuer is empty" \
	--set statuspage.url=https://status.example.org --set credentials.values.statuspageOidcRefreshToken=x
if render replicas-with-share --set replicaCount=2 --set 'mqtt.topic=$share/zuul-bridge/zuul/#'; then
	pass "replicaCount 2 with a \$share/ topic renders"
else
	cat "$work/replicas-with-share.err" >&2
	fail "replicaCount 2 with a \$share/ topic"
fi

echo "== a rules change rolls the pods"
checksum() { grep -m1 'checksum/rules:' "$work/$1.yaml" | awk '{print $2}'; }
render rules-changed --set 'rules.routes[0].name=other' --set 'rules.routes[0].nats.subject=x.{tenant}' || fail "render rules-changed"
a=$(checksum default) b=$(checksum rules-changed)
if [ -n "$a" ] && [ -n "$b" ] && [ "$a" != "$b" ]; then
	pass "checksum/rules changes with the rules ($a -> $b)"
else
	fail "checksum/rules did not change ('$a' vs '$b')"
fi

echo "== an external rules ConfigMap is reloaded, not checksummed"
render rules-external --set rulesConfigMap.name=my-rules || fail "render rules-external"
if grep -q 'checksum/rules' "$work/rules-external.yaml"; then
	fail "a checksum/rules annotation for an external ConfigMap (the bridge reloads it; no lookup)"
else
	pass "no checksum/rules annotation for an external ConfigMap"
fi
# A subPath mount never sees a ConfigMap update: the rules volume is mounted as a directory.
if grep -A2 'mountPath: /etc/zuul-bridge/rules' "$work/rules-external.yaml" | grep -q subPath; then
	fail "the rules volume is mounted with subPath: updates would never reach the pod"
else
	pass "the rules volume is a directory mount (ConfigMap updates reach the file)"
fi
grep -q 'lookup "' "$chart/templates/statefulset.yaml" && fail "the StatefulSet template uses lookup" || pass "no lookup in the StatefulSet template"

echo "== the OIDC login is wired and its issuer reachable"
grep -A1 'name: BRIDGE_STATUSPAGE_OIDC_ISSUER' "$work/all-features.yaml" | grep -q 'value: "https://status-idp.example.org:5556"' &&
	grep -q 'name: BRIDGE_STATUSPAGE_OIDC_REFRESH_TOKEN_FILE' "$work/all-features.yaml" &&
	grep -q 'port: 5556' "$work/all-features.yaml" &&
	pass "OIDC issuer, seed file and NetworkPolicy egress to the issuer" ||
	fail "OIDC issuer, seed file or the NetworkPolicy egress to the issuer missing"

echo "== the client id is the pod name"
grep -A1 'name: BRIDGE_MQTT_CLIENT_ID' "$work/all-features.yaml" | grep -q 'value: "scs-$(POD_NAME)"' &&
	pass "BRIDGE_MQTT_CLIENT_ID = prefix + pod name" || fail "BRIDGE_MQTT_CLIENT_ID is not derived from the pod name"

echo "== the image follows the chart's appVersion unless a tag or digest is set"
image_of() { grep -m1 -o 'image: "[^"]*"' "$work/$1.yaml" | cut -d'"' -f2; }
app_version=$(awk -F'"' '/^appVersion:/{print $2}' "$chart/Chart.yaml")
repo=ghcr.io/sovereigncloudstack/zuul-bridge
digest=sha256:$(printf '%064d' 7)
[ "$(image_of default)" = "$repo:$app_version" ] &&
	pass "default image $repo:$app_version (appVersion)" || fail "default image is '$(image_of default)', want $repo:$app_version"
render image-tag --set image.tag=v9.9.9 && [ "$(image_of image-tag)" = "$repo:v9.9.9" ] &&
	pass "image.tag wins over appVersion" || fail "image.tag: got '$(image_of image-tag)'"
render image-digest --set image.tag=v9.9.9 --set image.digest="$digest" && [ "$(image_of image-digest)" = "$repo@$digest" ] &&
	pass "image.digest pins the image and wins over the tag" || fail "image.digest: got '$(image_of image-digest)'"
expect_fail image-digest-bad "digest.*does not match pattern" --set image.digest=latest
# As the release workflow packages it: version X.Y.Z, appVersion the tag vX.Y.Z.
if helm package "$chart" --version 9.8.7 --app-version v9.8.7 -d "$work/pkg" >"$work/pkg.log" 2>&1 &&
	helm template zuul-bridge "$work/pkg/zuul-bridge-9.8.7.tgz" >"$work/packaged.yaml" 2>"$work/packaged.err" &&
	[ "$(image_of packaged)" = "$repo:v9.8.7" ]; then
	pass "packaged with --app-version v9.8.7: image $repo:v9.8.7"
else
	cat "$work/pkg.log" "$work/packaged.err" >&2
	fail "packaged with --app-version v9.8.7: image '$(image_of packaged 2>/dev/null)'"
fi

if [ "$fails" -ne 0 ]; then
	echo "deploy/check.sh: $fails failure(s)" >&2
	exit 1
fi
echo "deploy/check.sh: all chart checks passed"
