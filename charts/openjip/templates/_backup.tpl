{{/*
The pod of `openjip site backup` (the backup CronJob) and of `openjip site check` (the
pre-upgrade hook, which also backs up with backup.beforeUpgrade). It mounts what the site keeps
in OPENJIP_HOME (the federation state and the accepted workflows), reads the object store, dumps
Airflow's database first (pg_dump into the home, so that it is part of the backup) and writes to
an S3 bucket and prefix or to a volume. The OpenSearch index is not copied (`openjip index
rebuild` recreates it from the restored objects).
*/}}

{{/* Where the backup goes: s3://BUCKET/PREFIX or the mount point of the backup volume. */}}
{{- define "openjip.backupDest" -}}
{{- if eq .Values.backup.destination "s3" -}}
{{- printf "s3://%s/%s" .Values.backup.s3.bucket .Values.backup.s3.prefix | trimSuffix "/" -}}
{{- else -}}
/var/lib/openjip-backup
{{- end -}}
{{- end -}}

{{/* True when the backup writes to another S3 server than the site's object store. */}}
{{- define "openjip.backupOwnS3" -}}
{{- if and (eq .Values.backup.destination "s3") .Values.backup.s3.endpoint }}true{{ end -}}
{{- end -}}

{{- define "openjip.backupClaimName" -}}
{{- .Values.backup.volume.existingClaim | default (include "openjip.componentName" (dict "ctx" . "component" "backups")) -}}
{{- end -}}

{{/* The S3 server of the backups (OPENJIP_BACKUP__S3_*); unset: the object store's. */}}
{{- define "openjip.env.backup" -}}
{{- $s3 := .Values.backup.s3 }}
{{- if include "openjip.backupOwnS3" . }}
- name: OPENJIP_BACKUP__S3_ENDPOINT
  value: {{ $s3.endpoint | quote }}
- name: OPENJIP_BACKUP__S3_SECURE
  value: {{ $s3.secure | toString | quote }}
{{- with $s3.region }}
- name: OPENJIP_BACKUP__S3_REGION
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- if and (eq .Values.backup.destination "s3") $s3.existingSecret }}
- name: OPENJIP_BACKUP__S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $s3.existingSecret }}
      key: access-key
- name: OPENJIP_BACKUP__S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $s3.existingSecret }}
      key: secret-key
{{- end }}
{{- end -}}

{{/* What a backup or check pod may reach: the store; the database when it dumps it. */}}
{{- define "openjip.backupClients" -}}
{{- $clients := list -}}
{{- if .backup }}{{ $clients = append $clients "store" }}{{ end -}}
{{- if and .backup .ctx.Values.airflow.enabled }}{{ $clients = append $clients "db" }}{{ end -}}
{{- if and .backup (include "openjip.backupOwnS3" .ctx) }}{{ $clients = append $clients "backup" }}{{ end -}}
{{- toJson $clients -}}
{{- end -}}

{{/* A container running `openjip ARGS...` with the site's settings. (dict "ctx" $ "name" "backup" "args" (list ...) "backup" bool) */}}
{{- define "openjip.backupContainer" -}}
{{- $ := .ctx -}}
- name: {{ .name }}
  image: {{ include "openjip.image" (dict "ctx" $ "image" $.Values.images.openjip) }}
  imagePullPolicy: {{ $.Values.images.openjip.pullPolicy }}
  args: {{ toJson .args }}
  env:
    {{- include "openjip.env.common" $ | nindent 4 }}
    {{- if .backup }}
    {{- include "openjip.env.storage" $ | nindent 4 }}
    {{- include "openjip.env.index" $ | nindent 4 }}
    {{- include "openjip.env.backup" $ | nindent 4 }}
    {{- else }}
    - name: OPENJIP_INDEX__BACKEND
      value: opensearch
    {{- end }}
  {{- include "openjip.containerSecurityContext" (dict "readOnlyRootFilesystem" true) | nindent 2 }}
  resources:
    {{- toYaml $.Values.backup.resources | nindent 4 }}
  volumeMounts:
    {{- include "openjip.backupVolumeMounts" $ | nindent 4 }}
{{- end -}}

