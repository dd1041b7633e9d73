{{/*
KServe's own helpers. Everything shared (names, labels, image, ports, Services, probes,
ServiceMonitor, security contexts) is in the servecmp-lib library chart; ports and paths come
from the generated `wire` values.
*/}}

{{/*
kserve.check: the wire guard (with the paths this chart mounts) and the generated flags.
*/}}
{{- define "kserve.check" -}}
{{- include "servecmp-lib.wire" (dict "root" . "paths" (list "config" "models")) -}}
{{- include "servecmp-lib.requireConfig" (dict "root" . "files" (dict "flags" "flags.txt")) -}}
{{- end -}}

{{/*
kserve.flags: the generated flags.txt as a list (one flag a line; blank lines and `#` comments
dropped). Returned as YAML {flags: [...]}; use with fromYaml.
*/}}
{{- define "kserve.flags" -}}
{{- $out := list -}}
{{- range $line := splitList "\n" (toString .Values.config.flags) -}}
{{- $l := trim $line -}}
{{- if and $l (not (hasPrefix "#" $l)) -}}
{{- $out = append $out $l -}}
{{- end -}}
{{- end -}}
{{- toYaml (dict "flags" $out) -}}
{{- end -}}
