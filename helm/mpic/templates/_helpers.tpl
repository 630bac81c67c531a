{{/* Names, labels, images and the two service configurations. */}}

{{- define "mpic.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mpic.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "mpic.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mpic.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mpic.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "mpic.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mpic
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* image: (dict "root" $ "name" "perspective") */}}
{{- define "mpic.image" -}}
{{- $v := .root.Values.image -}}
{{- printf "%s%s:%s" $v.registry (index $v .name) (default .root.Chart.AppVersion $v.tag) -}}
{{- end -}}

{{- define "mpic.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mpic.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Kubernetes name of a perspective: (dict "root" $ "p" $entry) */}}
{{- define "mpic.perspectiveName" -}}
{{- printf "%s-perspective-%s" (include "mpic.fullname" .root) .p.code | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Whether the entry runs in this release: (dict "root" $ "p" $entry) -> "true" or "" */}}
{{- define "mpic.deployed" -}}
{{- if or (has "*" .root.Values.deployPerspectives) (has .p.code .root.Values.deployPerspectives) -}}true{{- end -}}
{{- end -}}

{{/* An entry with perspectiveDefaults filled in, as YAML: (dict "root" $ "p" $entry) */}}
{{- define "mpic.perspectiveSettings" -}}
{{- $d := deepCopy .root.Values.perspectiveDefaults -}}
{{- $p := deepCopy .p -}}
{{- toYaml (mergeOverwrite $d $p) -}}
{{- end -}}

{{/* The URL the coordinator calls: (dict "root" $ "p" $entry) */}}
{{- define "mpic.perspectiveUrl" -}}
{{- if .p.externalUrl -}}
{{- .p.externalUrl -}}
{{- else -}}
{{- $s := fromYaml (include "mpic.perspectiveSettings" .) -}}
{{- printf "https://%s.%s.svc:%d" (include "mpic.perspectiveName" .) .root.Release.Namespace (int $s.port) -}}
{{- end -}}
{{- end -}}

{{/* The resolver port: Unbound's. */}}
{{- define "mpic.unboundPort" -}}
{{- int .Values.unbound.port -}}
{{- end -}}

{{/* perspective.yaml of one entry: (dict "root" $ "p" $entry) */}}
{{- define "mpic.perspectiveConfig" -}}
{{- $s := fromYaml (include "mpic.perspectiveSettings" .) -}}
{{- $cfg := deepCopy (default dict $s.config) -}}
{{- if eq (int $s.port) (int $s.opsPort) -}}
{{- fail (printf "perspective %s: port and opsPort are both %d; the operations listener needs its own port" .p.code (int $s.port)) -}}
{{- end -}}
{{- $_ := set $cfg "listen" (printf "0.0.0.0:%d" (int $s.port)) -}}
{{- $_ := set $cfg "ops_listen" (printf "0.0.0.0:%d" (int $s.opsPort)) -}}
{{- $_ := set $cfg "perspective" (dict "code" .p.code "rir" .p.rir) -}}
{{- $resolver := default dict (get $cfg "resolver") -}}
{{- $_ := set $resolver "address" (printf "127.0.0.1:%s" (include "mpic.unboundPort" .root)) -}}
{{- $_ := set $cfg "resolver" $resolver -}}
{{- $_ := set $cfg "tls" (dict "certificate" "/etc/mpic/tls/tls.crt" "private_key" "/etc/mpic/tls/tls.key" "client_ca" "/etc/mpic/tls/ca.crt") -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* coordinator.yaml */}}
{{- define "mpic.coordinatorConfig" -}}
{{- $c := .Values.coordinator -}}
{{- $cfg := deepCopy (default dict $c.config) -}}
{{- if eq (int $c.port) (int $c.opsPort) -}}
{{- fail (printf "coordinator: port and opsPort are both %d; the operations listener needs its own port" (int $c.port)) -}}
{{- end -}}
{{- $conn := default dict (get $cfg "connections") -}}
{{- if gt (int (default 1024 $conn.max_per_peer)) (int (default 4096 $conn.max_open)) -}}
{{- fail (printf "coordinator.config.connections: max_per_peer (%d) must not exceed max_open (%d); lower both together" (int (default 1024 $conn.max_per_peer)) (int (default 4096 $conn.max_open))) -}}
{{- end -}}
{{- $_ := set $cfg "listen" (printf "0.0.0.0:%d" (int $c.port)) -}}
{{- $_ := set $cfg "ops_listen" (printf "0.0.0.0:%d" (int $c.opsPort)) -}}
{{- $_ := set $cfg "api_keys" (dict "file" (printf "/etc/mpic/secrets/api-keys/%s" $c.apiKeys.key)) -}}
{{- $_ := set $cfg "hash_secret" (dict "file" (printf "/etc/mpic/secrets/hash-secret/%s" $c.hashSecret.key)) -}}
{{- $_ := set $cfg "perspective_tls" (dict "certificate" "/etc/mpic/tls/tls.crt" "private_key" "/etc/mpic/tls/tls.key" "ca" "/etc/mpic/tls/ca.crt") -}}
{{- if $c.apiTls.existingSecret -}}
{{- $_ := set $cfg "api_tls" (dict "certificate" "/etc/mpic/api-tls/tls.crt" "private_key" "/etc/mpic/api-tls/tls.key") -}}
{{- end -}}
{{- $catalogue := list -}}
{{- range .Values.perspectives -}}
{{- $e := dict "code" .code "name" .name "rir" .rir "latitude" .latitude "longitude" .longitude "url" (include "mpic.perspectiveUrl" (dict "root" $ "p" .)) -}}
{{- if .tooCloseCodes -}}
{{- $_ := set $e "too_close_codes" .tooCloseCodes -}}
{{- end -}}
{{- $catalogue = append $catalogue $e -}}
{{- end -}}
{{- $_ := set $cfg "perspectives" $catalogue -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* terminationGracePeriodSeconds of a service: its shutdown section's pre-stop delay and drain
(default: the request deadline + 1 s), rounded up, plus 5 s for the process to exit, so that
the kubelet never kills a drain the configuration allows. (dict "cfg" $serviceConfig
"deadline" <request deadline in ms>) */}}
{{- define "mpic.terminationGrace" -}}
{{- $s := default dict .cfg.shutdown -}}
{{- $pre := 1000 -}}
{{- if hasKey $s "pre_stop_delay_ms" -}}{{- $pre = int $s.pre_stop_delay_ms -}}{{- end -}}
{{- $drain := add (int .deadline) 1000 -}}
{{- if hasKey $s "drain_timeout_ms" -}}{{- $drain = int $s.drain_timeout_ms -}}{{- end -}}
{{- add (div (add $pre $drain 999) 1000) 5 -}}
{{- end -}}

{{/* The request deadline of a perspective (limits.check_timeout_ms) or the coordinator
(timeouts.request_ms) in ms, from its rendered configuration. */}}
{{- define "mpic.perspectiveDeadline" -}}
{{- $l := default dict .limits -}}
{{- int (default 10000 $l.check_timeout_ms) -}}
{{- end -}}
{{- define "mpic.coordinatorDeadline" -}}
{{- $t := default dict .timeouts -}}
{{- int (default 15000 $t.request_ms) -}}
{{- end -}}

{{/* The Unbound additions (extra.d/extra.conf). */}}
{{- define "mpic.unboundExtra" -}}
# Added to the production unbound/unbound.conf by the mpic chart (values: unbound.*).
server:
{{- if ne (int .Values.unbound.port) 53 }}
    port: {{ int .Values.unbound.port }}
{{- end }}
{{- if not .Values.unbound.ipv6 }}
    do-ip6: no
{{- end }}
{{- with .Values.unbound.extraConfig }}
{{ . }}
{{- end }}
{{- end -}}

{{/* Container security context: (dict "uid" 10001) */}}
{{- define "mpic.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
