{{/*
Triton's own helpers. Everything shared (names, labels, image, ports, Services, probes,
ServiceMonitor, security contexts) is in the servecmp-lib library chart; ports and paths come
from the generated `wire` values.
*/}}

{{/*
triton.files: generated config key -> file name in the ConfigMap.
*/}}
{{- define "triton.files" -}}
{{- toYaml (dict "flags" "flags.txt" "modelConfig" "config.pbtxt") -}}
{{- end -}}

{{/*
triton.check: the wire guard (with the paths this chart mounts), the generated files, and the
artifact source: the model repository is assembled in place (config.pbtxt and model.py are
copied beside the model), which a read-only hostPath volume cannot take.
*/}}
{{- define "triton.check" -}}
{{- include "servecmp-lib.wire" (dict "root" . "paths" (list "config" "models")) -}}
{{- include "servecmp-lib.requireConfig" (dict "root" . "files" (include "triton.files" . | fromYaml)) -}}
{{- if ne .Values.global.modelArtifacts.source "image" -}}
{{- fail "triton: global.modelArtifacts.source must be \"image\" (the model repository is assembled in a writable emptyDir; a hostPath tree has no triton/ directory)" -}}
{{- end -}}
{{- end -}}

{{/*
triton.flags: the generated flags.txt as a list (one flag a line; blank lines and `#` comments
dropped). Returned as YAML {flags: [...]}; use with fromYaml.
*/}}
{{- define "triton.flags" -}}
{{- $out := list -}}
{{- range $line := splitList "\n" (toString .Values.config.flags) -}}
{{- $l := trim $line -}}
{{- if and $l (not (hasPrefix "#" $l)) -}}
{{- $out = append $out $l -}}
{{- end -}}
{{- end -}}
{{- toYaml (dict "flags" $out) -}}
{{- end -}}
