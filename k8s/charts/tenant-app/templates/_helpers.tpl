{{/*
The chart's name (at most 63 characters, a DNS label).
*/}}
{{- define "tenant-app.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name: the release (the tenant) alone when it already
contains the chart's name, else "<release>-<chart>".
*/}}
{{- define "tenant-app.fullname" -}}
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

{{/*
"<chart>-<version>" for the helm.sh/chart label.
*/}}
{{- define "tenant-app.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The image tag: the tenant's application version, else the chart's appVersion.
*/}}
{{- define "tenant-app.version" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "tenant-app.labels" -}}
helm.sh/chart: {{ include "tenant-app.chart" . }}
{{ include "tenant-app.selectorLabels" . }}
app.kubernetes.io/version: {{ include "tenant-app.version" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the release's pods.
*/}}
{{- define "tenant-app.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tenant-app.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The service account the pods run as.
*/}}
{{- define "tenant-app.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tenant-app.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The tenant's public host (ingress.host is itself a template).
*/}}
{{- define "tenant-app.host" -}}
{{- tpl .Values.ingress.host . }}
{{- end }}
