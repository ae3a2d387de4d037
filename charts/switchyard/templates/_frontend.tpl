{{/*
The frontend's switchyard.yaml: what the chart derives (drain delay and shutdown grace from
`frontend.rollout`, the admin listener from `frontend.admin`, NATS, Kubernetes tenancy) in the
sectioned shape of docs/configuration.md, with `frontend.config` merged over it, so every key
can be set. A derived key whose deprecated flat spelling `frontend.config` already sets is left
out, so an old values file still renders a config the frontend accepts (old and new spelling of
one key together is a startup error).
*/}}
{{- define "switchyard.frontend.config" -}}
{{- $r := .Values.frontend.rollout -}}
{{- $user := deepCopy (.Values.frontend.config | default dict) -}}
{{- $oldLimits := $user.limits | default dict -}}
{{- $limits := dict -}}
{{- if not (hasKey $oldLimits "drain_delay_ms") -}}
{{- $_ := set $limits "drain_delay" (printf "%ds" (int $r.drainDelaySeconds)) -}}
{{- end -}}
{{- if not (hasKey $oldLimits "shutdown_grace_ms") -}}
{{- $_ := set $limits "shutdown_grace" (printf "%ds" (int $r.shutdownGraceSeconds)) -}}
{{- end -}}
{{- $http := dict "limits" $limits -}}
{{- if and .Values.frontend.admin.enabled (not (hasKey ($user.admin | default dict) "listen")) -}}
{{- $_ := set $http "admin" (dict "listen" (printf "0.0.0.0:%d" (int .Values.frontend.admin.port))) -}}
{{- end -}}
{{- $base := dict "http" $http -}}
{{- if and .Values.nats.enabled (not (hasKey $user "nats")) -}}
{{- $_ := set $base "events" (dict "nats" (dict "url" (include "switchyard.natsUrl" .))) -}}
{{- end -}}
{{- if and (or .Values.modelOwners .Values.crossNamespacePlugins) (not (hasKey $user "kubernetes")) -}}
{{- $tenancy := dict "model_owners" (.Values.modelOwners | default dict) "cross_namespace_plugins" (.Values.crossNamespacePlugins | default false) -}}
{{- if kindIs "string" $user.discovery -}}
{{- $_ := set $base "kubernetes" $tenancy -}}
{{- else -}}
{{- $_ := set $base "discovery" (dict "kubernetes" $tenancy) -}}
{{- end -}}
{{- end -}}
{{- toYaml (mergeOverwrite $base $user) -}}
{{- end -}}

{{/* Milliseconds of a duration in the frontend's format (`30s`, `500ms`, `1m30s`). */}}
{{- define "switchyard.durationMs" -}}
{{- $total := 0 -}}
{{- range (regexFindAll "[0-9]+(ms|s|m|h)" (toString .) -1) -}}
{{- $n := int (regexFind "^[0-9]+" .) -}}
{{- $unit := trimPrefix (regexFind "^[0-9]+" .) . -}}
{{- $scale := get (dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000) $unit -}}
{{- $total = add $total (mul $n $scale) -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/* Seconds a stopping frontend pod gets: preStop sleep, then the drain delay and shutdown
grace of the rendered config (so `frontend.config` overrides count, in either spelling), plus
a margin. */}}
{{- define "switchyard.frontend.terminationGrace" -}}
{{- $cfg := include "switchyard.frontend.config" . | fromYaml -}}
{{- $new := (($cfg.http | default dict).limits | default dict) -}}
{{- $old := $cfg.limits | default dict -}}
{{- $drainMs := 0 -}}
{{- if hasKey $new "drain_delay" -}}
{{- $drainMs = int (include "switchyard.durationMs" $new.drain_delay) -}}
{{- else if hasKey $old "drain_delay_ms" -}}
{{- $drainMs = int $old.drain_delay_ms -}}
{{- end -}}
{{- $graceMs := 30000 -}}
{{- if hasKey $new "shutdown_grace" -}}
{{- $graceMs = int (include "switchyard.durationMs" $new.shutdown_grace) -}}
{{- else if hasKey $old "shutdown_grace_ms" -}}
{{- $graceMs = int $old.shutdown_grace_ms -}}
{{- end -}}
{{- $drain := div (add $drainMs 999) 1000 -}}
{{- $grace := div (add $graceMs 999) 1000 -}}
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
