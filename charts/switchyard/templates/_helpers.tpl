{{/* Chart name. */}}
{{- define "switchyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name prefix of every resource. */}}
{{- define "switchyard.fullname" -}}
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

{{/* Labels on every resource. */}}
{{- define "switchyard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "switchyard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: switchyard
{{- end -}}

{{/* Selector labels of one component; call with (dict "ctx" . "component" "frontend"). */}}
{{- define "switchyard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchyard.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
The namespaces watched in namespace scope, comma-separated (what `--namespaces` takes). The
single-namespace key of earlier chart versions is refused rather than silently ignored.
*/}}
{{- define "switchyard.watchNamespaces" -}}
{{- if hasKey .Values "watchNamespace" -}}
{{- fail "watchNamespace was replaced by the list watchNamespaces (e.g. --set 'watchNamespaces={models}')" -}}
{{- end -}}
{{- $list := .Values.watchNamespaces | default list -}}
{{- if or (not $list) .Values.watchReleaseNamespace -}}
{{- $list = append $list .Release.Namespace -}}
{{- end -}}
{{- join "," (sortAlpha (uniq $list)) -}}
{{- end -}}

{{/*
Image reference; call with (dict "ctx" . "image" .Values.frontend.image). `global.imageRegistry`
replaces the repository's registry host (its first path element when that has a `.` or `:` or
is `localhost`), so the registry is set once for every image.
*/}}
{{- define "switchyard.image" -}}
{{- $repo := .image.repository -}}
{{- $registry := "" -}}
{{- if .ctx.Values.global -}}{{- $registry = .ctx.Values.global.imageRegistry | default "" -}}{{- end -}}
{{- if $registry -}}
{{- $parts := splitList "/" $repo -}}
{{- $head := first $parts -}}
{{- if and (gt (len $parts) 1) (or (contains "." $head) (contains ":" $head) (eq $head "localhost")) -}}
{{- $repo = join "/" (rest $parts) -}}
{{- end -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" $registry) $repo -}}
{{- end -}}
{{- printf "%s:%s" $repo (default .ctx.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{- define "switchyard.frontend.serviceAccountName" -}}
{{- if .Values.frontend.serviceAccount.create -}}
{{- default (printf "%s-frontend" (include "switchyard.fullname" .)) .Values.frontend.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.frontend.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "switchyard.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (printf "%s-operator" (include "switchyard.fullname" .)) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Name of the Secret holding the admin token. */}}
{{- define "switchyard.adminSecretName" -}}
{{- default (printf "%s-admin" (include "switchyard.fullname" .)) .Values.frontend.adminToken.existingSecret -}}
{{- end -}}
