{{/* Who may see and change what: the OpenID Connect settings of the web service and Airflow,
the DIMSE permissions and TLS of the receiver. */}}

{{/* OPENJIP_ACCESS__* of every service that signs users in (web, Airflow). */}}
{{- define "openjip.env.access" -}}
{{- $oidc := .Values.access.oidc -}}
- name: OPENJIP_ACCESS__ALLOW_ANONYMOUS
  value: "false"
{{- with .Values.access.sessionCookieDomain }}
- name: OPENJIP_ACCESS__SESSION_COOKIE_DOMAIN
  value: {{ . | quote }}
{{- end }}
{{- if $oidc.issuer }}
- name: OPENJIP_ACCESS__OIDC_ISSUER
  value: {{ $oidc.issuer | quote }}
- name: OPENJIP_ACCESS__OIDC_CLIENT_ID
  value: {{ $oidc.clientId | quote }}
{{- with $oidc.audience }}
- name: OPENJIP_ACCESS__OIDC_AUDIENCE
  value: {{ . | quote }}
{{- end }}
{{- if $oidc.clientSecret.existingSecret }}
- name: OPENJIP_ACCESS__OIDC_CLIENT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $oidc.clientSecret.existingSecret }}
      key: {{ $oidc.clientSecret.key }}
{{- end }}
- name: OPENJIP_ACCESS__OIDC_USERNAME_CLAIM
  value: {{ $oidc.usernameClaim | quote }}
- name: OPENJIP_ACCESS__OIDC_GROUPS_CLAIM
  value: {{ $oidc.groupsClaim | quote }}
- name: OPENJIP_ACCESS__OIDC_GROUPS
  value: {{ $oidc.groups | toJson | quote }}
{{- end }}
{{- end -}}

{{- define "openjip.dicomTlsDir" -}}/var/run/secrets/openjip/dicom-tls{{- end -}}

{{/* OPENJIP_RECEIVER__* of the DIMSE permissions and of DICOM TLS. */}}
{{- define "openjip.env.dimse" -}}
{{- $receiver := .Values.receiver -}}
- name: OPENJIP_RECEIVER__KNOWN_AES
  value: {{ $receiver.knownAEs | toJson | quote }}
- name: OPENJIP_RECEIVER__UNKNOWN_AE_ALLOW
  value: {{ $receiver.unknownAEAllow | toJson | quote }}
{{- if $receiver.tls.secretName }}
- name: OPENJIP_RECEIVER__TLS_CERT
  value: {{ include "openjip.dicomTlsDir" . }}/tls.crt
- name: OPENJIP_RECEIVER__TLS_KEY
  value: {{ include "openjip.dicomTlsDir" . }}/tls.key
- name: OPENJIP_RECEIVER__TLS_LISTEN
  value: {{ $receiver.tls.listen | quote }}
{{- if $receiver.tls.verifyClients }}
- name: OPENJIP_RECEIVER__TLS_CA
  value: {{ include "openjip.dicomTlsDir" . }}/ca.crt
{{- end }}
{{- end }}
{{- end -}}

{{- define "openjip.dicomTlsVolumeMount" -}}
{{- if .Values.receiver.tls.secretName }}
- name: dicom-tls
  mountPath: {{ include "openjip.dicomTlsDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "openjip.dicomTlsVolume" -}}
{{- if .Values.receiver.tls.secretName }}
- name: dicom-tls
  secret:
    secretName: {{ .Values.receiver.tls.secretName }}
{{- end }}
{{- end -}}

{{- define "openjip.keycloakSecretName" -}}
{{- .Values.keycloak.existingSecret | default (include "openjip.componentName" (dict "ctx" . "component" "keycloak")) -}}
{{- end -}}
