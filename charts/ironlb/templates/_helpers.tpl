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

{{/* Flags both binaries take. */}}
{{- define "ironlb.commonArgs" -}}
- --lb-class={{ .Values.loadBalancerClass }}
- --require-class={{ .Values.requireLoadBalancerClass }}
- --log-level={{ .Values.logLevel }}
- --log-format={{ .Values.logFormat }}
- --kube-api-qps={{ .Values.kubeAPI.qps }}
- --kube-api-burst={{ .Values.kubeAPI.burst }}
{{- end }}

{{/* The container security context both components share. */}}
{{- define "ironlb.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
seccompProfile:
  type: RuntimeDefault
{{- end }}
