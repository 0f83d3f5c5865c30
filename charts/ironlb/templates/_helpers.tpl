{{/* Names and labels shared by the templates. */}}

{{- define "ironlb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object's name: the release name, with the chart name
added unless the release name holds it already. Kept to 45 characters so
that the longest suffix ("-controller-metrics") fits in 63.
*/}}
{{- define "ironlb.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ironlb.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "ironlb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of a component; call with (list . "controller"). */}}
{{- define "ironlb.selectorLabels" -}}
{{- $top := index . 0 -}}
app.kubernetes.io/name: {{ include "ironlb.name" $top }}
app.kubernetes.io/instance: {{ $top.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "ironlb.image" -}}
{{- printf "%s:%s" .repository (default .appVersion .tag) }}
{{- end }}

{{- define "ironlb.memberlistSecret" -}}
{{- default (printf "%s-memberlist" (include "ironlb.fullname" .)) .Values.memberlist.existingSecret }}
{{- end }}

{{/*
The memberlist key as the Secret's data.key (base64): memberlist.key if
set, else the key of an earlier install (speakers with different keys
cannot talk), else 32 random bytes. Worked out once per rendering and
kept in .Values, so the Secret and the speakers' checksum agree.
*/}}
{{- define "ironlb.memberlistKey" -}}
{{- if not (hasKey .Values.memberlist "renderedKey") }}
{{- $key := "" }}
{{- if .Values.memberlist.key }}
{{- $key = .Values.memberlist.key | b64enc }}
{{- else }}
{{- $old := lookup "v1" "Secret" .Release.Namespace (include "ironlb.memberlistSecret" .) }}
{{- if and $old $old.data (index $old.data "key") }}
{{- $key = index $old.data "key" }}
{{- else }}
{{- $key = randBytes 32 | b64enc }}
{{- end }}
{{- end }}
{{- $_ := set .Values.memberlist "renderedKey" $key }}
{{- end }}
{{- index .Values.memberlist "renderedKey" }}
{{- end }}

{{/* Flags both binaries take. */}}
{{- define "ironlb.commonArgs" -}}
- --lb-class={{ .Values.loadBalancerClass }}
- --require-class={{ .Values.requireLoadBalancerClass }}
- --log-level={{ .Values.logLevel }}
- --log-format={{ .Values.logFormat }}
{{- end }}

{{/* A binary's API client limits; dig keeps an upgrade with --reuse-values
from a chart that had one pair for both working. */}}
{{- define "ironlb.kubeAPIArgs" -}}
{{- $defaults := dict "controller" (dict "qps" -1 "burst" 100) "speaker" (dict "qps" 50 "burst" 100) -}}
{{- $d := index $defaults .component -}}
- --kube-api-qps={{ dig .component "qps" $d.qps .root.Values.kubeAPI }}
- --kube-api-burst={{ dig .component "burst" $d.burst .root.Values.kubeAPI }}
{{- end }}

{{/* The container security context both components share. */}}
{{- define "ironlb.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* "true" when /metrics is served over HTTPS with authentication,
empty otherwise. dig keeps an upgrade with --reuse-values from a chart
without metrics.secure secure. */}}
{{- define "ironlb.metricsSecure" -}}
{{- if dig "secure" true .Values.metrics }}true{{ end }}
{{- end }}

{{/* How both components protect /metrics (values metrics.secure and
metrics.certSecret). */}}
{{- define "ironlb.metricsArgs" -}}
{{- if not (include "ironlb.metricsSecure" .) -}}
- --metrics-insecure=true
{{- else if .Values.metrics.certSecret -}}
- --metrics-cert-dir=/etc/ironlb/metrics-certs
{{- else -}}
- --metrics-insecure=false
{{- end }}
{{- end }}

{{/* The metrics certificate's volume mount and volume, when
metrics.certSecret names one; nothing otherwise. */}}
{{- define "ironlb.metricsCertMount" -}}
{{- if and (include "ironlb.metricsSecure" .) .Values.metrics.certSecret -}}
volumeMounts:
  - name: metrics-certs
    mountPath: /etc/ironlb/metrics-certs
    readOnly: true
{{- end }}
{{- end }}

{{- define "ironlb.metricsCertVolume" -}}
{{- if and (include "ironlb.metricsSecure" .) .Values.metrics.certSecret -}}
volumes:
  - name: metrics-certs
    secret:
      secretName: {{ .Values.metrics.certSecret }}
{{- end }}
{{- end }}
