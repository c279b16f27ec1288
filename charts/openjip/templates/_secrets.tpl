{{/*
Secrets generated once and kept. `lookup` reads the Secret of an existing release, so an
upgrade keeps every generated key and password; it is the chart's only `lookup`.
*/}}

{{/* The data of an existing Secret as JSON ({} when absent or when rendering offline). */}}
{{- define "openjip.existingSecretData" -}}
{{- $secret := lookup "v1" "Secret" .ctx.Release.Namespace .name -}}
{{- if and $secret $secret.data -}}
{{- toJson $secret.data -}}
{{- else -}}
{}
{{- end -}}
{{- end -}}

{{/*
`data:` entries of a generated Secret, base64. Call with
(dict "ctx" $ "name" <secret name> "generate" (dict "key" <fresh value> ...)):
a key the existing Secret already holds keeps its value; only missing keys take the fresh one.
*/}}
{{- define "openjip.keptSecretData" -}}
{{- $existing := include "openjip.existingSecretData" . | fromJson -}}
{{- range $key, $fresh := .generate }}
{{ $key }}: {{ index $existing $key | default ($fresh | b64enc) | quote }}
{{- end }}
{{- end -}}