{{- define "openjip.backupVolumeMounts" -}}
- name: state
  mountPath: /var/lib/openjip
{{- if or .Values.federation.enabled .Values.airflow.enabled }}
- name: workflows
  mountPath: /var/lib/openjip/workflows
  readOnly: true
{{- end }}
{{- if .Values.airflow.enabled }}
- name: airflow-db
  mountPath: /var/lib/openjip/airflow
{{- end }}
{{- if eq .Values.backup.destination "volume" }}
- name: backups
  mountPath: /var/lib/openjip-backup
{{- end }}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/*
The pod spec. (dict "ctx" $ "component" "backup" "check" bool "backup" bool). With both, the
check runs first (an init container): a failing check stops the pod before the backup.
*/}}
{{- define "openjip.backupPodSpec" -}}
{{- $ := .ctx -}}
{{- $check := list "site" "check" "--min-free-mib" (toString $.Values.upgradeCheck.minFreeMiB) -}}
{{- if ne $.Values.upgradeCheck.maxBackupAgeHours nil -}}
{{- $check = concat $check (list "--max-backup-age-hours" (toString $.Values.upgradeCheck.maxBackupAgeHours)) -}}
{{- end -}}
{{- $backup := list "site" "backup" (include "openjip.backupDest" $) -}}
restartPolicy: Never
serviceAccountName: {{ include "openjip.serviceAccountName" (dict "ctx" $ "component" .component) }}
automountServiceAccountToken: false
{{- include "openjip.imagePullSecrets" $ }}
{{ include "openjip.podSecurityContext" (dict "ctx" $ "uid" 10001) }}
{{- if $.Values.federation.enabled }}
# The federation state volume may be ReadWriteOnce: run on the node of the federation pod.
affinity:
  podAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - labelSelector:
          matchLabels:
            {{- include "openjip.selectorLabels" (dict "ctx" $ "component" "federation") | nindent 12 }}
        topologyKey: kubernetes.io/hostname
{{- end }}
{{- if or (and .check .backup) (and .backup $.Values.airflow.enabled) }}
initContainers:
  {{- if and .check .backup }}
  {{- include "openjip.backupContainer" (dict "ctx" $ "name" "site-check" "args" $check "backup" false) | nindent 2 }}
  {{- end }}
  {{- if and .backup $.Values.airflow.enabled }}
  {{- $db := include "openjip.airflowDatabase" $ | fromJson }}
  - name: airflow-db-dump
    image: {{ include "openjip.image" (dict "ctx" $ "image" $.Values.images.postgresql) }}
    imagePullPolicy: {{ $.Values.images.postgresql.pullPolicy }}
    # Airflow's metadata as one consistent dump, restored with pg_restore (docs/site-operators.md).
    command: ["pg_dump", "--format=custom", "--file=/var/lib/openjip/airflow/airflow-db.pgdump"]
    env:
      - {name: PGHOST, value: {{ $db.host | quote }}}
      - {name: PGPORT, value: {{ $db.port | toString | quote }}}
      - {name: PGDATABASE, value: {{ $db.database | quote }}}
      - {name: PGUSER, value: {{ $db.username | quote }}}
      - {name: PGSSLMODE, value: {{ $db.sslmode | quote }}}
      - name: PGPASSWORD
        valueFrom:
          secretKeyRef:
            name: {{ include "openjip.postgresqlSecretName" $ }}
            key: password
    {{- include "openjip.containerSecurityContext" (dict "readOnlyRootFilesystem" true) | nindent 4 }}
    resources:
      {{- toYaml $.Values.backup.resources | nindent 6 }}
    volumeMounts:
      - name: airflow-db
        mountPath: /var/lib/openjip/airflow
  {{- end }}
{{- end }}
containers:
  {{- if .backup }}
  {{- include "openjip.backupContainer" (dict "ctx" $ "name" "site-backup" "args" $backup "backup" true) | nindent 2 }}
  {{- else }}
  {{- include "openjip.backupContainer" (dict "ctx" $ "name" "site-check" "args" $check "backup" false) | nindent 2 }}
  {{- end }}
volumes:
  - name: state
    {{- if $.Values.federation.enabled }}
    persistentVolumeClaim:
      claimName: {{ include "openjip.componentName" (dict "ctx" $ "component" "federation-state") }}
    {{- else }}
    emptyDir: {}
    {{- end }}
  {{- if or $.Values.federation.enabled $.Values.airflow.enabled }}
  - name: workflows
    persistentVolumeClaim:
      claimName: {{ include "openjip.componentName" (dict "ctx" $ "component" "workflows") }}
  {{- end }}
  {{- if $.Values.airflow.enabled }}
  - name: airflow-db
    emptyDir: {}
  {{- end }}
  {{- if eq $.Values.backup.destination "volume" }}
  - name: backups
    persistentVolumeClaim:
      claimName: {{ include "openjip.backupClaimName" $ }}
  {{- end }}
  - name: tmp
    emptyDir: {}
{{- end -}}

{{/* Egress of backup pods to the backups' own S3 server. (dict "ctx" $ "name" "backup" "hook" bool) */}}
{{- define "openjip.backupNetworkPolicy" -}}
{{- $ := .ctx -}}
{{- $s3 := $.Values.backup.s3 -}}
{{- $parts := splitList ":" $s3.endpoint -}}
{{ include "openjip.np.metadata" (dict "ctx" $ "name" .name) }}
  {{- if .hook }}
  annotations:
    {{- include "openjip.hookAnnotations" (dict "weight" "-5") | nindent 4 }}
  {{- end }}
spec:
  podSelector:
    matchLabels:
      openjip.io/backup-client: "true"
  policyTypes: [Egress]
  egress:
    - to:
        {{- include "openjip.np.cidrs" $s3.cidrs | nindent 8 }}
      ports:
        - {protocol: TCP, port: {{ if gt (len $parts) 1 }}{{ last $parts }}{{ else }}{{ ternary 443 80 $s3.secure }}{{ end }}}
{{- end -}}

{{/* Annotations of the pre-upgrade hook's objects; they stay until the next upgrade's hook. */}}
{{- define "openjip.hookAnnotations" -}}
helm.sh/hook: pre-upgrade
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: before-hook-creation
{{- end -}}
