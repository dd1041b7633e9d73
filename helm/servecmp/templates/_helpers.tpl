{{/*
servecmp.fullname: prefix of the umbrella's own objects (dashboards, rules, tests): the release name.
*/}}
{{- define "servecmp.fullname" -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{/*
servecmp.labels: standard labels of the umbrella's own objects.
*/}}
{{- define "servecmp.labels" -}}
app.kubernetes.io/name: servecmp
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: servecmp
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/*
servecmp.serverFullname: a subchart's resource prefix seen from the umbrella, for the helm test
and NOTES. Same rule as torchserve.fullname / tfserving.fullname.
Call: include "servecmp.serverFullname" (dict "root" . "server" "torchserve")
*/}}
{{- define "servecmp.serverFullname" -}}
{{- $v := index .root.Values .server -}}
{{- if $v.fullnameOverride -}}
{{- $v.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .root.Release.Name .server | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
servecmp.zeroInstances: JSON body {"instances": <zeros of shape [1, C, H, W]>} built from
global.model.inputShape; the same body shape both servers accept over REST.
*/}}
{{- define "servecmp.zeroInstances" -}}
{{- $shape := .Values.global.model.inputShape -}}
{{- $c := int (index $shape 0) -}}{{- $h := int (index $shape 1) -}}{{- $w := int (index $shape 2) -}}
{{- $row := printf "[%s]" (repeat $w "0.0," | trimSuffix ",") -}}
{{- $plane := printf "[%s]" (repeat $h (printf "%s," $row) | trimSuffix ",") -}}
{{- $image := printf "[%s]" (repeat $c (printf "%s," $plane) | trimSuffix ",") -}}
{{- printf "{\"instances\": [%s]}" $image -}}
{{- end -}}

{{/*
servecmp.dashboardName: ConfigMap name for a dashboard file: <release>-dashboard-<file stem>,
lowercased, non-alphanumerics turned into dashes, at most 63 characters.
*/}}
{{- define "servecmp.dashboardName" -}}
{{- $stem := regexReplaceAll "[^a-z0-9-]+" (.path | base | trimSuffix ".json" | lower) "-" -}}
{{- printf "%s-dashboard-%s" (include "servecmp.fullname" .root) $stem | trunc 63 | trimSuffix "-" -}}
{{- end -}}
