{{/*
TorchServe's own helpers. Everything shared (names, labels, image, ports, Services, probes,
ServiceMonitor, security contexts) is in the servecmp-lib library chart; ports and paths come
from the generated `wire` values.
*/}}

{{/*
torchserve.readinessCommand: exit 0 only when a worker of the model is READY in the management
API (GET /models/<name> on the wire's management port). /ping stays "Healthy" while a worker
crash-loops, so it is not enough. Python is the image's own interpreter; one short process every
periodSeconds.
*/}}
{{- define "torchserve.readinessCommand" -}}
{{- $mgmt := include "servecmp-lib.portName" (dict "root" . "role" "management") -}}
{{- printf "import json,sys,urllib.request as u; d=json.load(u.urlopen('http://127.0.0.1:%v/models/%s', timeout=4)); sys.exit(0 if any(w.get('status') == 'READY' for m in d for w in m.get('workers', [])) else 1)" (index .Values.wire.ports $mgmt).port .Values.global.model.name -}}
{{- end -}}

{{/*
torchserve.check: the wire guard (with the paths this chart mounts) and the generated config.
*/}}
{{- define "torchserve.check" -}}
{{- include "servecmp-lib.wire" (dict "root" . "paths" (list "config" "models")) -}}
{{- if not (include "servecmp-lib.portName" (dict "root" . "role" "management")) -}}
{{- fail "torchserve.wire.ports: no port with role management (the readiness probe asks the management API)" -}}
{{- end -}}
{{- include "servecmp-lib.requireConfig" (dict "root" . "files" (dict "properties" "config.properties")) -}}
{{- end -}}
