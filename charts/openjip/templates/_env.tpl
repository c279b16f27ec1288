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

{{- define "openjip.federationSecretName" -}}
{{- .Values.federation.existingSecret | default (include "openjip.componentName" (dict "ctx" . "component" "federation")) -}}
{{- end -}}

{{/* The Secret both the web and the federation service mount to prove internal calls. */}}
{{- define "openjip.loopbackSecretName" -}}
{{- include "openjip.componentName" (dict "ctx" . "component" "loopback") -}}
{{- end -}}

{{/*
The federation service asks the web service (never the index itself) for statistics answers and
patient-data screens, presenting the loopback Secret. Only with both services enabled.
*/}}
{{- define "openjip.loopbackEnabled" -}}
{{- if and .Values.federation.enabled .Values.web.enabled }}true{{ end -}}
{{- end -}}

{{- define "openjip.env.loopback" -}}
{{- if include "openjip.loopbackEnabled" . }}
- name: OPENJIP_FEDERATION__LOOPBACK_SECRET_FILE
  value: /var/run/secrets/openjip/loopback/secret
- name: OPENJIP_FEDERATION__SITE_WEB_URL
  value: {{ printf "http://%s:%v" (include "openjip.componentName" (dict "ctx" . "component" "web")) .Values.web.service.port | quote }}
{{- end }}
{{- end -}}

{{- define "openjip.loopbackVolumeMount" -}}
{{- if include "openjip.loopbackEnabled" . }}
- name: loopback
  mountPath: /var/run/secrets/openjip/loopback
  readOnly: true
{{- end }}
{{- end -}}

{{- define "openjip.loopbackVolume" -}}
{{- if include "openjip.loopbackEnabled" . }}
- name: loopback
  secret:
    secretName: {{ include "openjip.loopbackSecretName" . }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{/* The Secret of the site's de-identification secret (pseudonyms, new UIDs, date shifts). */}}
{{- define "openjip.deidSecretName" -}}
{{- .Values.deid.existingSecret | default (include "openjip.componentName" (dict "ctx" . "component" "deid")) -}}
{{- end -}}

{{/*
De-identification settings of a service that de-identifies itself (receiver, web: the
policies per project): the secret as a read-only file, the policies. Never the federation
service's. Airflow gets the Secret's name only, for the steps that ask for it.
*/}}
{{- define "openjip.env.deid" -}}
- name: OPENJIP_DEID__SECRET_FILE
  value: /var/run/secrets/openjip/deid/deid.secret
- name: OPENJIP_DEID__SECRET_NAME
  value: {{ include "openjip.deidSecretName" . | quote }}
- name: OPENJIP_DEID__PROJECTS
  value: {{ .Values.deid.projects | toJson | quote }}
{{- end -}}

{{- define "openjip.deidVolumeMount" -}}
- name: deid-secret
  mountPath: /var/run/secrets/openjip/deid
  readOnly: true
{{- end -}}

{{- define "openjip.deidVolume" -}}
- name: deid-secret
  secret:
    secretName: {{ include "openjip.deidSecretName" . }}
    defaultMode: 0440
    items:
      - key: deid.secret
        path: deid.secret
{{- end -}}

{{/* The Secret of the federation service's certificate; empty when TLS is off. */}}
{{- define "openjip.federationTLSSecretName" -}}
{{- if .Values.federation.tls.enabled -}}
{{- .Values.federation.tls.secretName | default (include "openjip.componentName" (dict "ctx" . "component" "federation-tls")) -}}
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

{{/* How the receiver (series-arrival runs) and Airflow's own tasks reach Airflow's REST API. */}}
{{- define "openjip.env.airflowClient" -}}
{{- if .Values.airflow.enabled }}
- name: OPENJIP_AIRFLOW__URL
  value: {{ include "openjip.airflowApiURL" . | quote }}
- name: OPENJIP_AIRFLOW__USERNAME
  value: admin
- name: OPENJIP_AIRFLOW__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "openjip.airflowSecretName" . }}
      key: admin-password
{{- else }}
# No workflow engine: the receiver starts no series-arrival runs.
- name: OPENJIP_AIRFLOW__ENABLED
  value: "false"
{{- end }}
{{- end -}}

{{/* How analysis steps run: pods in this namespace, with the analysis service account. */}}
{{- define "openjip.env.stepRunner" -}}
- name: OPENJIP_AIRFLOW__STEP_RUNNER
  value: kubernetes
