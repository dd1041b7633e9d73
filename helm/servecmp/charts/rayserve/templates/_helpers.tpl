{{/*
Ray Serve's own helpers. Everything shared (names, labels, image, ports, Services, probes,
ServiceMonitor, security contexts) is in the servecmp-lib library chart; ports and paths come
from the generated `wire` values.
*/}}

{{/*
rayserve.check: the wire guard (with the paths this chart mounts) and the generated files.
*/}}
{{- define "rayserve.check" -}}
{{- include "servecmp-lib.wire" (dict "root" . "paths" (list "config" "models")) -}}
{{- include "servecmp-lib.requireConfig" (dict "root" . "files" (dict "serve" "serve_config.yaml" "flags" "flags.txt")) -}}
{{- end -}}

{{/*
rayserve.flags: the generated flags.txt as a list (one flag a line; blank lines and `#` comments
dropped). Returned as YAML {flags: [...]}; use with fromYaml.
*/}}
{{- define "rayserve.flags" -}}
{{- $out := list -}}
{{- range $line := splitList "\n" (toString .Values.config.flags) -}}
{{- $l := trim $line -}}
{{- if and $l (not (hasPrefix "#" $l)) -}}
{{- $out = append $out $l -}}
{{- end -}}
{{- end -}}
{{- toYaml (dict "flags" $out) -}}
{{- end -}}
