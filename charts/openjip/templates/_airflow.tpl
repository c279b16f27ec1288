{{/* What every Airflow container shares: configuration, secrets, volumes, the migration wait. */}}

{{- define "openjip.airflowSecretName" -}}
{{- .Values.airflow.existingSecret | default (include "openjip.componentName" (dict "ctx" . "component" "airflow")) -}}
{{- end -}}

{{- define "openjip.postgresqlSecretName" -}}
{{- if .Values.postgresql.enabled -}}
{{- .Values.postgresql.existingSecret | default (include "openjip.componentName" (dict "ctx" . "component" "postgresql")) -}}
{{- else -}}
{{- .Values.externalPostgresql.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "openjip.airflowApiURL" -}}
{{- printf "http://%s:%v" (include "openjip.componentName" (dict "ctx" . "component" "airflow-api")) .Values.airflow.apiServer.service.port -}}
{{- end -}}

{{/* Airflow's database as JSON: host, port, database, username, sslmode (in-cluster or external). */}}
{{- define "openjip.airflowDatabase" -}}
{{- if .Values.postgresql.enabled -}}
{{- $host := include "openjip.componentName" (dict "ctx" . "component" "postgresql") -}}
{{- dict "host" $host "port" 5432 "database" .Values.postgresql.database "username" .Values.postgresql.username "sslmode" "disable" | toJson -}}
{{- else -}}
{{- $db := .Values.externalPostgresql -}}
{{- dict "host" $db.host "port" $db.port "database" $db.database "username" $db.username "sslmode" $db.sslmode | toJson -}}
{{- end -}}
{{- end -}}

{{/* Airflow's configuration as AIRFLOW__SECTION__KEY variables. */}}
{{- define "openjip.env.airflow" -}}
{{- $db := include "openjip.airflowDatabase" . | fromJson -}}
- name: AIRFLOW_HOME
  value: /var/lib/airflow
- name: AIRFLOW__CORE__EXECUTOR
  value: {{ .Values.airflow.executor }}
- name: AIRFLOW__CORE__PARALLELISM
  value: {{ .Values.airflow.parallelism | quote }}
- name: AIRFLOW__CORE__DAGS_FOLDER
  value: /opt/openjip/dags
- name: AIRFLOW__CORE__LOAD_EXAMPLES
  value: "False"
- name: AIRFLOW__CORE__EXECUTION_API_SERVER_URL
  value: {{ printf "%s/execution/" (include "openjip.airflowApiURL" .) | quote }}
# openjip's auth manager: OIDC users and the site's service account (OPENJIP_AIRFLOW__USERNAME).
- name: AIRFLOW__CORE__AUTH_MANAGER
  value: openjip.airflow.auth_manager.OpenjipAuthManager
{{- if and .Values.ingress.enabled .Values.ingress.airflow.host }}
- name: AIRFLOW__API__BASE_URL
  value: {{ printf "https://%s" .Values.ingress.airflow.host | quote }}
{{- end }}
- name: AIRFLOW__LOGGING__BASE_LOG_FOLDER
  value: /var/lib/airflow/logs
- name: AIRFLOW_DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "openjip.postgresqlSecretName" . }}
      key: password
- name: AIRFLOW__DATABASE__SQL_ALCHEMY_CONN
  value: {{ printf "postgresql+psycopg2://%s:$(AIRFLOW_DB_PASSWORD)@%s:%v/%s?sslmode=%s" $db.username $db.host $db.port $db.database $db.sslmode | quote }}
- name: AIRFLOW__CORE__FERNET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "openjip.airflowSecretName" . }}
      key: fernet-key
- name: AIRFLOW__API__SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "openjip.airflowSecretName" . }}
      key: api-secret-key
- name: AIRFLOW__API_AUTH__JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "openjip.airflowSecretName" . }}
      key: jwt-secret
{{- if eq .Values.airflow.executor "KubernetesExecutor" }}
- name: AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE
  value: {{ .Release.Namespace | quote }}
# The worker image comes from the pod template (mirror and digest included): no
# worker_container_repository/tag, which would replace it by repository:tag.
- name: AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE
  value: /opt/openjip/pod-template/pod_template.yaml
