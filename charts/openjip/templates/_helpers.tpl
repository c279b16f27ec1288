{{/* Names, labels, images, security contexts and scheduling shared by every component. */}}

{{- define "openjip.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Base name of every resource; components append "-<component>" (at most 20 characters). */}}
{{- define "openjip.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 42 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 42 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 42 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of a component's resources. Call with (dict "ctx" $ "component" "receiver"). */}}
{{- define "openjip.componentName" -}}
{{- printf "%s-%s" (include "openjip.fullname" .ctx) .component -}}
{{- end -}}

{{/* Labels that never change for a release: used in selectors (immutable on upgrade). */}}
{{- define "openjip.selectorLabels" -}}
app.kubernetes.io/name: {{ include "openjip.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "openjip.labels" -}}
{{ include "openjip.selectorLabels" . }}
app.kubernetes.io/part-of: openjip
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/*
Labels of a pod template. "clients" lists what the pod may reach: any of "store", "index",
"db", "airflow"; the NetworkPolicies of those services admit pods by exactly these labels.
*/}}
{{- define "openjip.podLabels" -}}
{{ include "openjip.labels" . }}
{{- range .clients }}
openjip.io/{{ . }}-client: "true"
{{- end }}
{{- end -}}

{{/* An image reference: registry/repository:tag[@digest]. Call with (dict "ctx" $ "image" <images.x>). */}}
{{- define "openjip.image" -}}
{{- $registry := .ctx.Values.global.imageRegistry | default .image.registry -}}
{{- $ref := printf "%s/%s:%s" $registry .image.repository .image.tag -}}
{{- if .image.digest -}}
{{- $ref = printf "%s@%s" $ref .image.digest -}}
{{- end -}}
{{- $ref -}}
{{- end -}}

{{- define "openjip.imagePullSecrets" -}}
{{- with .Values.global.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod security context: the chart's defaults plus the component's user. (dict "ctx" $ "uid" 10001) */}}
{{- define "openjip.podSecurityContext" -}}
{{- $context := deepCopy .ctx.Values.podSecurityContext -}}
{{- $_ := set $context "runAsUser" .uid -}}
{{- $_ := set $context "runAsGroup" .uid -}}
{{- $_ := set $context "fsGroup" .uid -}}
{{- $_ := set $context "fsGroupChangePolicy" "OnRootMismatch" -}}
securityContext:
{{ toYaml $context | indent 2 }}
{{- end -}}

{{/* Container security context. (dict "readOnlyRootFilesystem" true ["uid" 10001]) */}}
{{- define "openjip.containerSecurityContext" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: {{ .readOnlyRootFilesystem }}
  runAsNonRoot: true
  {{- with .uid }}
  runAsUser: {{ . }}
  runAsGroup: {{ . }}
  {{- end }}
  capabilities:
    drop: [ALL]
{{- end -}}

{{/* Scheduling of a component's pods: nodeSelector, tolerations, affinity. (a component's values) */}}
{{- define "openjip.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
{{ toYaml . | indent 2 }}
{{- end }}
{{- end -}}

{{/* A PVC spec body (accessModes, storageClassName, resources). (dict "ctx" $ "persistence" <x.persistence>) */}}
{{- define "openjip.pvcSpec" -}}
accessModes:
{{ toYaml .persistence.accessModes | indent 2 }}
{{- $class := .persistence.storageClass | default .ctx.Values.global.storageClass }}
{{- if $class }}
storageClassName: {{ $class | quote }}
{{- end }}
resources:
  requests:
    storage: {{ .persistence.size | quote }}
{{- end -}}

{{/* Annotations every PVC and generated Secret carries: `helm uninstall` leaves them in place. */}}
{{- define "openjip.keepAnnotation" -}}
helm.sh/resource-policy: keep
{{- end -}}

{{/* Service account name of a component. */}}
{{- define "openjip.serviceAccountName" -}}
{{- include "openjip.componentName" . -}}
{{- end -}}

{{/* Writable scratch directories of a read-only container: an emptyDir per path. */}}
{{- define "openjip.scratchVolumeMounts" -}}
{{- range $name, $path := . }}
- name: {{ $name }}
  mountPath: {{ $path }}
{{- end }}
{{- end -}}

{{- define "openjip.scratchVolumes" -}}
{{- range $name, $path := . }}
- name: {{ $name }}
  emptyDir: {}
{{- end }}
{{- end -}}

{{/* Readiness and liveness over HTTP(S). (dict "path" "/healthz" "port" "http" ["initialDelay" 5] ["scheme" "HTTPS"]) */}}
{{- define "openjip.httpProbes" -}}
readinessProbe:
  httpGet:
    path: {{ .path }}
    port: {{ .port }}
    scheme: {{ .scheme | default "HTTP" }}
  initialDelaySeconds: {{ .initialDelay | default 5 }}
  periodSeconds: 10
livenessProbe:
  httpGet:
    path: {{ .path }}
    port: {{ .port }}
    scheme: {{ .scheme | default "HTTP" }}
  initialDelaySeconds: {{ add (.initialDelay | default 5) 30 }}
  periodSeconds: 20
  failureThreshold: 5
{{- end -}}

{{/* Readiness and liveness over TCP. (dict "port" "dicom") */}}
{{- define "openjip.tcpProbes" -}}
readinessProbe:
  tcpSocket:
    port: {{ .port }}
  initialDelaySeconds: {{ .initialDelay | default 5 }}
  periodSeconds: 10
livenessProbe:
  tcpSocket:
    port: {{ .port }}
  initialDelaySeconds: {{ add (.initialDelay | default 5) 30 }}
  periodSeconds: 20
  failureThreshold: 5
{{- end -}}

{{/* Liveness by a command; Airflow's job checks are slow, so seldom. (dict "command" (list ...)) */}}
{{- define "openjip.execProbe" -}}
livenessProbe:
  exec:
    command: {{ toJson .command }}
  initialDelaySeconds: 60
  periodSeconds: 60
  timeoutSeconds: 30
  failureThreshold: 5
{{- end -}}