- name: OPENJIP_AIRFLOW__NAMESPACE
  value: {{ .Release.Namespace | quote }}
- name: OPENJIP_AIRFLOW__STEP_IMAGE
  value: {{ include "openjip.image" (dict "ctx" . "image" .Values.images.openjip) | quote }}
- name: OPENJIP_AIRFLOW__STEP_WEB_URL
  value: {{ printf "http://%s:%v" (include "openjip.componentName" (dict "ctx" . "component" "web")) .Values.web.service.port | quote }}
{{ include "openjip.env.stepGrantKey" . }}
- name: OPENJIP_AIRFLOW__SERVICE_ACCOUNT
  value: {{ include "openjip.serviceAccountName" (dict "ctx" . "component" "analysis") | quote }}
# Mounted into the analysis pods of operators that ask for it (secrets: [deid]) only.
- name: OPENJIP_DEID__SECRET_NAME
  value: {{ include "openjip.deidSecretName" . | quote }}
{{- end -}}

{{/* The key of analysis pods' step grants: Airflow mints them, the web service verifies them. */}}
{{- define "openjip.env.stepGrantKey" -}}
- name: OPENJIP_ACCESS__STEP_TOKEN_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "openjip.airflowSecretName" . }}
      key: step-token-secret
{{- end -}}

{{/*
The labels the pod of every analysis step carries (src/openjip/runner/kubernetes.py): the
NetworkPolicies let pods carrying them reach the web service's step routes, nothing else.
*/}}
{{- define "openjip.analysisPodSelector" -}}
app.kubernetes.io/name: openjip-step
app.kubernetes.io/part-of: openjip
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
- name: OPENJIP_RECEIVER__WORKERS
  value: {{ .Values.receiver.workers | quote }}
{{- end -}}

{{- define "openjip.env.web" -}}
- name: OPENJIP_WEB__HOST
  value: 0.0.0.0
- name: OPENJIP_WEB__PORT
  value: "8042"
- name: OPENJIP_WEB__METRICS_PORT
  value: {{ .Values.web.metricsPort | quote }}
{{ include "openjip.env.webPublicURL" . }}
{{- if .Values.airflow.enabled }}
{{ include "openjip.env.stepGrantKey" . }}
{{- end }}
{{- end -}}

{{/*
Where browsers reach the web service: web.publicUrl, else the web Ingress's host. Airflow's
pods need it for the plugin's links (Images, Open in viewer); nothing set leaves the settings'
default, http://127.0.0.1:8042 (a port-forward).
*/}}
{{- define "openjip.webPublicURL" -}}
{{- if .Values.web.publicUrl -}}
{{- trimSuffix "/" .Values.web.publicUrl -}}
{{- else if and .Values.ingress.enabled .Values.ingress.web.host -}}
{{- printf "https://%s" .Values.ingress.web.host -}}
{{- end -}}
{{- end -}}

{{- define "openjip.env.webPublicURL" -}}
{{- with include "openjip.webPublicURL" . }}
- name: OPENJIP_WEB__PUBLIC_URL
  value: {{ . | quote }}
{{- end }}
{{- end -}}

{{/*
The federation service's HTTP port. Its key and peers live in $OPENJIP_HOME/federation, accepted
specs in $OPENJIP_HOME/workflows; deliberately no storage, index or Airflow settings.
*/}}
{{- define "openjip.env.federation" -}}
- name: OPENJIP_FEDERATION__HOST
  value: 0.0.0.0
- name: OPENJIP_FEDERATION__PORT
  value: "8443"
{{- if include "openjip.federationTLSSecretName" . }}
- name: OPENJIP_FEDERATION__TLS_CERT
  value: /var/run/secrets/openjip/federation-tls/tls.crt
- name: OPENJIP_FEDERATION__TLS_KEY
  value: /var/run/secrets/openjip/federation-tls/tls.key
{{- end }}
{{- if .Values.federation.tls.caBundleConfigMap }}
- name: OPENJIP_FEDERATION__CA_BUNDLE
  value: /etc/openjip/federation-ca/ca.crt
{{- end }}
{{- end -}}

{{/* Extra name/value pairs from values. */}}
{{- define "openjip.env.extra" -}}
{{- range . }}
- name: {{ .name }}
  value: {{ .value | quote }}
{{- end }}
{{- end -}}
