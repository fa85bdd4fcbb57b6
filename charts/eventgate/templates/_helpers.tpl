{{/* Name of the chart, overridable. */}}
{{- define "eventgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified release name: also the name of the ingress Service that K_SINK points at. */}}
{{- define "eventgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "eventgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
"true" when the cluster serves the Prometheus Operator's monitoring.coreos.com/v1 API, else "". Helm
reports an API both as group/version and as group/version/kind when it talks to a cluster; `helm template
--api-versions` reports exactly what it is given, and GitOps tools give the group/version form.
*/}}
{{- define "eventgate.hasServiceMonitorAPI" -}}
{{- if or (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor") -}}
true
{{- end -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "eventgate.labels" -}}
helm.sh/chart: {{ include "eventgate.chart" . }}
{{ include "eventgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: eventgate
{{- end -}}

{{/* Labels that select the gateway pods; never change them (Deployment selectors are immutable). */}}
{{- define "eventgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "eventgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "eventgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "eventgate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "eventgate.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
eventgate.objects: every manifest of .Values.manifests as a JSON array of objects. An item is either
an object or a string of (multi-document) YAML; empty documents are skipped, a document that is not
YAML fails the render naming its position.
*/}}
{{- define "eventgate.objects" -}}
{{- $out := list -}}
{{- range $i, $item := .Values.manifests -}}
{{- if kindIs "string" $item -}}
{{- range $j, $doc := regexSplit "(?m)^---[ \\t]*$" $item -1 -}}
{{- $o := fromYaml $doc -}}
{{- if hasKey $o "Error" -}}
{{- fail (printf "manifests[%d] document %d is not valid YAML: %v" $i $j $o.Error) -}}
{{- end -}}
{{- if $o -}}{{- $out = append $out $o -}}{{- end -}}
{{- end -}}
{{- else if kindIs "map" $item -}}
{{- $out = append $out $item -}}
{{- else -}}
{{- fail (printf "manifests[%d] must be an object or a YAML string, not %s" $i (kindOf $item)) -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Namespace of a manifest object as the gateway sees it (default "default"). */}}
{{- define "eventgate.objNamespace" -}}
{{- dig "metadata" "namespace" "" . | default "default" -}}
{{- end -}}

{{/*
eventgate.plural: the resource name of a kind, lower-case plural (Event → events, Ingress → ingresses,
NetworkPolicy → networkpolicies), for RBAC rules.
*/}}
{{- define "eventgate.plural" -}}
{{- $k := lower . -}}
{{- if or (hasSuffix "s" $k) (hasSuffix "x" $k) (hasSuffix "ch" $k) (hasSuffix "sh" $k) -}}
{{- printf "%ses" $k -}}
{{- else if and (hasSuffix "y" $k) (not (regexMatch "[aeiou]y$" $k)) -}}
{{- printf "%sies" (trimSuffix "y" $k) -}}
{{- else -}}
{{- printf "%ss" $k -}}
{{- end -}}
{{- end -}}

{{/*
eventgate.rbac: what the Kubernetes sources in manifests read, as JSON
{"NAMESPACE": {"API_GROUP": ["resource", ...]}}. KubernetesEventSource reads core events in
spec.namespace; ApiServerSource reads each listed resource in its own namespace. rbac.namespaces add
core events in more namespaces.
*/}}
{{- define "eventgate.rbac" -}}
{{- $grants := dict -}}
{{- range (include "eventgate.objects" . | fromJsonArray) -}}
{{- $ns := include "eventgate.objNamespace" . -}}
{{- if eq (.kind | default "") "KubernetesEventSource" -}}
{{- $w := dig "spec" "namespace" "" . | default $ns -}}
{{- $g := get $grants $w | default dict -}}
{{- $_ := set $g "" (append (get $g "" | default list) "events" | uniq) -}}
{{- $_ := set $grants $w $g -}}
{{- else if eq (.kind | default "") "ApiServerSource" -}}
{{- $g := get $grants $ns | default dict -}}
{{- $res := dig "spec" "resources" list . -}}
{{- if not $res -}}{{- $res = list (dict "apiVersion" "v1" "kind" "Event") -}}{{- end -}}
{{- range $res -}}
{{- $av := .apiVersion | default "v1" -}}
{{- $group := "" -}}
{{- if contains "/" $av -}}{{- $group = first (splitList "/" $av) -}}{{- end -}}
{{- $_ := set $g $group (append (get $g $group | default list) (include "eventgate.plural" (.kind | default "Event")) | uniq) -}}
{{- end -}}
{{- $_ := set $grants $ns $g -}}
{{- end -}}
{{- end -}}
{{- range .Values.rbac.namespaces -}}
{{- $g := get $grants . | default dict -}}
{{- $_ := set $g "" (append (get $g "" | default list) "events" | uniq) -}}
{{- $_ := set $grants . $g -}}
{{- end -}}
{{- toJson $grants -}}
{{- end -}}

{{/* eventgate.rules: RBAC rules from one {"API_GROUP": [resources]} map, groups sorted. */}}
{{- define "eventgate.rules" -}}
{{- range $group := keys . | sortAlpha }}
- apiGroups: [{{ $group | quote }}]
  resources: {{ get $ $group | sortAlpha | toJson }}
  verbs: ["get", "list", "watch"]
{{- end }}
{{- end -}}

{{/* The gateway configuration file (gateway/config keys), with .Values.config merged over it. */}}
{{- define "eventgate.config" -}}
{{- $fullname := include "eventgate.fullname" . -}}
{{- $c := dict
  "ingress" (dict "address" (printf ":%v" .Values.service.port)
                  "externalURL" (printf "http://%s.%s.svc.cluster.local:%v" $fullname .Release.Namespace .Values.service.port))
  "admin" (dict "address" (printf ":%v" .Values.service.adminPort))
  "shutdown" (dict "grace" (printf "%vs" .Values.shutdown.graceSeconds))
  "log" (dict "level" .Values.log.level "format" .Values.log.format)
-}}
{{- if .Values.kubernetes.enabled -}}
{{- $_ := set $c "resources" (dict "kubernetes" true) -}}
{{- $kc := dict "managedOnly" .Values.kubernetes.managedOnly "leaseNamespace" .Release.Namespace
  "leaseName" (printf "%s-status" $fullname) -}}
{{- with .Values.kubernetes.namespaces -}}{{- $_ := set $kc "namespaces" . -}}{{- end -}}
{{- $_ := set $c "kubernetes" $kc -}}
{{- end -}}
{{- if .Values.kafka.brokers -}}
{{- $k := dict "brokers" .Values.kafka.brokers
  "defaultPartitions" .Values.kafka.defaultPartitions
  "defaultReplicationFactor" .Values.kafka.defaultReplicationFactor -}}
{{- with .Values.kafka.tls -}}
{{- if .enabled -}}
{{- $t := dict "enabled" true -}}
{{- if and .existingSecret .caKey -}}{{- $_ := set $t "caFile" (printf "/var/run/secrets/eventgate-kafka-tls/%s" .caKey) -}}{{- end -}}
{{- if and .existingSecret .certKey -}}{{- $_ := set $t "certFile" (printf "/var/run/secrets/eventgate-kafka-tls/%s" .certKey) -}}{{- end -}}
{{- if and .existingSecret .keyKey -}}{{- $_ := set $t "keyFile" (printf "/var/run/secrets/eventgate-kafka-tls/%s" .keyKey) -}}{{- end -}}
{{- $_ := set $k "tls" $t -}}
{{- end -}}
{{- end -}}
{{- if .Values.kafka.sasl.mechanism -}}
{{- $_ := set $k "sasl" (dict "mechanism" .Values.kafka.sasl.mechanism "username" .Values.kafka.sasl.username) -}}
{{- end -}}
{{- $_ := set $c "kafka" $k -}}
{{- $_ := set $c "channels" (dict "defaultProvisioner" "kafka") -}}
{{- end -}}
{{- with .Values.nats -}}
{{- if .servers -}}
{{- $n := dict "servers" .servers "defaultPartitions" .defaultPartitions "replicas" .replicas -}}
{{- with .auth -}}
{{- if .username -}}{{- $_ := set $n "username" .username -}}{{- end -}}
{{- if .nkeySeedKey -}}{{- $_ := set $n "nkeySeedFile" (printf "/var/run/secrets/eventgate-nats-auth/%s" .nkeySeedKey) -}}{{- end -}}
{{- if .credsKey -}}{{- $_ := set $n "credsFile" (printf "/var/run/secrets/eventgate-nats-auth/%s" .credsKey) -}}{{- end -}}
{{- end -}}
{{- with .tls -}}
{{- if .enabled -}}
{{- $t := dict "enabled" true -}}
{{- if and .existingSecret .caKey -}}{{- $_ := set $t "caFile" (printf "/var/run/secrets/eventgate-nats-tls/%s" .caKey) -}}{{- end -}}
{{- if and .existingSecret .certKey -}}{{- $_ := set $t "certFile" (printf "/var/run/secrets/eventgate-nats-tls/%s" .certKey) -}}{{- end -}}
{{- if and .existingSecret .keyKey -}}{{- $_ := set $t "keyFile" (printf "/var/run/secrets/eventgate-nats-tls/%s" .keyKey) -}}{{- end -}}
{{- $_ := set $n "tls" $t -}}
{{- end -}}
{{- end -}}
{{- $_ := set $c "nats" $n -}}
{{- if not $.Values.kafka.brokers -}}
{{- $_ := set $c "channels" (dict "defaultProvisioner" "nats") -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- with .Values.tracing -}}
{{- if .endpoint -}}
{{- $tr := dict "endpoint" .endpoint "protocol" .protocol "sampling" .sampling -}}
{{- if .serviceName -}}{{- $_ := set $tr "serviceName" .serviceName -}}{{- end -}}
{{- $_ := set $c "tracing" $tr -}}
{{- end -}}
{{- end -}}
{{- if .Values.secrets -}}
{{- $_ := set $c "secretsDir" "/var/run/secrets/eventgate" -}}
{{- end -}}
{{- toYaml (mergeOverwrite $c (deepCopy .Values.config)) -}}
{{- end -}}

{{/* Checks the nats values a schema cannot: one credential at most, each from the Secret. Renders
nothing; fails with a message naming the value. */}}
{{- define "eventgate.checkNATS" -}}
{{- with .Values.nats.auth -}}
{{- $set := list -}}
{{- range $k := list "passwordKey" "tokenKey" "nkeySeedKey" "credsKey" -}}
{{- if get $.Values.nats.auth $k -}}{{- $set = append $set $k -}}{{- end -}}
{{- end -}}
{{- if gt (len $set) 1 -}}
{{- fail (printf "nats.auth: set one of passwordKey, tokenKey, nkeySeedKey or credsKey, not %s" (join ", " $set)) -}}
{{- end -}}
{{- if and $set (not .existingSecret) -}}
{{- fail (printf "nats.auth.%s needs nats.auth.existingSecret (the Secret holding it)" (first $set)) -}}
{{- end -}}
{{- if and .passwordKey (not .username) -}}
{{- fail "nats.auth.passwordKey needs nats.auth.username" -}}
{{- end -}}
{{- if and .username (not .passwordKey) -}}
{{- fail "nats.auth.username needs nats.auth.passwordKey (the password's key in existingSecret)" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.nats.tls.enabled .Values.nats.tls.existingSecret (ne (empty .Values.nats.tls.certKey) (empty .Values.nats.tls.keyKey)) -}}
{{- fail "nats.tls.certKey and nats.tls.keyKey go together" -}}
{{- end -}}
{{- end -}}
