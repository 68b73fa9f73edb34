{{/*
The chart-generated TLS material, as a YAML map of base64 strings {crt, key, ca, caBundle} plus
notAfter (unix seconds) and dnsNames. Include it ONCE per render (webhook.yaml does): every call
generates new keys.

The existing Secret is reused when it is complete, was made for the same DNS names, and is valid
for more than tls.renewBeforeDays. Otherwise a new CA and certificate are made, and the caBundle
carries the new CA followed by the old one: the API server then trusts both the certificate the
pods still serve and the new one they switch to once the kubelet refreshes the mounted Secret.
`lookup` returns nothing under `helm template` and client-side dry runs, so those always generate.
*/}}
{{- define "podguard.tls" -}}
{{- $secretName := include "podguard.tlsSecretName" . -}}
{{- $dnsNames := include "podguard.dnsNames" . | fromYamlArray -}}
{{- $dnsKey := join "," $dnsNames -}}
{{- $now := now | unixEpoch | int64 -}}
{{- $old := lookup "v1" "Secret" .Release.Namespace $secretName | default dict -}}
{{- $oldData := get $old "data" | default dict -}}
{{- $oldMeta := get $old "metadata" | default dict -}}
{{- $oldAnn := get $oldMeta "annotations" | default dict -}}
{{- $oldNotAfter := get $oldAnn "podguard.dev/tls-not-after" | default "0" | int64 -}}
{{- $renewAt := add $now (mul .Values.tls.renewBeforeDays 86400) -}}
{{- $complete := and (get $oldData "tls.crt") (get $oldData "tls.key") (get $oldData "ca.crt") -}}
{{- if and $complete (eq (get $oldAnn "podguard.dev/tls-dns-names") $dnsKey) (gt $oldNotAfter $renewAt) -}}
crt: {{ get $oldData "tls.crt" }}
key: {{ get $oldData "tls.key" }}
ca: {{ get $oldData "ca.crt" }}
caBundle: {{ get $oldData "ca.crt" }}
notAfter: {{ $oldNotAfter | quote }}
{{- else -}}
{{- $days := int .Values.tls.validityDays -}}
{{- $ca := genCAWithKey (printf "%s-ca" (include "podguard.fullname" .)) $days (genPrivateKey "ecdsa") -}}
{{- $cert := genSignedCertWithKey (first $dnsNames) nil $dnsNames $days $ca (genPrivateKey "ecdsa") -}}
{{- $bundle := $ca.Cert -}}
{{- with get $oldData "ca.crt" -}}
{{- $bundle = printf "%s\n%s" (trimSuffix "\n" $ca.Cert) (b64dec .) -}}
{{- end -}}
crt: {{ $cert.Cert | b64enc }}
key: {{ $cert.Key | b64enc }}
ca: {{ $ca.Cert | b64enc }}
caBundle: {{ $bundle | b64enc }}
notAfter: {{ add $now (mul $days 86400) | quote }}
{{- end }}
dnsNames: {{ $dnsKey | quote }}
{{- end -}}
