{{/* Names shared by the templates: every object is prefixed with the release's name. */}}
{{- define "layerpipe.worker" -}}{{ .Release.Name }}-worker{{- end -}}
{{- define "layerpipe.coordinator" -}}{{ .Release.Name }}-coordinator{{- end -}}
{{- define "layerpipe.image" -}}{{ .Values.image.repository }}:{{ .Values.image.tag }}{{- end -}}
{{- define "layerpipe.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: {{ .Values.runAsUser }}
  runAsGroup: {{ .Values.runAsUser }}
  seccompProfile: {type: RuntimeDefault}
{{- end -}}
{{- define "layerpipe.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: [ALL]}
{{- end -}}
