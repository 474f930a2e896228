{{/*
Names, labels and the per-identity values every template shares.
*/}}

{{- define "telegram-emitter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<chart>, or the release name alone when it already contains the chart's name. */}}
{{- define "telegram-emitter.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "telegram-emitter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "telegram-emitter.labels" -}}
helm.sh/chart: {{ include "telegram-emitter.chart" . }}
app.kubernetes.io/name: {{ include "telegram-emitter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "telegram-emitter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "telegram-emitter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "telegram-emitter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "telegram-emitter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "telegram-emitter.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Checks the identities as a whole (unique names and instances, names short enough) and fails the render with
one line otherwise. Called once from the StatefulSet template.
*/}}
{{- define "telegram-emitter.checkIdentities" -}}
{{- $names := dict }}
{{- $instances := dict }}
{{- range .Values.identities }}
{{- $instance := default .name .instance }}
{{- if hasKey $names .name }}
{{- fail (printf "identities: name %q appears twice: every identity needs its own name" .name) }}
{{- end }}
{{- if hasKey $instances $instance }}
{{- fail (printf "identities: instance %q appears twice: two pods with one instance would fence each other's Kafka transactions" $instance) }}
{{- end }}
{{- $_ := set $names .name true }}
{{- $_ := set $instances $instance true }}
{{- $full := printf "%s-%s" (include "telegram-emitter.fullname" $) .name }}
{{- if gt (len $full) 52 }}
{{- fail (printf "identities: %q is longer than 52 characters (a StatefulSet's limit): shorten the release or identity name" $full) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The per-identity view: call with (dict "root" $ "id" $identity); returns YAML to read back with fromYaml.
Holds the resource name, instance, merged config, resources, persistence, drain timeout, the effective
source and which Secret keys exist.
*/}}
{{- define "telegram-emitter.identity" -}}
{{- $root := .root }}
{{- $id := .id }}
{{- $config := mustMergeOverwrite (deepCopy $root.Values.config) (deepCopy (default dict $id.config)) }}
{{- $secret := default dict $id.secret }}
{{- $source := default "auto" (dig "emitter" "source" "" $config) }}
{{- $effective := $source }}
{{- if eq $source "auto" }}
{{- if or $id.existingSecret $secret.apiId }}
{{- $effective = "telegram" }}
{{- else if dig "emitter" "export_path" "" $config }}
{{- $effective = "export" }}
{{- else if not (empty (dig "kafka" "bootstrap_servers" "" $config)) }}
{{- /* The emitter refuses this too: auto never publishes demo data into Kafka. */}}
{{- fail (printf "identities[%s]: source auto with Kafka needs a Telegram account (secret.apiId or existingSecret) or config.emitter.export_path; set config.emitter.source to demo to publish demo data on purpose" $id.name) }}
{{- else }}
{{- $effective = "demo" }}
{{- end }}
{{- end }}
fullname: {{ printf "%s-%s" (include "telegram-emitter.fullname" $root) $id.name | quote }}
name: {{ $id.name | quote }}
instance: {{ default $id.name $id.instance | quote }}
groups: {{ toJson (default list $id.groups) }}
source: {{ $effective | quote }}
drainTimeoutSeconds: {{ int (default $root.Values.drainTimeoutSeconds $id.drainTimeoutSeconds) }}
config: {{ toJson $config }}
resources: {{ toJson (default $root.Values.resources $id.resources) }}
persistence: {{ toJson (mustMergeOverwrite (deepCopy $root.Values.persistence) (deepCopy (default dict $id.persistence))) }}
secretName: {{ default (printf "%s-%s" (include "telegram-emitter.fullname" $root) $id.name) $id.existingSecret | quote }}
existingSecret: {{ not (empty $id.existingSecret) }}
hasSecret:
  apiId: {{ or (not (empty $id.existingSecret)) (not (empty (toString (default "" $secret.apiId)))) }}
  apiHash: {{ or (not (empty $id.existingSecret)) (not (empty $secret.apiHash)) }}
  session: {{ or (not (empty $id.existingSecret)) (not (empty $secret.session)) }}
  kafkaSaslPassword: {{ or (not (empty $id.existingSecret)) (not (empty $secret.kafkaSaslPassword)) }}
  schemaRegistryPassword: {{ or (not (empty $id.existingSecret)) (not (empty $secret.schemaRegistryPassword)) }}
  proxy: {{ or (not (empty $id.existingSecret)) (not (empty $secret.proxy)) }}
  mediaSecretAccessKey: {{ or (not (empty $id.existingSecret)) (not (empty $secret.mediaSecretAccessKey)) }}
{{- end }}

{{/* One INI value: lists joined with commas, whole numbers without an exponent. */}}
{{- define "telegram-emitter.iniValue" -}}
{{- if kindIs "slice" . }}
{{- $items := list }}
{{- range . }}
{{- $items = append $items (include "telegram-emitter.iniValue" .) }}
{{- end }}
{{- join ", " $items }}
{{- else if and (kindIs "float64" .) (eq . (floor .)) }}
{{- int64 . }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/*
config.ini of one identity: call with (dict "root" $ "view" $view). All four sections in a fixed order, keys
sorted and empty values left out, so the checksum only changes when the content does.
*/}}
{{- define "telegram-emitter.configIni" -}}
{{- $root := .root }}
{{- $view := .view }}
{{- $config := deepCopy $view.config }}
{{- $telegram := default dict (get $config "telegram") }}
{{- $_ := set $telegram "groups" $view.groups }}
{{- $_ := set $config "telegram" $telegram }}
{{- if $root.Values.kafkaCa.secretName }}
{{- $kafka := default dict (get $config "kafka") }}
{{- $_ := set $kafka "ssl_cafile" (printf "/etc/telegram-emitter/kafka-ca/%s" $root.Values.kafkaCa.key) }}
{{- $_ := set $config "kafka" $kafka }}
{{- end }}
{{- $lines := list (printf "# Rendered by the telegram-emitter chart for identity %s. Secrets come from the environment." $view.name) }}
{{- range $section := list "telegram" "kafka" "emitter" "telemetry" "media" }}
{{- $keys := default dict (get $config $section) }}
{{- $entries := list }}
{{- range $key := keys $keys | sortAlpha }}
{{- $value := get $keys $key }}
{{- if not (or (kindIs "invalid" $value) (and (kindIs "string" $value) (eq $value "")) (and (kindIs "slice" $value) (eq (len $value) 0))) }}
{{- $entries = append $entries (printf "%s = %s" $key (include "telegram-emitter.iniValue" $value)) }}
{{- end }}
{{- end }}
{{- $lines = append $lines "" }}
{{- $lines = append $lines (printf "[%s]" $section) }}
{{- $lines = concat $lines $entries }}
{{- end }}
{{- join "\n" $lines }}
{{- end }}

{{/*
The /tmp emptyDir's size limit of one identity: call with (dict "root" $ "view" $view). `tmpSizeLimit`, plus,
when media are on and spool into /tmp (no media.spool_dir), room for a file per download slot
(media.max_bytes x media.download_concurrency, the emitter's defaults when unset), in bytes.
*/}}
{{- define "telegram-emitter.tmpSizeLimit" -}}
{{- $root := .root }}
{{- $limit := toString $root.Values.tmpSizeLimit }}
{{- $media := default dict (get .view.config "media") }}
{{- if and (get $media "enabled") (empty (get $media "spool_dir")) }}
{{- $units := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 }}
{{- if not (regexMatch "^[0-9]+(k|M|G|T|Ki|Mi|Gi|Ti)?$" $limit) }}
{{- fail (printf "tmpSizeLimit %q: with media spooled into /tmp, expected a whole number with an optional k, M, G, T, Ki, Mi, Gi or Ti suffix" $limit) }}
{{- end }}
{{- $base := mul (int64 (regexFind "^[0-9]+" $limit)) (int64 (get $units (regexReplaceAll "^[0-9]+" $limit ""))) }}
{{- $maxBytes := int64 (default 104857600 (get $media "max_bytes")) }}
{{- $slots := int64 (default 2 (get $media "download_concurrency")) }}
{{- printf "%d" (add $base (mul $maxBytes $slots)) }}
{{- else }}
{{- $limit }}
{{- end }}
{{- end }}
