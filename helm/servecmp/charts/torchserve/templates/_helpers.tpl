{{/*
torchserve.name: the chart name (or nameOverride), used in app.kubernetes.io/name.
*/}}
{{- define "torchserve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
torchserve.fullname: resource name prefix, <release>-torchserve unless fullnameOverride is set.
The umbrella chart's helm test derives the same name (servecmp.serverFullname); keep them in step.
*/}}
{{- define "torchserve.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-torchserve" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
torchserve.selectorLabels: the immutable labels Deployments and Services select pods by.
*/}}
{{- define "torchserve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "torchserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
torchserve.labels: standard labels on every object; servecmp.io/server names the server for
dashboards and for cluster.py (which finds pods by it).
*/}}
{{- define "torchserve.labels" -}}
{{ include "torchserve.selectorLabels" . }}
app.kubernetes.io/component: model-server
app.kubernetes.io/part-of: servecmp
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
servecmp.io/server: torchserve
{{- end -}}

{{/*
torchserve.image: repository:tag; refuses an empty tag or `latest` (results must name the exact server build).
*/}}
{{- define "torchserve.image" -}}
{{- $tag := toString .Values.image.tag -}}
{{- if or (eq $tag "") (eq $tag "latest") -}}
{{- fail "torchserve.image.tag: pin an exact tag (empty and `latest` are refused)" -}}
{{- end -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}

{{/*
torchserve.props: config.properties parsed into a dict (key=value lines, `#`/`!` comments
skipped), the way java.util.Properties reads its simple form. Returned as YAML; use with fromYaml.
*/}}
{{- define "torchserve.props" -}}
{{- $props := dict -}}
{{- range $line := splitList "\n" (toString .Values.config.properties) -}}
{{- $l := trim $line -}}
{{- if and $l (not (hasPrefix "#" $l)) (not (hasPrefix "!" $l)) (contains "=" $l) -}}
{{- $kv := regexSplit "=" $l 2 -}}
{{- $_ := set $props (trim (index $kv 0)) (trim (index $kv 1)) -}}
{{- end -}}
{{- end -}}
{{- toYaml $props -}}
{{- end -}}

{{/*
torchserve.validate: fails the render when the generated config and this chart disagree
(ports, model store), so a Service can never point at a port the server does not listen on.
*/}}
{{- define "torchserve.validate" -}}
{{- if not (trim (toString .Values.config.properties)) -}}
{{- fail "torchserve.config.properties is empty: generate it (`servecmp configs <experiment> --out build/kind/configs`) and pass --set-file torchserve.config.properties=build/kind/configs/torchserve/config.properties" -}}
{{- end -}}
{{- $p := include "torchserve.props" . | fromYaml -}}
{{- $checks := list
  (list "inference_address" (regexFind "[0-9]+$" (toString (index $p "inference_address"))) .Values.ports.http)
  (list "management_address" (regexFind "[0-9]+$" (toString (index $p "management_address"))) .Values.ports.management)
  (list "metrics_address" (regexFind "[0-9]+$" (toString (index $p "metrics_address"))) .Values.ports.metrics)
  (list "grpc_inference_port" (toString (index $p "grpc_inference_port")) .Values.ports.grpc)
  (list "grpc_management_port" (toString (index $p "grpc_management_port")) .Values.ports.grpcManagement) -}}
{{- range $c := $checks -}}
{{- if ne (index $c 1) (toString (index $c 2)) -}}
{{- fail (printf "torchserve.config.properties: %s port is %q but the chart's port is %v; regenerate the config or fix torchserve.ports" (index $c 0) (index $c 1) (index $c 2)) -}}
{{- end -}}
{{- end -}}
{{- if ne (toString (index $p "model_store")) .Values.modelStore -}}
{{- fail (printf "torchserve.config.properties: model_store is %q but the chart mounts the model store at %q" (toString (index $p "model_store")) .Values.modelStore) -}}
{{- end -}}
{{- end -}}

{{/*
torchserve.threads: math threads when the generator gave none: floor(cpu limit), at least 1.
Derived from the pod's CPU limit, never from the node's cores.
*/}}
{{- define "torchserve.threads" -}}
{{- max 1 (int (floor (float64 .Values.global.resources.cpu))) -}}
{{- end -}}

{{/*
torchserve.resources: requests = limits from the one shared budget (global.resources).
*/}}
{{- define "torchserve.resources" -}}
{{- $r := dict "cpu" (toString .Values.global.resources.cpu) "memory" (printf "%vMi" .Values.global.resources.memoryMiB) -}}
requests:
  {{- toYaml $r | nindent 2 }}
limits:
  {{- toYaml $r | nindent 2 }}
{{- end -}}

{{/*
torchserve.containerSecurityContext: non-root, no privilege escalation, no capabilities,
read-only root filesystem (writable emptyDirs are mounted where TorchServe writes).
*/}}
{{- define "torchserve.containerSecurityContext" -}}
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
torchserve.readinessCommand: exit 0 only when a worker of the model is READY in the management
API (GET /models/<name>). /ping stays "Healthy" while a worker crash-loops, so it is not enough.
Python is the image's own interpreter; one short process every periodSeconds.
*/}}
{{- define "torchserve.readinessCommand" -}}
{{- printf "import json,sys,urllib.request as u; d=json.load(u.urlopen('http://127.0.0.1:%v/models/%s', timeout=4)); sys.exit(0 if any(w.get('status') == 'READY' for m in d for w in m.get('workers', [])) else 1)" .Values.ports.management .Values.global.model.name -}}
{{- end -}}

{{/*
torchserve.protocolEnabled: "true" when the protocol (rest|grpc) is in global.protocols.
*/}}
{{- define "torchserve.protocolEnabled" -}}
{{- if has .protocol .root.Values.global.protocols -}}true{{- end -}}
{{- end -}}
