{{/*
TorchServe's own helpers. Everything shared (names, labels, image, ports, Services, probes,
ServiceMonitor, security contexts) is in the servecmp-lib library chart; ports and paths come
from the generated `wire` values.
*/}}

{{/*
torchserve.readinessCommand: exit 0 only when a worker of the model is READY in the management
API (GET /models/<name> on the wire's management port), from pytorch/serve v0.12.0:
- /ping is not enough: it answers Healthy while the worker loads or crash-loops
  (ApiUtils.isModelHealthy counts WorkerThread.isHealthy(), true until a recovery outlasts
  maxRetryTimeout);
- no GET answers 200 only with a READY worker either: ModelServer.initModelStore registers the
  model and starts its workers without waiting before the REST server binds, so GET /models/<name>
  is 200 while they load; a worker is "READY" in its body only when WORKER_MODEL_LOADED
  (ApiUtils.getModelDescription), and the model-level status is never set (GSON omits it).
So an exec probe reads the body, but with bash builtins (/dev/tcp, read): ~1 ms of CPU per run
where a Python interpreter took ~65 ms inside the measured 1-CPU container. The server keeps the
connection open (NettyUtils.sendJsonResponse: keepAlive true), so the script stops at the
status line or the array's closing "]" and every read has a timeout.
*/}}
{{- define "torchserve.readinessCommand" -}}
{{- $mgmt := include "servecmp-lib.portName" (dict "root" . "role" "management") -}}
{{- $port := (index .Values.wire.ports $mgmt).port -}}
exec 3<>/dev/tcp/127.0.0.1/{{ $port }} || exit 1
printf 'GET /models/{{ .Values.global.model.name }} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' >&3
IFS= read -t 4 -r status <&3 || exit 1
case $status in "HTTP/1.1 200 "*) ;; *) exit 1;; esac
while IFS= read -t 4 -r line <&3; do
  case $line in *'"status": "READY"'*) exit 0;; "]"|"]"$'\r') exit 1;; esac
done
exit 1
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
