{{/* Chart name, at most 63 characters (a DNS label). */}}
{{- define "dle.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full resource name. The release name alone when it already contains the chart
name, so "dify-license-exporter" installed as itself is not doubled.
*/}}
{{- define "dle.fullname" -}}
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

{{/* Selector labels: stable across upgrades, so never add version labels here. */}}
{{- define "dle.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dle.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels on every resource. */}}
{{- define "dle.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "dle.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dify-license-exporter
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "dle.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dle.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "dle.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* True (non-empty) when the Kubernetes source runs and needs API access. */}}
{{- define "dle.kubernetesSource" -}}
{{- if eq .Values.source "kubernetes" }}true{{ end }}
{{- end }}

{{/* Name of the ConfigMap or Secret that carries the registry. */}}
{{- define "dle.registryObjectName" -}}
{{- if .Values.registry.existingConfigMap }}
{{- .Values.registry.existingConfigMap }}
{{- else if .Values.registry.existingSecret }}
{{- .Values.registry.existingSecret }}
{{- else }}
{{- printf "%s-registry" (include "dle.fullname" .) }}
{{- end }}
{{- end }}

{{/* Name of the Secret that carries the web configuration. */}}
{{- define "dle.webConfigSecretName" -}}
{{- default (printf "%s-web-config" (include "dle.fullname" .)) .Values.webConfig.existingSecret }}
{{- end }}

{{/* True (non-empty) when the exporter serves HTTPS. */}}
{{- define "dle.tls" -}}
{{- if and .Values.webConfig.enabled (or .Values.webConfig.tlsSecretName (hasKey .Values.webConfig.config "tls_server_config")) }}true{{ end }}
{{- end }}
