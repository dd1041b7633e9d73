{{/*
tfserving.name: the chart name (or nameOverride), used in app.kubernetes.io/name.
*/}}
{{- define "tfserving.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
tfserving.fullname: resource name prefix, <release>-tfserving unless fullnameOverride is set.
The umbrella chart's helm test derives the same name (servecmp.serverFullname); keep them in step.
*/}}
{{- define "tfserving.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-tfserving" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
tfserving.selectorLabels: the immutable labels Deployments and Services select pods by.
*/}}
{{- define "tfserving.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tfserving.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
tfserving.labels: standard labels on every object; servecmp.io/server names the server.
*/}}
{{- define "tfserving.labels" -}}
{{ include "tfserving.selectorLabels" . }}
app.kubernetes.io/component: model-server
app.kubernetes.io/part-of: servecmp
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
servecmp.io/server: tfserving
{{- end -}}

{{/*
tfserving.image: repository:tag; refuses an empty tag or `latest`.
*/}}
{{- define "tfserving.image" -}}
{{- $tag := toString .Values.image.tag -}}
{{- if or (eq $tag "") (eq $tag "latest") -}}
{{- fail "tfserving.image.tag: pin an exact tag (empty and `latest` are refused)" -}}
{{- end -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
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

{{/*
tfserving.validate: fails the render when the generated files and this chart disagree: ports in
the flags, config files outside the mounted directory, the model's base path, the metrics path.
*/}}
{{- define "tfserving.validate" -}}
{{- range $k := list "models" "monitoring" "flags" -}}
{{- if not (trim (toString (index $.Values.config $k))) -}}
{{- fail (printf "tfserving.config.%s is empty: generate the files (`servecmp configs <experiment> --out build/kind/configs`) and pass --set-file tfserving.config.%s=build/kind/configs/tfserving/%s" $k $k (ternary "flags.txt" (printf "%s.config" $k) (eq $k "flags"))) -}}
{{- end -}}
{{- end -}}
{{- $flags := (include "tfserving.flags" . | fromYaml).flags -}}
{{- if not (has (printf "--port=%v" .Values.ports.grpc) $flags) -}}
{{- fail (printf "tfserving.config.flags: no --port=%v (the chart's gRPC port); regenerate the flags or fix tfserving.ports.grpc" .Values.ports.grpc) -}}
{{- end -}}
{{- if not (has (printf "--rest_api_port=%v" .Values.ports.http) $flags) -}}
{{- fail (printf "tfserving.config.flags: no --rest_api_port=%v (the chart's REST port); regenerate the flags or fix tfserving.ports.http" .Values.ports.http) -}}
{{- end -}}
{{- range $f := $flags -}}
{{- if regexMatch "^--[a-z_]+_file=" $f -}}
{{- $path := regexReplaceAll "^--[a-z_]+_file=" $f "" -}}
{{- if not (hasPrefix (printf "%s/" $.Values.config.mountDir) $path) -}}
{{- fail (printf "tfserving.config.flags: %s points outside the mounted config directory %s" $f $.Values.config.mountDir) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $base := printf "base_path: \"%s/%s\"" .Values.modelRoot .Values.global.model.name -}}
{{- if not (contains $base (toString .Values.config.models)) -}}
{{- fail (printf "tfserving.config.models: expected %s (model %q under modelRoot %s)" $base .Values.global.model.name .Values.modelRoot) -}}
{{- end -}}
{{- if not (contains (printf "%q" .Values.metricsPath) (toString .Values.config.monitoring)) -}}
{{- fail (printf "tfserving.config.monitoring: the prometheus path is not %q (tfserving.metricsPath)" .Values.metricsPath) -}}
{{- end -}}
{{- end -}}

{{/*
tfserving.threads: math threads when the generator gave none: floor(cpu limit), at least 1.
*/}}
{{- define "tfserving.threads" -}}
{{- max 1 (int (floor (float64 .Values.global.resources.cpu))) -}}
{{- end -}}

{{/*
tfserving.resources: requests = limits from the one shared budget (global.resources).
*/}}
{{- define "tfserving.resources" -}}
{{- $r := dict "cpu" (toString .Values.global.resources.cpu) "memory" (printf "%vMi" .Values.global.resources.memoryMiB) -}}
requests:
  {{- toYaml $r | nindent 2 }}
limits:
  {{- toYaml $r | nindent 2 }}
{{- end -}}

{{/*
tfserving.containerSecurityContext: non-root, no privilege escalation, no capabilities,
read-only root filesystem (/tmp is an emptyDir).
*/}}
{{- define "tfserving.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: {{ .Values.securityContext.readOnlyRootFilesystem }}
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
tfserving.protocolEnabled: "true" when the protocol (rest|grpc) is in global.protocols.
*/}}
{{- define "tfserving.protocolEnabled" -}}
{{- if has .protocol .root.Values.global.protocols -}}true{{- end -}}
{{- end -}}
