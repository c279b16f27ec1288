{{/*
The environment of the openjip settings model (OPENJIP_<SECTION>__<FIELD>), in one place so
the names follow src/openjip/config/settings.py. Each helper renders list items under `env:`.
*/}}

{{/* Where the object store is: in-cluster MinIO or the external endpoint. */}}
{{- define "openjip.s3Endpoint" -}}
{{- if .Values.minio.enabled -}}
{{- printf "%s:9000" (include "openjip.componentName" (dict "ctx" . "component" "minio")) -}}
{{- else -}}
{{- .Values.externalS3.endpoint -}}
{{- end -}}
{{- end -}}

{{- define "openjip.s3Port" -}}
{{- if .Values.minio.enabled -}}9000{{- else -}}
{{- $parts := splitList ":" .Values.externalS3.endpoint -}}
{{- if gt (len $parts) 1 }}{{ last $parts }}{{ else }}{{ ternary "443" "80" .Values.externalS3.secure }}{{ end -}}
{{- end -}}
{{- end -}}

{{- define "openjip.storeSecretName" -}}
{{- if .Values.minio.enabled -}}
{{- .Values.minio.existingSecret | default (include "openjip.componentName" (dict "ctx" . "component" "store")) -}}
{{- else -}}
{{- .Values.externalS3.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "openjip.opensearchURL" -}}
{{- if .Values.opensearch.enabled -}}
{{- printf "http://%s:9200" (include "openjip.componentName" (dict "ctx" . "component" "opensearch")) -}}
{{- else -}}
{{- .Values.externalOpenSearch.url -}}
{{- end -}}
{{- end -}}

{{/* Settings every openjip container shares. */}}
{{- define "openjip.env.common" -}}
- name: OPENJIP_MODE
  value: kubernetes
- name: OPENJIP_HOME
  value: /var/lib/openjip
- name: OPENJIP_LOG_LEVEL
  value: {{ .Values.global.logLevel | quote }}
{{- end -}}

{{/* Object store settings and credentials. Never given to the federation service. */}}
{{- define "openjip.env.storage" -}}
- name: OPENJIP_STORAGE__BACKEND
  value: s3
- name: OPENJIP_STORAGE__S3_ENDPOINT
  value: {{ include "openjip.s3Endpoint" . | quote }}
- name: OPENJIP_STORAGE__S3_BUCKET
  value: {{ .Values.bucket | quote }}
- name: OPENJIP_STORAGE__S3_SECURE
  value: {{ ternary "false" (toString .Values.externalS3.secure) .Values.minio.enabled | quote }}
{{- if and (not .Values.minio.enabled) .Values.externalS3.region }}
- name: OPENJIP_STORAGE__S3_REGION
  value: {{ .Values.externalS3.region | quote }}
{{- end }}
- name: OPENJIP_STORAGE__S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "openjip.storeSecretName" . }}
      key: access-key
- name: OPENJIP_STORAGE__S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "openjip.storeSecretName" . }}
      key: secret-key
{{- end -}}

{{/* Metadata index settings. */}}
{{- define "openjip.env.index" -}}
- name: OPENJIP_INDEX__BACKEND
  value: opensearch
- name: OPENJIP_INDEX__OPENSEARCH_URL
  value: {{ include "openjip.opensearchURL" . | quote }}
{{- if and (not .Values.opensearch.enabled) .Values.externalOpenSearch.existingSecret }}
- name: OPENJIP_INDEX__OPENSEARCH_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .Values.externalOpenSearch.existingSecret }}
      key: username
- name: OPENJIP_INDEX__OPENSEARCH_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.externalOpenSearch.existingSecret }}
      key: password
{{- end }}
{{- end -}}

{{/* Where DAG runs are triggered and where site workflow specs live (receiver, Airflow). */}}
{{- define "openjip.env.workflows" -}}
- name: OPENJIP_WORKFLOWS__SITE_DIR
  value: /var/lib/openjip/workflows
{{- if .Values.airflow.enabled }}
- name: OPENJIP_AIRFLOW__API_URL
  value: {{ printf "http://%s:%v" (include "openjip.componentName" (dict "ctx" . "component" "airflow-api")) .Values.airflow.apiServer.service.port | quote }}
{{- end }}
{{- end -}}

{{/* How the Kubernetes step runner starts analysis pods (labels admit them to store and index). */}}
{{- define "openjip.env.runner" -}}
- name: OPENJIP_RUNNER__BACKEND
  value: kubernetes
- name: OPENJIP_RUNNER__NAMESPACE
  value: {{ .Release.Namespace | quote }}
- name: OPENJIP_RUNNER__SERVICE_ACCOUNT
  value: {{ include "openjip.serviceAccountName" (dict "ctx" . "component" "analysis") | quote }}
- name: OPENJIP_RUNNER__POD_LABELS
  value: {{ include "openjip.analysisPodLabels" . | fromYaml | toJson | quote }}
{{- with .Values.analysis.nodeSelector }}
- name: OPENJIP_RUNNER__NODE_SELECTOR
  value: {{ toJson . | quote }}
{{- end }}
{{- with .Values.global.imagePullSecrets }}
- name: OPENJIP_RUNNER__IMAGE_PULL_SECRETS
  value: {{ toJson . | quote }}
{{- end }}
{{- end -}}

{{/* Labels of analysis pods: the only pods besides the services that reach store and index. */}}
{{- define "openjip.analysisPodLabels" -}}
app.kubernetes.io/name: {{ include "openjip.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: analysis
openjip.io/store-client: "true"
openjip.io/index-client: "true"
{{- end -}}

{{/* The receiver's own settings. */}}
{{- define "openjip.env.receiver" -}}
- name: OPENJIP_RECEIVER__HOST
  value: 0.0.0.0
- name: OPENJIP_RECEIVER__PORT
  value: "11112"
- name: OPENJIP_RECEIVER__AE_TITLE
  value: {{ .Values.receiver.aeTitle | quote }}
- name: OPENJIP_RECEIVER__ALLOWED_CALLING_AES
  value: {{ toJson .Values.receiver.allowedCallingAEs | quote }}
- name: OPENJIP_RECEIVER__METRICS_PORT
  value: {{ .Values.receiver.metricsPort | quote }}
{{- end -}}

{{- define "openjip.env.web" -}}
- name: OPENJIP_WEB__HOST
  value: 0.0.0.0
- name: OPENJIP_WEB__PORT
  value: "8042"
{{- end -}}

{{/* The federation service: its key and HTTP port; deliberately no storage or index settings. */}}
{{- define "openjip.env.federation" -}}
- name: OPENJIP_FEDERATION__HOST
  value: 0.0.0.0
- name: OPENJIP_FEDERATION__PORT
  value: "8443"
- name: OPENJIP_FEDERATION__SITE_NAME
  value: {{ .Values.federation.siteName | quote }}
- name: OPENJIP_FEDERATION__PRIVATE_KEY_FILE
  value: /var/run/secrets/openjip/federation/site.key
- name: OPENJIP_FEDERATION__WORKFLOWS_DIR
  value: /var/lib/openjip/workflows
{{- end -}}

{{/* Extra name/value pairs from values. */}}
{{- define "openjip.env.extra" -}}
{{- range . }}
- name: {{ .name }}
  value: {{ .value | quote }}
{{- end }}
{{- end -}}
