#!/usr/bin/env bash
# Checks charts/podguard and the files generated from it; what .ci/run calls for the chart.
#   1. charts/podguard/policies and deploy/podguard.yaml are in step with their sources
#   2. helm lint --strict with the default values and every charts/podguard/ci/*-values.yaml
#   3. helm template of the same into target/helm-check/ (kept for inspection)
#   4. values.schema.json refuses an unknown top-level key, a wrong type, an unknown
#      failurePolicy and a bad cert-manager namespace
#   5. the webhook's failurePolicy follows mode unless set, and cert-manager's namespace is
#      exempt (webhook and server alike) whenever cert-manager issues the certificate
#   6. tests/e2e/chart.rs: every rendered object is valid for its k8s-openapi type, plus the
#      chart's safety properties (webhook wiring, TLS, exemptions, RBAC, policy ConfigMaps)
#   7. `podguard check` with the restricted policy finds nothing in the rendered chart (the
#      hostNetwork variant: only its host networking)
# Env: PODGUARD_BIN (default target/debug/podguard, built by step 6).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh

chart=charts/podguard
namespace=podguard-system
out=target/helm-check
rm -rf "$out"
mkdir -p "$out"

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'helm-check: FAILED: %s\n' "$*" >&2; exit 1; }

step "generated files are up to date"
scripts/render-deploy.sh --check

step "helm lint --strict"
helm lint --strict "$chart" --namespace "$namespace"
for values in "$chart"/ci/*-values.yaml; do
  helm lint --strict "$chart" --namespace "$namespace" --values "$values"
done

step "helm template (defaults and every ci/ value set) into $out"
variants=(default)
helm template podguard "$chart" --namespace "$namespace" >"$out/default.yaml"
for values in "$chart"/ci/*-values.yaml; do
  name=$(basename "$values" -values.yaml)
  variants+=("$name")
  helm template podguard "$chart" --namespace "$namespace" --values "$values" >"$out/$name.yaml"
done
printf '%s\n' "${variants[@]/%/.yaml}"

step "values.schema.json refuses bad values"
refused() {
  local what=$1 expected=$2
  shift 2
  local log="$out/refused.log"
  if helm template podguard "$chart" --namespace "$namespace" "$@" >/dev/null 2>"$log"; then
    fail "helm template accepted $what ($*)"
  fi
  grep -q -- "$expected" "$log" || { cat "$log" >&2; fail "$what was refused, but not with \"$expected\""; }
  echo "refused: $what ($*)"
  if helm lint --strict "$chart" --namespace "$namespace" "$@" >"$log" 2>&1; then
    fail "helm lint accepted $what ($*)"
  fi
}
refused "an unknown top-level key" "additional properties 'replicas' not allowed" --set replicas=3
refused "a wrong type" "got string, want integer" --set replicaCount=two
refused "an unknown failurePolicy" "/webhook/failurePolicy" --set webhook.failurePolicy=Open
refused "a cert-manager namespace that is not a namespace name" "/certManager/namespace" \
  --set certManager.namespace=Cert_Manager

step "failurePolicy follows mode unless set; cert-manager's namespace is exempt"
# Fail under warn or audit would only let an outage block pods while refusing nothing; Ignore
# under enforce would let an outage switch enforcement off.
failure_policy_is() {
  local expected=$1 got
  shift
  # The first webhook judges pods and workloads; the second (policy ConfigMaps) always ignores.
  got=$(helm template podguard "$chart" --namespace "$namespace" --show-only templates/webhook.yaml "$@" \
    | sed -n 's/^ *failurePolicy: *//p' | head -n1)
  [ "$got" = "$expected" ] || fail "failurePolicy with ${*:-the default values}: got \"$got\", want $expected"
  echo "failurePolicy $expected: ${*:-default values (mode warn)}"
}
failure_policy_is Ignore
failure_policy_is Fail --set mode=enforce
failure_policy_is Ignore --set mode=audit
failure_policy_is Fail --set mode=warn --set webhook.failurePolicy=Fail
failure_policy_is Ignore --set mode=enforce --set webhook.failurePolicy=Ignore
policies_hook=$(helm template podguard "$chart" --namespace "$namespace" --show-only templates/webhook.yaml \
  --set mode=enforce | sed -n 's/^ *failurePolicy: *//p' | sed -n 2p)
[ "$policies_hook" = Ignore ] || fail "the policy ConfigMap webhook's failurePolicy under enforce: got \"$policies_hook\", want Ignore"
echo "policy ConfigMap webhook: failurePolicy Ignore under enforce"

