{{/*
TF Serving's own helpers. Everything shared (names, labels, image, ports, Services, probes,
ServiceMonitor, security contexts) is in the servecmp-lib library chart; ports and paths come
from the generated `wire` values.
*/}}

{{/*
tfserving.files: config value key -> mounted file name (the generated files; flags.txt is also
the container's argument list).
*/}}
{{- define "tfserving.files" -}}
{{- toYaml (dict "models" "models.config" "monitoring" "monitoring.config" "batching" "batching.config" "flags" "flags.txt") -}}
{{- end -}}

{{/*
tfserving.check: the wire guard (with the paths this chart mounts) and the generated files that
must not be empty (batching.config may be: batching off).
*/}}
{{- define "tfserving.check" -}}
{{- include "servecmp-lib.wire" (dict "root" . "paths" (list "config" "models")) -}}
{{- include "servecmp-lib.requireConfig" (dict "root" . "files" (dict "models" "models.config" "monitoring" "monitoring.config" "flags" "flags.txt")) -}}
{{- end -}}

{{/*
tfserving.flags: the generated flags.txt as a list (one flag a line; blank lines and `#`
comments dropped). Returned as YAML {flags: [...]}; use with fromYaml.
*/}}
{{- define "tfserving.flags" -}}
{{- $out := list -}}
{{- range $line := splitList "\n" (toString .Values.config.flags) -}}
{{- $l := trim $line -}}
{{- if and $l (not (hasPrefix "#" $l)) -}}
{{- $out = append $out $l -}}
{{- end -}}
{{- end -}}
{{- toYaml (dict "flags" $out) -}}
{{- end -}}