# The federated-learning task's own pod (templates/airflow/pod-template.yaml).
- name: OPENJIP_LEARNING__POD_TEMPLATE_FILE
  value: /opt/openjip/pod-template/federated_pod_template.yaml
{{- end }}
{{ include "openjip.env.common" . }}
{{ include "openjip.env.storage" . }}
{{ include "openjip.env.index" . }}
{{ include "openjip.env.airflowClient" . }}
{{ include "openjip.env.access" . }}
{{ include "openjip.env.stepRunner" . }}
{{ include "openjip.env.webPublicURL" . }}
{{- include "openjip.env.extra" .Values.airflow.extraEnv }}
{{- end -}}

{{/* Writable directories of Airflow's read-only containers ($OPENJIP_HOME holds the specs volume). */}}
{{- define "openjip.airflowScratch" -}}
{{- dict "airflow-home" "/var/lib/airflow" "openjip-home" "/var/lib/openjip" "tmp" "/tmp" | toYaml -}}
{{- end -}}

{{- define "openjip.airflowVolumeMounts" -}}
{{ include "openjip.scratchVolumeMounts" (include "openjip.airflowScratch" . | fromYaml) | trim }}
- name: workflows
  mountPath: /var/lib/openjip/workflows
  readOnly: true
{{- if eq .Values.airflow.executor "KubernetesExecutor" }}
- name: pod-template
  mountPath: /opt/openjip/pod-template
  readOnly: true
{{- end }}
{{- end -}}

{{- define "openjip.airflowVolumes" -}}
{{ include "openjip.scratchVolumes" (include "openjip.airflowScratch" . | fromYaml) | trim }}
- name: workflows
  persistentVolumeClaim:
    claimName: {{ include "openjip.componentName" (dict "ctx" . "component" "workflows") }}
{{- if eq .Values.airflow.executor "KubernetesExecutor" }}
- name: pod-template
  configMap:
    name: {{ include "openjip.componentName" (dict "ctx" . "component" "pod-template") }}
{{- end }}
{{- end -}}

{{/* Init container of every Airflow pod: waits for the migrations Job. */}}
{{- define "openjip.airflowInitContainer" -}}
- name: wait-for-migrations
  image: {{ include "openjip.image" (dict "ctx" . "image" .Values.images.airflow) }}
  imagePullPolicy: {{ .Values.images.airflow.pullPolicy }}
  command:
    - bash
    - -ec
    - |
      exec airflow db check-migrations --migration-wait-timeout 900
  env:
    {{- include "openjip.env.airflow" . | nindent 4 }}
  {{- include "openjip.containerSecurityContext" (dict "readOnlyRootFilesystem" true) | nindent 2 }}
  resources:
    {{- toYaml .Values.migrations.resources | nindent 4 }}
  volumeMounts:
    {{- include "openjip.airflowVolumeMounts" . | nindent 4 }}
{{- end -}}

{{/* The pod spec shared by every Airflow Deployment. (dict "ctx" $ "component" "airflow-scheduler" "values" <component values> "args" [...] "ports" [...] "probes" <yaml>) */}}
{{- define "openjip.airflowPodSpec" -}}
{{- $ := .ctx -}}
serviceAccountName: {{ include "openjip.serviceAccountName" (dict "ctx" $ "component" .serviceAccount) }}
automountServiceAccountToken: {{ .automountToken }}
{{- include "openjip.imagePullSecrets" $ }}
{{ include "openjip.podSecurityContext" (dict "ctx" $ "uid" 50000) }}
{{- include "openjip.scheduling" $.Values.airflow }}
initContainers:
  {{- include "openjip.airflowInitContainer" $ | nindent 2 }}
containers:
  - name: {{ .container }}
    image: {{ include "openjip.image" (dict "ctx" $ "image" $.Values.images.airflow) }}
    imagePullPolicy: {{ $.Values.images.airflow.pullPolicy }}
    args: {{ toJson .args }}
    env:
      {{- include "openjip.env.airflow" $ | nindent 6 }}
    {{- include "openjip.containerSecurityContext" (dict "readOnlyRootFilesystem" true) | nindent 4 }}
    resources:
      {{- toYaml .values.resources | nindent 6 }}
    {{- with .ports }}
    ports:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with .probes }}
    {{- . | nindent 4 }}
    {{- end }}
    volumeMounts:
      {{- include "openjip.airflowVolumeMounts" $ | nindent 6 }}
volumes:
  {{- include "openjip.airflowVolumes" $ | nindent 2 }}
{{- end -}}
