{{/*
A single-replica StatefulSet with its headless and client Services. Its name, selector,
serviceName and volumeClaimTemplates are the identity of the data: tests/chart/
stateful_identities.json records them and fails a change that would orphan a volume.
(dict "ctx" $ "component" "minio" "values" <x> "uid" 1000 "port" 9000 "podSpec" <yaml of the containers>)
*/}}
{{- define "openjip.statefulSet" -}}
{{- $ := .ctx -}}
{{- $name := include "openjip.componentName" (dict "ctx" $ "component" .component) -}}
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ $name }}
  labels:
    {{- include "openjip.labels" (dict "ctx" $ "component" .component) | nindent 4 }}
spec:
  replicas: 1
  serviceName: {{ $name }}-headless
  podManagementPolicy: OrderedReady
  updateStrategy:
    type: RollingUpdate
  persistentVolumeClaimRetentionPolicy:
    whenDeleted: Retain
    whenScaled: Retain
  selector:
    matchLabels:
      {{- include "openjip.selectorLabels" (dict "ctx" $ "component" .component) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "openjip.podLabels" (dict "ctx" $ "component" .component "clients" (list)) | nindent 8 }}
    spec:
      serviceAccountName: {{ include "openjip.serviceAccountName" (dict "ctx" $ "component" .component) }}
      automountServiceAccountToken: false
      {{- include "openjip.imagePullSecrets" $ | nindent 6 }}
      {{- include "openjip.podSecurityContext" (dict "ctx" $ "uid" .uid) | nindent 6 }}
      {{- include "openjip.scheduling" .values | nindent 6 }}
      {{- .podSpec | nindent 6 }}
  volumeClaimTemplates:
    - metadata:
        name: data
        labels:
          {{- include "openjip.selectorLabels" (dict "ctx" $ "component" .component) | nindent 10 }}
        annotations:
          {{- include "openjip.keepAnnotation" $ | nindent 10 }}
      spec:
        {{- include "openjip.pvcSpec" (dict "ctx" $ "persistence" .values.persistence) | nindent 8 }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}-headless
  labels:
    {{- include "openjip.labels" (dict "ctx" $ "component" .component) | nindent 4 }}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector:
    {{- include "openjip.selectorLabels" (dict "ctx" $ "component" .component) | nindent 4 }}
  ports:
    - name: {{ .portName }}
      port: {{ .port }}
      targetPort: {{ .portName }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  labels:
    {{- include "openjip.labels" (dict "ctx" $ "component" .component) | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "openjip.selectorLabels" (dict "ctx" $ "component" .component) | nindent 4 }}
  ports:
    - name: {{ .portName }}
      port: {{ .port }}
      targetPort: {{ .portName }}
{{- end -}}
