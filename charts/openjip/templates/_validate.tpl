{{/* Combinations of values the schema cannot express; each fails with a message naming the value. */}}
{{- define "openjip.validate" -}}
{{- $needsStore := or .Values.receiver.enabled .Values.web.enabled .Values.airflow.enabled -}}
{{- if and $needsStore (not .Values.minio.enabled) -}}
{{- if not .Values.externalS3.endpoint -}}
{{- fail "externalS3.endpoint is required when minio.enabled is false" -}}
{{- end -}}
{{- if not .Values.externalS3.existingSecret -}}
{{- fail "externalS3.existingSecret is required when minio.enabled is false (keys access-key, secret-key)" -}}
{{- end -}}
{{- end -}}
{{- if and $needsStore (not .Values.opensearch.enabled) (not .Values.externalOpenSearch.url) -}}
{{- fail "externalOpenSearch.url is required when opensearch.enabled is false" -}}
{{- end -}}
{{- if and .Values.airflow.enabled (not .Values.postgresql.enabled) -}}
{{- if not .Values.externalPostgresql.host -}}
{{- fail "externalPostgresql.host is required when postgresql.enabled is false" -}}
{{- end -}}
{{- if not .Values.externalPostgresql.existingSecret -}}
{{- fail "externalPostgresql.existingSecret is required when postgresql.enabled is false (key password)" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.backup.enabled (eq .Values.backup.destination "s3") (not .Values.backup.s3.endpoint) (eq .Values.backup.s3.bucket .Values.bucket) -}}
{{- fail "backup.s3.bucket must differ from bucket: a backup in the site's own bucket is lost with it" -}}
{{- end -}}
{{- if and (eq .Values.airflow.executor "LocalExecutor") (gt (int .Values.airflow.scheduler.replicas) 1) -}}
{{- fail "airflow.scheduler.replicas must be 1 with airflow.executor LocalExecutor (tasks run inside the scheduler)" -}}
{{- end -}}
{{- if and .Values.federation.enabled .Values.networkPolicy.enabled -}}
{{- range $peer := .Values.federation.peerEgress.cidrs -}}
{{- range $private := concat $.Values.networkPolicy.clusterCIDRs $.Values.externalS3.cidrs -}}
{{- if or (eq $peer $private) (include "openjip.np.cidrContains" (dict "outer" $private "inner" $peer)) -}}
{{- fail (printf "federation.peerEgress.cidrs: %s lies inside %s (networkPolicy.clusterCIDRs or externalS3.cidrs); the federation service must not reach the cluster or the object store" $peer $private) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
