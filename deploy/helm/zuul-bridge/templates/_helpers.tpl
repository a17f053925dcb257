{{/* Names and labels. */}}
{{- define "zuul-bridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Kept short: pod names add "-<ordinal>" and the StatefulSet a controller-revision hash label. */}}
{{- define "zuul-bridge.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "zuul-bridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "zuul-bridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "zuul-bridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "zuul-bridge.labels" -}}
helm.sh/chart: {{ include "zuul-bridge.chart" . }}
{{ include "zuul-bridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: zuul-bridge
{{- end }}

{{- define "zuul-bridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "zuul-bridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "zuul-bridge.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
The credentials in use: a list of {name, env, key}. With credentials.existingSecret a
credential is used when its key is set; otherwise when its value is set, under a fixed key.
*/}}
{{- define "zuul-bridge.credentials" -}}
{{- $c := .Values.credentials }}
{{- $table := list
  (list "mqttPassword" "BRIDGE_MQTT_PASSWORD_FILE" "mqtt-password")
  (list "natsPassword" "BRIDGE_NATS_PASSWORD_FILE" "nats-password")
  (list "natsToken" "BRIDGE_NATS_TOKEN_FILE" "nats-token")
  (list "natsCreds" "BRIDGE_NATS_CREDS_FILE" "nats.creds")
  (list "natsNkey" "BRIDGE_NATS_NKEY_FILE" "nats.nkey")
  (list "statuspageToken" "BRIDGE_STATUSPAGE_TOKEN_FILE" "statuspage-token")
  (list "zuulToken" "BRIDGE_ZUUL_TOKEN_FILE" "zuul-token")
  (list "statuspageOidcRefreshToken" "BRIDGE_STATUSPAGE_OIDC_REFRESH_TOKEN_FILE" "statuspage-oidc-refresh-token")
  (list "statuspageOidcClientSecret" "BRIDGE_STATUSPAGE_OIDC_CLIENT_SECRET_FILE" "statuspage-oidc-client-secret") }}
{{- $used := list }}
{{- range $table }}
{{- $name := index . 0 }}
{{- $entry := dict "name" $name "env" (index . 1) "file" (index . 2) }}
{{- if $c.existingSecret }}
{{- with index $c.keys $name }}
{{- $used = append $used (set $entry "key" .) }}
{{- end }}
{{- else if index $c.values $name }}
{{- $used = append $used (set $entry "key" (index . 2)) }}
{{- end }}
{{- end }}
{{- toJson $used }}
{{- end }}

{{/* The name of the Secret holding the credentials. */}}
{{- define "zuul-bridge.secretName" -}}
{{- .Values.credentials.existingSecret | default (printf "%s-credentials" (include "zuul-bridge.fullname" .)) }}
{{- end }}

{{/* The TLS files of one side (dict "tls" .Values.mqtt.tls "prefix" "MQTT"): a list of {env, key, file}. */}}
{{- define "zuul-bridge.tlsFiles" -}}
{{- $t := .tls }}
{{- $prefix := .prefix }}
{{- $files := list }}
{{- if $t.secretName }}
{{- range $row := list (list "caKey" "CA_FILE" "ca.crt") (list "certKey" "CERT_FILE" "tls.crt") (list "keyKey" "KEY_FILE" "tls.key") }}
{{- with index $t (index $row 0) }}
{{- $files = append $files (dict "env" (printf "BRIDGE_%s_%s" $prefix (index $row 1)) "key" . "file" (index $row 2)) }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson $files }}
{{- end }}

{{/*
The ports of a comma-separated URL list, for the NetworkPolicy: the explicit port, or the
scheme's default.
*/}}
{{- define "zuul-bridge.urlPorts" -}}
{{- $defaults := dict "mqtt" 1883 "tcp" 1883 "mqtts" 8883 "ssl" 8883 "tls" 8883 "ws" 80 "wss" 443 "http" 80 "https" 443 "nats" 4222 }}
{{- if eq .kind "nats" }}{{- $_ := set $defaults "tls" 4222 }}{{- end }}
{{- $ports := dict }}
{{- range $u := splitList "," .urls }}
{{- $u = trim $u }}
{{- if $u }}
{{- $p := urlParse $u }}
{{- $port := regexFind ":[0-9]+$" $p.host | trimPrefix ":" }}
{{- if not $port }}
{{- $port = toString (required (printf "cannot tell the port of %q for the NetworkPolicy: write it into the URL" $p.host) (get $defaults $p.scheme)) }}
{{- end }}
{{- $_ := set $ports $port true }}
{{- end }}
{{- end }}
{{- toJson (keys $ports | sortAlpha) }}
{{- end }}

{{/* Refuse combinations that would lose or duplicate reports, with a message that says why. */}}
{{- define "zuul-bridge.validate" -}}
{{- $v := .Values }}
{{- if and (gt (int $v.replicaCount) 1) (not (regexMatch "^\\$share/[^/#+]+/." $v.mqtt.topic)) }}
{{- fail (printf "\n\nreplicaCount is %d but mqtt.topic %q is not a shared subscription.\nEvery pod would receive every report, so each would be published and turned into\nincidents several times. Use a topic like \"$share/zuul-bridge/%s\" (MQTT v5 shared\nsubscription: the broker hands each report to one pod), or set replicaCount: 1.\n" (int $v.replicaCount) $v.mqtt.topic (trimPrefix "$share/" $v.mqtt.topic)) }}
{{- end }}
{{- if not $v.mqtt.url }}{{ fail "mqtt.url is required (BRIDGE_MQTT_URL), e.g. mqtt://mosquitto:1883" }}{{ end }}
{{- if not $v.nats.url }}{{ fail "nats.url is required (BRIDGE_NATS_URL), e.g. nats://nats:4222" }}{{ end }}
{{- $creds := include "zuul-bridge.credentials" . | fromJsonArray }}
{{- $names := list }}
{{- range $creds }}{{ $names = append $names .name }}{{ end }}
{{- if and (has "natsPassword" $names) (not $v.nats.user) }}
{{- fail "credentials: a NATS password is configured but nats.user is empty; the bridge sends the password only together with the user" }}
{{- end }}
{{- if and (has "natsCreds" $names) (has "natsNkey" $names) }}
{{- fail "credentials: natsCreds and natsNkey are both set; NATS authenticates with one of them (a .creds file already holds the nkey seed)" }}
{{- end }}
{{- if and (not $v.statuspage.url) (not $v.rulesConfigMap.name) }}
{{- range $r := (get ($v.rules | default dict) "routes" | default list) }}
{{- if $r.statuspage }}
{{- fail (printf "rules: route %q has a statuspage: block, but statuspage.url is empty; the bridge would refuse to start" $r.name) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and $v.statuspage.oidc.issuer (has "statuspageToken" $names) }}
{{- fail "statuspage.oidc.issuer and credentials statuspageToken are both set; the bridge logs in with one of them (BRIDGE_STATUSPAGE_OIDC_ISSUER or BRIDGE_STATUSPAGE_TOKEN_FILE)" }}
{{- end }}
{{- if and (not $v.statuspage.oidc.issuer) (or (has "statuspageOidcRefreshToken" $names) (has "statuspageOidcClientSecret" $names)) }}
{{- fail "credentials: statuspageOidcRefreshToken or statuspageOidcClientSecret is set but statuspage.oidc.issuer is empty; the bridge refuses them without BRIDGE_STATUSPAGE_OIDC_ISSUER" }}
{{- end }}
{{- if and $v.statuspage.oidc.issuer (not $v.statuspage.url) }}
{{- fail "statuspage.oidc.issuer is set but statuspage.url is empty" }}
{{- end }}
{{- if and $v.zuul.url (not $v.zuul.tenants) }}
{{- fail (printf "\n\nzuul.url is %q but zuul.tenants is empty.\nThe reconciliation reads back the buildsets of the listed tenants only, and the bridge\nrefuses to start without them (BRIDGE_ZUUL_TENANTS). Set zuul.tenants, e.g. [scs], or\nleave zuul.url empty to turn the reconciliation off.\n" $v.zuul.url) }}
{{- end }}
{{- if and $v.podDisruptionBudget.enabled (not (kindIs "invalid" $v.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" $v.podDisruptionBudget.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set either minAvailable or maxUnavailable (the other to null), not both" }}
{{- end }}
{{- end }}

{{/* A number of seconds as a short duration: 8d, 26h, 90m, 45s (the largest whole unit). */}}
{{- define "zuul-bridge.seconds" -}}
{{- $s := int64 . -}}
{{- if and (gt $s 0) (eq (mod $s 86400) 0) }}{{ div $s 86400 }}d
{{- else if and (gt $s 0) (eq (mod $s 3600) 0) }}{{ div $s 3600 }}h
{{- else if and (gt $s 0) (eq (mod $s 60) 0) }}{{ div $s 60 }}m
{{- else }}{{ $s }}s
{{- end }}
{{- end }}
