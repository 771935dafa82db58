{{/* The chart's name, at most 63 characters. */}}
{{- define "chat-broker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: fullnameOverride, or release-chart (the release name alone when it already holds the chart's name). */}}
{{- define "chat-broker.fullname" -}}
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

{{- define "chat-broker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chat-broker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "chat-broker.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "chat-broker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The ConfigMap that holds the policy: the user's, or the chart's. */}}
{{- define "chat-broker.policyConfigMap" -}}
{{- if and .Values.policy.inline .Values.policy.existingConfigMap }}
{{- fail "policy: give policy.inline or policy.existingConfigMap, not both" }}
{{- else if .Values.policy.existingConfigMap }}
{{- .Values.policy.existingConfigMap }}
{{- else if .Values.policy.inline }}
{{- printf "%s-policy" (include "chat-broker.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- fail "policy: set policy.inline to your policy file's text, or policy.existingConfigMap to a ConfigMap holding it (see values.yaml)" }}
{{- end }}
{{- end }}

{{- define "chat-broker.image" -}}
{{- if not .Values.image.repository }}
{{- fail "image.repository: no chat-broker image is published; build deploy/Dockerfile, push it, and set image.repository (and image.tag)" }}
{{- end }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The exec probe command: the broker's own binary asks its loopback admin listener. */}}
{{- define "chat-broker.waitCommand" -}}
[/chat-broker, wait, --admin, "127.0.0.1:{{ .Values.ports.admin }}", --timeout, 1s]
{{- end }}

{{/*
The pod's Kubernetes service account: app.serviceAccountName, else, keyless
on GKE Workload Identity, the one the chart creates (serviceaccount.yaml).
*/}}
{{- define "chat-broker.serviceAccountName" -}}
{{- if and .Values.keyless.gcpServiceAccount (not .Values.keyless.impersonate) }}
{{- fail "keyless.gcpServiceAccount: only with keyless.impersonate (the Chat app's service-account email)" }}
{{- end }}
{{- if .Values.app.serviceAccountName }}
{{- .Values.app.serviceAccountName }}
{{- else if .Values.keyless.gcpServiceAccount }}
{{- include "chat-broker.fullname" . }}
{{- end }}
{{- end }}