# exempt yes|no NAMESPACE ARGS...: NAMESPACE is (or is not) both in the webhook's NotIn list and
# in the server's --exempt-namespaces. The webhook's list is what keeps the API server from
# waiting on podguard; the server's must agree, so that podguard never judges a namespace the
# chart promises to leave alone, however the request reached it.
exempt() {
  local expected=$1 ns=$2 rendered webhook_list server_list in_webhook=no in_server=no
  shift 2
  rendered=$(helm template podguard "$chart" --namespace "$namespace" "$@")
  webhook_list=$(grep -A2 -- '- key: kubernetes.io/metadata.name' <<<"$rendered" | grep -A1 'operator: NotIn' \
    | sed -n 's/^ *values: *//p')
  server_list=$(sed -n 's/^ *- --exempt-namespaces=//p' <<<"$rendered")
  [ -n "$webhook_list" ] && [ -n "$server_list" ] || fail "no exempt namespace list rendered (${*:-default values})"
  [[ $webhook_list == *"\"$ns\""* ]] && in_webhook=yes
  [[ ,$server_list, == *",$ns,"* ]] && in_server=yes
  [ "$in_webhook" = "$expected" ] && [ "$in_server" = "$expected" ] \
    || fail "$ns exempt: want $expected, got webhook NotIn $webhook_list, server --exempt-namespaces=$server_list (${*:-default values})"
  echo "$ns exempt: $expected (webhook NotIn $webhook_list, server $server_list; ${*:-default values})"
}
exempt no cert-manager
exempt yes cert-manager --set certManager.enabled=true
exempt yes security-certs --set certManager.enabled=true --set certManager.namespace=security-certs
exempt no cert-manager --set certManager.enabled=true --set certManager.namespace=security-certs

step "rendered objects against k8s-openapi types, and the chart's properties (tests/e2e/chart.rs)"
cargo test --test e2e chart:: 2>&1 | tee "$out/cargo-test.log"
grep -Eq '^running [1-9][0-9]* tests?$' "$out/cargo-test.log" \
  || fail "no chart tests ran: tests/e2e/main.rs must declare \`mod chart;\`"

step "the chart's pods pass podguard's pod-security-restricted policy"
bin=${PODGUARD_BIN:-target/debug/podguard}
[ -x "$bin" ] || fail "no podguard binary at $bin (run cargo build, or set PODGUARD_BIN)"
# findings REPORT [PATH]: prints the violations in a `check --format json` report (all of them,
# whatever their mode: pod-security-restricted itself is a warn-mode policy, so the exit code
# alone would not see them), or only those at PATH; fails if no Deployment was evaluated.
findings() {
  python3 - "$@" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
at = sys.argv[2] if len(sys.argv) > 2 else None
evaluated = [r for r in report["results"] if r["kind"] == "Deployment" and not r["skipped"]]
if not evaluated:
    sys.exit("podguard check evaluated no Deployment in " + sys.argv[1])
for r in report["results"]:
    for v in r.get("violations", []):
        if at is None or v["path"] == at:
            print(f'{r["kind"]}/{r["name"]}: {v["mode"]} [{v["policy"]}/{v["rule"]}] {v["path"]}: {v["message"]}')
PY
}
restricted=policies/pod-security-restricted.yaml
for variant in "${variants[@]}"; do
  report="$out/$variant.check.json"
  rc=0
  "$bin" check --format json --policies "$restricted" "$out/$variant.yaml" >"$report" || rc=$?
  [ "$rc" -le 1 ] || fail "podguard check exited $rc on the $variant variant"
  found=$(findings "$report" 2>&1) || fail "$found"
  if [ "$variant" = host-network ]; then
    # Host networking is what that variant is for; it breaks Pod Security baseline by design
    # (the release namespace is exempt), and it must be the only finding.
    hostnet=$(findings "$report" spec.template.spec.hostNetwork)
    [ -n "$hostnet" ] || fail "podguard check did not report host networking in the host-network variant"
    [ "$found" = "$hostnet" ] || fail "host-network variant: findings besides hostNetwork:"$'\n'"$found"
    echo "$variant: only hostNetwork reported, as expected"
    continue
  fi
  [ -z "$found" ] || fail "the chart rendered with $variant values breaks pod-security-restricted:"$'\n'"$found"
  echo "$variant: passes pod-security-restricted"
done

printf '\nhelm-check: all checks passed\n'
