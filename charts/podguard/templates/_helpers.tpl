{{/*
Names, labels and the pieces several templates must agree on (Service name, TLS Secret name,
certificate DNS names, exempt namespaces).
*/}}

{{- define "podguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "podguard.fullname" -}}
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

{{- define "podguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "podguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "podguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "podguard.labels" -}}
helm.sh/chart: {{ include "podguard.chart" . }}
{{ include "podguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: podguard
{{- end -}}

{{- define "podguard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "podguard.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding tls.crt, tls.key and ca.crt, whoever issues it. */}}
{{- define "podguard.tlsSecretName" -}}
{{- printf "%s-tls" (include "podguard.fullname" .) -}}
{{- end -}}

{{/* The cert-manager Certificate for the serving certificate (referenced by the CA injector). */}}
{{- define "podguard.servingCertificateName" -}}
{{- printf "%s-serving" (include "podguard.fullname" .) -}}
{{- end -}}

{{/* The names the API server may use for the Service; the first is the one it uses. */}}
{{- define "podguard.dnsNames" -}}
{{- $svc := include "podguard.fullname" . -}}
- {{ printf "%s.%s.svc" $svc .Release.Namespace }}
- {{ printf "%s.%s" $svc .Release.Namespace }}
- {{ $svc }}
{{- end -}}

{{/*
Exempt namespaces: the configured ones plus, always, the release namespace, and cert-manager's
when it issues the serving certificate: otherwise an expired certificate would take podguard
down and, under failurePolicy Fail, keep the cert-manager pods that renew it from starting.
*/}}
{{- define "podguard.exemptNamespaces" -}}
{{- $all := append (.Values.exemptions.namespaces | default list) .Release.Namespace -}}
{{- if .Values.certManager.enabled -}}
{{- /* default: `helm upgrade --reuse-values` from a release made before this value existed. */ -}}
{{- $all = append $all (.Values.certManager.namespace | default "cert-manager") -}}
{{- end -}}
{{- toJson (uniq $all) -}}
{{- end -}}

{{/*
The webhook's failurePolicy: webhook.failurePolicy if set, else Fail only when the cluster default
is enforce. Under warn or audit the cluster default refuses nothing, so failing closed would let a
podguard outage block pods in exchange for nothing.
*/}}
{{- define "podguard.failurePolicy" -}}
{{- if .Values.webhook.failurePolicy -}}
{{- .Values.webhook.failurePolicy -}}
{{- else if eq .Values.mode "enforce" -}}
Fail
{{- else -}}
Ignore
{{- end -}}
{{- end -}}

{{- define "podguard.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* What the helm test expects from the dry-run privileged pod. */}}
{{- define "podguard.testExpect" -}}
{{- if .Values.test.expect -}}
{{- .Values.test.expect -}}
{{- else -}}
{{- get (dict "enforce" "deny" "warn" "warn" "audit" "admit") .Values.mode -}}
{{- end -}}
{{- end -}}

{{/* "ADDRESS:PORT" from (list address port), bracketing IPv6 addresses. */}}
{{- define "podguard.hostPort" -}}
{{- $addr := index . 0 -}}
{{- if contains ":" $addr -}}
{{- printf "[%s]:%d" $addr (int (index . 1)) -}}
{{- else -}}
{{- printf "%s:%d" $addr (int (index . 1)) -}}
{{- end -}}
{{- end -}}

{{/* Checks the schema cannot express, with messages that say what to do. */}}
{{- define "podguard.validate" -}}
{{- $nodePorts := dict "10248" "the kubelet's health port" "10249" "kube-proxy's metrics port" "10250" "the kubelet's API port" "10255" "the kubelet's read-only port" "10256" "kube-proxy's health port" -}}
{{- range $key, $port := .Values.ports -}}
{{- with get $nodePorts (toString $port) -}}
{{- fail (printf "ports.%s: %v is %s on every node; under hostNetwork the two would clash. Pick another port (default 9443 for the webhook, 9090 for metrics)." $key $port .) -}}
{{- end -}}
{{- end -}}
{{- if eq (int .Values.ports.webhook) (int .Values.ports.metrics) -}}
{{- fail (printf "ports.webhook and ports.metrics are both %v: they must differ." .Values.ports.webhook) -}}
{{- end -}}
{{- end -}}

{{/* Labels for the helm test resources: deliberately not matching the webhook pods' selector. */}}
{{- define "podguard.testLabels" -}}
helm.sh/chart: {{ include "podguard.chart" . }}
app.kubernetes.io/name: {{ include "podguard.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: podguard
{{- end -}}
