{{/* Building blocks of the NetworkPolicies. */}}

{{/* `to`/`from` entries: the pods of one component of this release. (dict "ctx" $ "component" "minio") */}}
{{- define "openjip.np.component" -}}
- podSelector:
    matchLabels:
      {{- include "openjip.selectorLabels" . | nindent 6 }}
{{- end -}}

{{/* `to` entries for a list of CIDRs; an empty list means any address. */}}
{{- define "openjip.np.cidrs" -}}
{{- range (. | default (list "0.0.0.0/0")) }}
- ipBlock:
    cidr: {{ . }}
{{- end }}
{{- end -}}

{{/* A peer list from values (networkPolicy.ingressFrom) plus the helm test pods; empty: anyone. */}}
{{- define "openjip.np.ingressFrom" -}}
{{- if .Values.networkPolicy.ingressFrom }}
from:
  {{- toYaml .Values.networkPolicy.ingressFrom | nindent 2 }}
  {{- include "openjip.np.component" (dict "ctx" . "component" "tests") | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Where Prometheus scrapes from. */}}
{{- define "openjip.np.metricsFrom" -}}
from:
  - namespaceSelector:
      {{- with .Values.networkPolicy.metricsNamespaceLabels }}
      matchLabels:
        {{- toYaml . | nindent 8 }}
      {{- else }} {}
      {{- end }}
{{- end -}}

{{/* Metadata of one policy. (dict "ctx" $ "name" "deny-all") */}}
{{- define "openjip.np.metadata" -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "openjip.componentName" (dict "ctx" .ctx "component" (printf "np-%s" .name)) }}
  labels:
    {{- include "openjip.labels" (dict "ctx" .ctx "component" "network-policy") | nindent 4 }}
{{- end -}}

{{/* An IPv4 address as an integer. */}}
{{- define "openjip.np.ipv4ToInt" -}}
{{- $o := splitList "." . -}}
{{- add (mul (atoi (index $o 0)) 16777216) (mul (atoi (index $o 1)) 65536) (mul (atoi (index $o 2)) 256) (atoi (index $o 3)) -}}
{{- end -}}

{{/*
"true" when CIDR `inner` lies strictly inside CIDR `outer` (NetworkPolicy's rule for `except`),
empty otherwise. IPv6 ranges are only ever inside "::/0". (dict "outer" "0.0.0.0/0" "inner" "10.0.0.0/8")
*/}}
{{- define "openjip.np.cidrContains" -}}
{{- $outer := splitList "/" .outer -}}
{{- $inner := splitList "/" .inner -}}
{{- $outerBits := atoi (index $outer 1) -}}
{{- $innerBits := atoi (index $inner 1) -}}
{{- $v6 := contains ":" .outer -}}
{{- if and (eq $v6 (contains ":" .inner)) (lt $outerBits $innerBits) -}}
{{- if $v6 -}}
{{- if eq $outerBits 0 }}true{{ end -}}
{{- else -}}
{{- $block := 1 -}}
{{- range until (sub 32 $outerBits | int) }}{{ $block = mul $block 2 }}{{ end -}}
{{- $o := include "openjip.np.ipv4ToInt" (index $outer 0) | atoi -}}
{{- $i := include "openjip.np.ipv4ToInt" (index $inner 0) | atoi -}}
{{- if eq (div $o $block) (div $i $block) }}true{{ end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Egress rule to the object store: in-cluster MinIO or the external endpoint. */}}
{{- define "openjip.np.storeEgress" -}}
- to:
    {{- if .Values.minio.enabled }}
    {{- include "openjip.np.component" (dict "ctx" . "component" "minio") | nindent 4 }}
    {{- else }}
    {{- include "openjip.np.cidrs" .Values.externalS3.cidrs | nindent 4 }}
    {{- end }}
  ports:
    - {protocol: TCP, port: {{ include "openjip.s3Port" . }}}
{{- end -}}

{{/* Egress rule to the index: in-cluster OpenSearch or the external cluster's port. */}}
{{- define "openjip.np.indexEgress" -}}
{{- $url := urlParse (include "openjip.opensearchURL" .) -}}
- to:
    {{- if .Values.opensearch.enabled }}
    {{- include "openjip.np.component" (dict "ctx" . "component" "opensearch") | nindent 4 }}
    {{- else }}
    {{- include "openjip.np.cidrs" .Values.externalOpenSearch.cidrs | nindent 4 }}
    {{- end }}
  ports:
    - {protocol: TCP, port: {{ regexFind "[0-9]+$" $url.host | default (ternary "443" "80" (eq $url.scheme "https")) }}}
{{- end -}}
