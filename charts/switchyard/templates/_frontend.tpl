{{/*
The frontend's switchyard.yaml: what the chart derives (drain delay and shutdown grace from
`frontend.rollout`, the admin listener from `frontend.admin`, the plugin-host settings) with
`frontend.config` merged over it, so every key of docs/configuration.md can be set.
*/}}
{{- define "switchyard.frontend.config" -}}
{{- $r := .Values.frontend.rollout -}}
{{- $base := dict "limits" (dict "drain_delay_ms" (mul (int $r.drainDelaySeconds) 1000) "shutdown_grace_ms" (mul (int $r.shutdownGraceSeconds) 1000)) -}}
{{- if .Values.nats.enabled -}}
{{- $_ := set $base "nats" (include "switchyard.natsUrl" .) -}}
{{- end -}}
{{- if or .Values.modelOwners .Values.crossNamespacePlugins -}}
{{- $_ := set $base "kubernetes" (dict "model_owners" (.Values.modelOwners | default dict) "cross_namespace_plugins" (.Values.crossNamespacePlugins | default false)) -}}
{{- end -}}
{{- if .Values.frontend.admin.enabled -}}
{{- $_ := set $base "admin" (dict "listen" (printf "0.0.0.0:%d" (int .Values.frontend.admin.port))) -}}
{{- end -}}
{{- toYaml (mergeOverwrite $base (deepCopy (.Values.frontend.config | default dict))) -}}
{{- end -}}

{{/* Seconds a stopping frontend pod gets: preStop sleep, then the drain delay and shutdown
grace of the rendered config (so `frontend.config.limits` overrides count), plus a margin. */}}
{{- define "switchyard.frontend.terminationGrace" -}}
{{- $limits := (include "switchyard.frontend.config" . | fromYaml).limits | default dict -}}
{{- $drain := div (add (int ($limits.drain_delay_ms | default 0)) 999) 1000 -}}
{{- $grace := div (add (int ($limits.shutdown_grace_ms | default 30000)) 999) 1000 -}}
{{- add (int .Values.frontend.rollout.preStopSleepSeconds) $drain $grace 10 -}}
{{- end -}}

{{/* Non-empty when an admin token is configured (an existing Secret or a value). */}}
{{- define "switchyard.adminTokenConfigured" -}}
{{- if or .Values.frontend.adminToken.existingSecret .Values.frontend.adminToken.value -}}yes{{- end -}}
{{- end -}}

{{/*
Checksum that rolls the pods when the admin token changes. A chart-made Secret is hashed by
value; an existing Secret only by name and key (its content is not read at render time: no
`lookup`, so `helm template` and GitOps renders are stable) — restart after rotating it.
*/}}
{{- define "switchyard.adminTokenChecksum" -}}
{{- $t := .Values.frontend.adminToken -}}
{{- printf "%s/%s/%s" $t.existingSecret $t.key $t.value | sha256sum -}}
{{- end -}}

{{/* Non-empty when pods carry prometheus.io/* scrape annotations (never with a ServiceMonitor:
that would scrape every pod twice). */}}
{{- define "switchyard.podScrapeAnnotations" -}}
{{- if and .Values.metrics.podAnnotations (not .Values.metrics.serviceMonitor.enabled) -}}yes{{- end -}}
{{- end -}}

{{/* Replicas the frontend is guaranteed to have (the HPA's minimum when autoscaling). */}}
{{- define "switchyard.frontend.minReplicas" -}}
{{- if .Values.frontend.autoscaling.enabled -}}{{ int .Values.frontend.autoscaling.minReplicas }}{{- else -}}{{ int .Values.frontend.replicas }}{{- end -}}
{{- end -}}

{{/* URL of the chart's NATS. */}}
{{- define "switchyard.natsUrl" -}}
{{- printf "nats://%s-nats.%s.svc:4222" (include "switchyard.fullname" .) .Release.Namespace -}}
{{- end -}}
