#!/usr/bin/env bash
# End-to-end suite: podguard against a real control plane (kube-apiserver and
# kube-controller-manager 1.20, built by prepare.sh).
#
# Starts etcd and kube-apiserver on free loopback ports inside a temp dir, starts
# `podguard serve --configmaps` against it with a self-signed certificate, registers podguard as a
# ValidatingWebhookConfiguration (by URL on 127.0.0.1, never by Service), starts
# kube-controller-manager (deployment, replicaset, namespace and garbage-collector controllers),
# and runs the scenarios below through kubectl. There is no kubelet: pods are stored, never run.
# Whatever happens, every process it started is stopped by PID and the temp dir is removed (EXIT
# trap).
#
#   tests/e2e/kube/run.sh                      # everything
#   E2E_ONLY_CLUSTER=1 tests/e2e/kube/run.sh   # the cluster smoke test (+ chart check), no podguard
#
# Environment: PODGUARD_BIN (default target/debug/podguard), PODGUARD_CHART (default
# charts/podguard), KUBE_APISERVER, KUBE_CONTROLLER_MANAGER, KUBECTL_1_20 and ETCD (existing
# binaries; skip the build),
# PODGUARD_E2E_CACHE (default ~/.cache/podguard-e2e), E2E_KEEP=1 (keep the temp dir and its logs),
# E2E_ONLY_CLUSTER=1, E2E_AUDIT_PODS=N (after the scenarios, measure the first audit of N pods
# stored in the API server by a podguard started afresh, E2E_BENCH_BIN if set: BENCHMARKS.md).
# The last line is `e2e: N passed, M failed`; the exit status is non-zero
# when anything failed.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
PODGUARD_BIN="${PODGUARD_BIN:-$repo/target/debug/podguard}"
PODGUARD_CHART="${PODGUARD_CHART:-$repo/charts/podguard}"
POLICY_NS=podguard-system
WEBHOOK_NAME=validate.podguard.dev
EXEMPT_NS=e2e-exempt

passed=0
failed=0
pids=()
tmp=""

log() { printf '%s\n' "$*"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# --- cleanup: always, by PID ------------------------------------------------------------------
stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}

show_logs() {
  local f
  for f in podguard.out podguard.err podguard-b.err kube-controller-manager.log kube-apiserver.log etcd.log; do
    [ -s "$tmp/$f" ] || continue
    log "--- last lines of $f"
    tail -n 25 "$tmp/$f" | sed 's/^/  | /'
  done
}

cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1 # an unexpected abort is a failure too
  [ "$failed" -gt 0 ] && [ -n "$tmp" ] && show_logs
  # Scenario 19 restarts the API server in its subshell, so its new PID reaches the cleanup
  # through a file.
  if [ -n "$tmp" ] && [ -s "$tmp/apiserver.pid" ]; then
    pids[1]=$(cat "$tmp/apiserver.pid")
  fi
  # Scenario 24 may kill podguard and start it again, likewise.
  if [ -n "$tmp" ] && [ -s "$tmp/podguard.pid" ] && [ "${#pids[@]}" -gt 2 ]; then
    pids[2]=$(cat "$tmp/podguard.pid")
  fi
  # Reverse start order: the controller manager, podguard, the API server, etcd.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    if ! stop_pid "${pids[$i]}"; then
      log "cleanup: process ${pids[$i]} survived SIGKILL"
      failed=$((failed + 1))
    fi
  done
  [ "${#pids[@]}" -gt 0 ] && wait "${pids[@]}" 2>/dev/null
  if [ -n "$tmp" ] && [ -d "$tmp" ]; then
    if [ "${E2E_KEEP:-}" = 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
  fi
  log "e2e: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A setup step that fails ends the run: counted as one failure, the EXIT trap cleans up.
die() {
  log "setup failed: $*"
  failed=$((failed + 1))
  exit 1
}

# --- kubectl helpers --------------------------------------------------------------------------
# k ARGS...: runs kubectl with a bounded request time; OUT holds stdout+stderr, RC the status.
k() {
  OUT=$(kubectl --request-timeout=30s "$@" 2>&1) && RC=0 || RC=$?
}
# k_in YAML ARGS...: the same with a manifest on stdin.
k_in() {
  local yaml=$1
  shift
  OUT=$(kubectl --request-timeout=30s "$@" <<<"$yaml" 2>&1) && RC=0 || RC=$?
}

bad() {
  failed_assertion=1
  log "  FAIL: $*"
  [ -n "${OUT:-}" ] && printf '%s\n' "$OUT" | sed 's/^/  | /'
  return 1
}
expect_ok() { [ "$RC" -eq 0 ] || bad "expected kubectl to succeed ($*), it exited $RC"; }
expect_fail() { [ "$RC" -ne 0 ] || bad "expected kubectl to fail ($*), it succeeded"; }
expect_has() { grep -qF -- "$1" <<<"$OUT" || bad "output lacks: $1"; }
expect_match() { grep -qE -- "$1" <<<"$OUT" || bad "output matches no line of: $1"; }
expect_lacks() { ! grep -qF -- "$1" <<<"$OUT" || bad "output should not contain: $1"; }
# The refusal kubectl prints for podguard's deny, naming policy, rule and the exact field.
expect_denied() {
  local policy_rule=$1 path=$2
  expect_fail "denied by $policy_rule"
  expect_has "Error from server (Forbidden)"
  expect_has "admission webhook \"$WEBHOOK_NAME\" denied the request: "
  # `[policy/rule] field.path: what is wrong (how to fix)`; dots and brackets matched literally.
  local re_path
  re_path=${path//./\\.}
  re_path=${re_path//[/\\[}
  re_path=${re_path//]/\\]}
  expect_match "\[$policy_rule\] $re_path: .+ \(.+\)"
}

# --- manifests --------------------------------------------------------------------------------
# A container that breaks the baseline level: privileged.
pod_privileged() {
  cat <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $1, labels: {app: $1}}
spec:
  containers:
    - name: app
      image: registry.example/app:1.0
      securityContext: {privileged: true}
EOF
}
# Baseline-compliant, but not restricted (no runAsNonRoot, seccomp, dropped capabilities, ...).
pod_plain() {
  cat <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $1, labels: {app: $1}}
spec:
  containers:
    - name: app
      image: registry.example/app:1.0
EOF
}
deployment_privileged() {
  cat <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: $1}
spec:
  replicas: 1
  selector: {matchLabels: {app: $1}}
  template:
    metadata: {labels: {app: $1}}
    spec:
      containers:
        - name: app
          image: registry.example/app:1.0
          securityContext: {privileged: true}
EOF
}
# policy_configmap NAME MODE LEVEL [NAMESPACE]: a policy ConfigMap with one podSecurity rule,
# limited to NAMESPACE when given so that scenarios do not see each other's policies.
policy_configmap() {
  local name=$1 mode=$2 level=$3 ns=${4:-}
  local match=""
  [ -n "$ns" ] && match="      match: {namespaces: [\"$ns\"]}"
  cat <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: $name
  namespace: $POLICY_NS
  labels: {podguard.dev/policy: "true"}
data:
  policy.yaml: |
    apiVersion: podguard.dev/v1
    kind: Policy
    metadata: {name: $name}
    spec:
      severity: high
      mode: $mode
$match
      rules: [{name: pss, check: podSecurity}]
      params: {level: $level, version: latest}
EOF
}

# namespace NAME [LABEL=VALUE...]
namespace() {
  local name=$1 yaml
  shift
  yaml="apiVersion: v1
kind: Namespace
metadata:
  name: $name
  labels:
    e2e.podguard.dev/suite: \"true\""
  local l
  for l in "$@"; do yaml+="
    ${l%%=*}: \"${l#*=}\""; done
  k_in "$yaml" apply -f -
  expect_ok "create namespace $name"
}

# wait_until TIMEOUT_S CMD...: runs CMD every 0.1 s until it succeeds; 1 on timeout.
wait_until() {
  local deadline=$(($(now_ms) + $1 * 1000))
  shift
  until "$@"; do
    [ "$(now_ms)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}
# Probes for policy hot reload: a server-side dry run of POD_YAML in NS.
dry_run_denied_by() { # POLICY NS POD_YAML
  k_in "$3" create --dry-run=server -n "$2" -f -
  [ "$RC" -ne 0 ] && grep -qF "[$1/" <<<"$OUT"
}
dry_run_allowed() { # NS POD_YAML
  k_in "$2" create --dry-run=server -n "$1" -f -
  [ "$RC" -eq 0 ]
}
# apply_policy_and_wait NAME MODE LEVEL NS: applies the policy and waits (10 s at most) until a
# plain pod in NS is refused (enforce) or warned about (warn) by it.
apply_policy_and_wait() {
  local name=$1 mode=$2 level=$3 ns=$4
  k_in "$(policy_configmap "$name" "$mode" "$level" "$ns")" apply -f -
  expect_ok "apply policy $name"
  local probe
  probe=$(pod_plain probe)
  if [ "$mode" = enforce ]; then
    wait_until 10 dry_run_denied_by "$name" "$ns" "$probe" || bad "policy $name not enforced after 10 s"
  else
    # shellcheck disable=SC2016 # expanded by eval, on each attempt
    wait_until 10 eval 'k_in "$probe" create --dry-run=server -n "$ns" -f -; grep -qE "^Warning: .*$name" <<<"$OUT"' ||
      bad "policy $name gave no warning after 10 s"
  fi
}
# decision_logged NS NAME: podguard's stdout holds a JSON line with a `decision` for NS/NAME
# (searched at any depth, so a logger that nests fields still matches).
decision_logged() {
  grep -F '"decision"' "$tmp/podguard.out" 2>/dev/null | grep -F "$2" |
    jq -R --arg ns "$1" --arg name "$2" \
      'fromjson? // empty | [.. | objects | select(has("decision") and .namespace == $ns and .name == $name)] | length > 0' |
    grep -q true
}
# policy_invalid_event CONFIGMAP: a Warning Event PolicyInvalid about that policy ConfigMap exists.
policy_invalid_event() {
  k get events -n "$POLICY_NS" -o json
  [ "$RC" -eq 0 ] || return 1
  jq -e --arg cm "$1" '[.items[] | select(.reason == "PolicyInvalid" and .type == "Warning"
      and .involvedObject.kind == "ConfigMap" and .involvedObject.name == $cm)] | length > 0' \
    <<<"$OUT" >/dev/null
}
delete_policy() {
  k delete configmap -n "$POLICY_NS" "$1" --wait=true --timeout=30s
  expect_ok "delete policy $1"
}

# --- scenarios --------------------------------------------------------------------------------
# Each runs in a subshell with errexit: the first failed assertion ends it.

# Proves the API server itself works for what the suite does: ConfigMaps and Pods can be
# created, read and deleted (pods are stored only; there is no kubelet).
scenario_cluster() {
  namespace e2e-smoke
  k create configmap smoke -n e2e-smoke --from-literal=key=value
  expect_ok "create configmap"
  k get configmap smoke -n e2e-smoke -o jsonpath='{.data.key}'
  expect_ok "get configmap"
  [ "$OUT" = value ] || bad "configmap data is '$OUT', expected 'value'"
  k delete configmap smoke -n e2e-smoke --wait=true --timeout=30s
  expect_ok "delete configmap"
  k_in "$(pod_plain smoke)" create -n e2e-smoke -f -
  expect_ok "create pod"
  expect_has "pod/smoke created"
  k get pod smoke -n e2e-smoke -o jsonpath='{.spec.containers[0].image}'
  expect_ok "get pod"
  [ "$OUT" = registry.example/app:1.0 ] || bad "pod image is '$OUT'"
  k delete pod smoke -n e2e-smoke --wait=true --timeout=30s
  expect_ok "delete pod"
  k get pod smoke -n e2e-smoke
  expect_fail "pod should be gone"
  expect_has "NotFound"
}

# Proves the API server serves custom resources, and keeps zero values in them: a CRD whose
# structural schema has string, boolean and integer fields, and a resource holding "", false and 0
# (required, so present) beside non-zero values, created, read, listed, patched to zeros, deleted.
# The plain Debian build crashed on the first custom resource (reflect2 1.0.1 under Go 1.19) and
# took "" for null (kube-openapi's zero-value check under Go >= 1.16); prepare.sh patches both.
crd_zero_values() {
  cat <<EOF
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: zerovalues.e2e.podguard.dev}
spec:
  group: e2e.podguard.dev
  scope: Namespaced
  names: {plural: zerovalues, singular: zerovalue, kind: ZeroValue, listKind: ZeroValueList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [emptyString, falseBool, zeroInt]
              properties:
                emptyString: {type: string}
                falseBool: {type: boolean}
                zeroInt: {type: integer}
                name: {type: string}
                enabled: {type: boolean}
                replicas: {type: integer}
                tags: {type: array, items: {type: string}}
EOF
}
scenario_custom_resources() {
  local ns=e2e-crd crd=zerovalues.e2e.podguard.dev
  # Stops the scenario with the API server's fatal error when it is gone.
  apiserver_alive() {
    kill -0 "${pids[1]}" 2>/dev/null && return 0
    OUT=$(grep -m 5 -E '^(fatal error|panic|unexpected fault|\[signal)' "$tmp/kube-apiserver.log" || true)
    bad "kube-apiserver exited during the custom resource scenario"
  }
  namespace "$ns"
  k_in "$(crd_zero_values)" apply -f -
  expect_ok "create the CRD"
  crd_established() {
    k get crd "$crd" -o jsonpath='{.status.conditions[?(@.type=="Established")].status}'
    [ "$RC" -eq 0 ] && [ "$OUT" = True ]
  }
  wait_until 30 crd_established || bad "CRD $crd not Established after 30 s"
  # Established comes a moment before discovery and the handler serve the new resource.
  # shellcheck disable=SC2016 # expanded by eval, on each attempt
  wait_until 30 eval 'k get zerovalues -n "$ns"; [ "$RC" -eq 0 ]' || bad "zerovalues not served after 30 s"
  k_in 'apiVersion: e2e.podguard.dev/v1
kind: ZeroValue
metadata: {name: zeros}
spec: {emptyString: "", falseBool: false, zeroInt: 0, name: web, enabled: true, replicas: 3, tags: ["", x]}' \
    create -n "$ns" -f -
  apiserver_alive
  expect_ok "create a custom resource with \"\", false and 0"
  expect_has "zerovalue.e2e.podguard.dev/zeros created"
  local want='{"emptyString": "", "falseBool": false, "zeroInt": 0, "name": "web", "enabled": true, "replicas": 3, "tags": ["", "x"]}'
  k get zerovalue zeros -n "$ns" -o json
  apiserver_alive
  expect_ok "get the custom resource"
  jq -e --argjson want "$want" '.spec == $want' <<<"$OUT" >/dev/null ||
    bad "spec read back is not exactly $want"
  k get zerovalues -n "$ns" -o json
  expect_ok "list the custom resources"
  jq -e --argjson want "$want" '[.items[] | {name: .metadata.name, spec}] == [{name: "zeros", spec: $want}]' \
    <<<"$OUT" >/dev/null || bad "the list is not exactly zeros with spec $want"
  # An update to zero values goes through the same validation.
  k patch zerovalue zeros -n "$ns" --type merge -p '{"spec": {"name": "", "enabled": false, "replicas": 0}}'
  apiserver_alive
  expect_ok "patch the non-zero fields to \"\", false and 0"
  want='{"emptyString": "", "falseBool": false, "zeroInt": 0, "name": "", "enabled": false, "replicas": 0, "tags": ["", "x"]}'
  k get zerovalue zeros -n "$ns" -o json
  expect_ok "get the patched custom resource"
  jq -e --argjson want "$want" '.spec == $want' <<<"$OUT" >/dev/null ||
    bad "spec read back after the patch is not exactly $want"
  k delete zerovalue zeros -n "$ns" --wait=true --timeout=30s
  expect_ok "delete the custom resource"
  k get zerovalue zeros -n "$ns"
  expect_fail "the custom resource should be gone"
  expect_has "NotFound"
  k delete crd "$crd" --wait=true --timeout=60s
  expect_ok "delete the CRD"
  k get crd "$crd"
  expect_fail "the CRD should be gone"
  expect_has "NotFound"
  apiserver_alive
  k get --raw /readyz
  expect_ok "kube-apiserver still ready"
}

# 1. A privileged pod is refused; the message names policy, rule and field, and nothing is stored.
scenario_privileged_pod_denied() {
  namespace e2e-deny
  k_in "$(pod_privileged priv)" create -n e2e-deny -f -
  expect_denied pod-security-baseline/pss "spec.containers[0].securityContext.privileged"
  k get pod priv -n e2e-deny
  expect_fail "the refused pod must not exist"
  expect_has "NotFound"
}

# 2. A compliant pod is created, with no warning.
scenario_compliant_pod_created() {
  namespace e2e-allow
  k_in "$(pod_plain fine)" create -n e2e-allow -f -
  expect_ok "compliant pod"
  expect_has "pod/fine created"
  expect_lacks "Warning:"
  k get pod fine -n e2e-allow -o name
  expect_ok "get the created pod"
}

# 3. A Deployment is checked through its template; the path points into spec.template.spec.
scenario_deployment_denied() {
  namespace e2e-deploy
  k_in "$(deployment_privileged web)" create -n e2e-deploy -f -
  expect_denied pod-security-baseline/pss "spec.template.spec.containers[0].securityContext.privileged"
  k get deployment web -n e2e-deploy
  expect_fail "the refused deployment must not exist"
}

# 4. A warn-mode policy admits the pod and kubectl shows podguard's warning.
scenario_warn_mode() {
  namespace e2e-warn
  apply_policy_and_wait e2e-warn-restricted warn restricted e2e-warn
  k_in "$(pod_plain warned)" create -n e2e-warn -f -
  expect_ok "warn mode admits"
  expect_has "pod/warned created"
  expect_match '^Warning: .*e2e-warn-restricted'
  expect_lacks "Forbidden"
  delete_policy e2e-warn-restricted
}

# 5. In a namespace labelled podguard.dev/mode=audit a violating pod is created silently, and
#    podguard logs the decision as a JSON line on stdout.
scenario_audit_namespace() {
  namespace e2e-audit podguard.dev/mode=audit
  k_in "$(pod_privileged audited)" create -n e2e-audit -f -
  expect_ok "audit mode admits"
  expect_has "pod/audited created"
  expect_lacks "Warning:"
  wait_until 5 decision_logged e2e-audit audited || { OUT=$(tail -n 5 "$tmp/podguard.out" 2>/dev/null); bad "no JSON decision line for e2e-audit/audited on podguard's stdout"; }
  OUT=$(grep -F '"decision"' "$tmp/podguard.out" | grep -F audited)
  expect_has "pod-security-baseline"
}

# within_2s WAIT_S WHAT CMD...: runs CMD until it succeeds (WAIT_S at most), logs how long WHAT
# took, and fails when it was over 2 s (what the docs promise for a policy change).
within_2s() {
  local wait_s=$1 what=$2 t0 ms
  shift 2
  t0=$(now_ms)
  wait_until "$wait_s" "$@" || bad "$what: not after $wait_s s"
  ms=$(($(now_ms) - t0))
  log "  $what: ${ms} ms"
  [ "$ms" -le 2000 ] || bad "$what took ${ms} ms (limit 2000)"
}

# 6. A new policy ConfigMap is enforced within 2 s; once deleted it is no longer enforced.
scenario_hot_reload() {
  namespace e2e-reload
  local pod
  pod=$(pod_plain reload)
  dry_run_allowed e2e-reload "$pod" || bad "baseline-compliant pod refused before the policy exists"
  # Timed from the moment the API server has stored the change (kubectl returned).
  k_in "$(policy_configmap e2e-reload-restricted enforce restricted e2e-reload)" apply -f -
  expect_ok "apply policy"
  within_2s 10 "new policy enforced" dry_run_denied_by e2e-reload-restricted e2e-reload "$pod"
  k delete configmap -n "$POLICY_NS" e2e-reload-restricted
  expect_ok "delete policy"
  within_2s 10 "deleted policy gone" dry_run_allowed e2e-reload "$pod"
}

# 7. A broken version of a policy ConfigMap, stored while podguard was not asked (the policy
#    ConfigMap webhook of scenario 18 is not registered yet), contributes no policy, as in a
#    replica started after the break, and leaves a Warning Event PolicyInvalid on the ConfigMap;
#    fixed, it is enforced again.
scenario_broken_configmap() {
  namespace e2e-broken
  local good broken
  good=$(policy_configmap pod-security-baseline enforce baseline)
  broken=${good/    spec:/    spec: [this is not yaml}
  grep -qF '[this is not yaml' <<<"$broken" || bad "test bug: could not break the policy"
  k_in "$broken" apply -f -
  expect_ok "apply the broken ConfigMap"
  wait_until 10 policy_invalid_event pod-security-baseline || bad "no Warning Event PolicyInvalid on configmap/pod-security-baseline after 10 s"
  wait_until 10 dry_run_allowed e2e-broken "$(pod_privileged no-longer-denied)" ||
    bad "the broken ConfigMap's policy is still enforced after 10 s"
  curl -sf --max-time 5 "http://127.0.0.1:$metrics_port/metrics" | grep -qx 'podguard_policy_sources_refused 1' ||
    bad "podguard_policy_sources_refused is not 1"
  k_in "$good" apply -f -
  expect_ok "restore the good ConfigMap"
  wait_until 10 dry_run_denied_by pod-security-baseline e2e-broken "$(pod_privileged denied-again)" ||
    bad "the fixed ConfigMap is not enforced after 10 s"
}

# 8. An exempt namespace (--exempt-namespaces) admits anything, without warnings.
scenario_exempt_namespace() {
  namespace "$EXEMPT_NS"
  k_in "$(pod_privileged exempted)" create -n "$EXEMPT_NS" -f -
  expect_ok "exempt namespace admits"
  expect_has "pod/exempted created"
  expect_lacks "Warning:"
}

# 9. A pod created before the policy that it breaks can still have its labels changed (its spec
#    did not change), while a change to its spec is checked.
scenario_label_update_of_existing_pod() {
  namespace e2e-existing
  k_in "$(pod_plain legacy)" create -n e2e-existing -f -
  expect_ok "create the pod before its policy"
  k get pod legacy -n e2e-existing -o jsonpath='{.spec}'
  local spec_before=$OUT
  apply_policy_and_wait e2e-existing-restricted enforce restricted e2e-existing
  k label pod legacy -n e2e-existing e2e.podguard.dev/touched=yes
  expect_ok "label-only update"
  expect_has "pod/legacy labeled"
  k get pod legacy -n e2e-existing -o jsonpath='{.metadata.labels.e2e\.podguard\.dev/touched}'
  [ "$OUT" = yes ] || bad "label not stored: '$OUT'"
  k get pod legacy -n e2e-existing -o jsonpath='{.spec}'
  [ "$OUT" = "$spec_before" ] || bad "the pod spec changed"
  k patch pod legacy -n e2e-existing --type=json \
    -p '[{"op":"replace","path":"/spec/containers/0/image","value":"registry.example/app:1.1"}]'
  expect_fail "a spec change is evaluated"
  expect_has "[e2e-existing-restricted/pss]"
  delete_policy e2e-existing-restricted
}

# 10. The Helm chart's rendered manifests are accepted by the API server (server-side dry run).
#     This 1.20 server serves no ServiceMonitor (its CRD, Prometheus Operator's, is not installed
#     here) and PodDisruptionBudget only as policy/v1beta1. The preStop `sleep`
#     action is newer than 1.20 too (1.20 would drop it and refuse the empty preStop), so it is
#     turned off. The chart is rendered into a namespace of its own, not excluded from the
#     webhook, so that in the full run podguard's own Deployment also passes the baseline policy.
#     Every rendered object names its namespace (helm test objects use `default`).
scenario_chart_dry_run() {
  local ns=e2e-chart rendered
  namespace "$ns"
  rendered=$(helm template podguard "$PODGUARD_CHART" --namespace "$ns" --set preStopSleepSeconds=0 2>&1) ||
    { OUT=$rendered; bad "helm template failed"; }
  rendered=$(awk '
    function flush() {
      if (doc ~ /(^|\n)kind: ServiceMonitor\n/) { doc = ""; return }
      if (doc ~ /(^|\n)kind: PodDisruptionBudget\n/)
        sub(/(^|\n)apiVersion: policy\/v1\n/, "\napiVersion: policy/v1beta1\n", doc)
      if (doc ~ /(^|\n)kind: /) printf "---\n%s", doc
      doc = ""
    }
    /^---/ { flush(); next }
    { doc = doc $0 "\n" }
    END { flush() }' <<<"$rendered")
  local objects
  objects=$(grep -c '^kind: ' <<<"$rendered" || true)
  [ "$objects" -gt 0 ] || bad "helm template rendered no objects"
  # The chart targets current Kubernetes, whose schema has fields that 1.20 predates (e.g.
  # preStop.sleep); kubectl's client-side validation against 1.20's schema names them. They are
  # reported, not failed: the 1.20 server drops fields it does not know and checks the rest.
  k_in "$rendered" apply --dry-run=server -f -
  local unknown
  unknown=$(grep -oE 'ValidationError\([^)]*\): unknown field "[^"]+"' <<<"$OUT" |
    sed -E 's/^ValidationError\(([^)]*)\): unknown field "([^"]+)"$/    \1.\2/' | sort -u || true)
  if [ -n "$unknown" ]; then
    log "  fields this 1.20 server does not know (dropped, not checked):"
    log "$unknown"
  fi
  k_in "$rendered" apply --dry-run=server --validate=false -f -
  expect_ok "server-side dry run of the chart"
  local accepted
  accepted=$(grep -c '(server dry run)$' <<<"$OUT" || true)
  [ "$accepted" -eq "$objects" ] || bad "$accepted of $objects objects accepted"
  log "  $objects objects accepted"
}

# --- scenarios on the control plane (kube-controller-manager running) ------------------------

# deployment_yaml NAME IMAGE PRIVILEGED: one replica, Recreate: with no kubelet no pod ever becomes
# ready, so a rolling update would wait forever for the new pod; Recreate scales the old
# ReplicaSet to 0 first (its unscheduled pods are deleted at once), then the new one up.
deployment_yaml() {
  cat <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: $1}
spec:
  replicas: 1
  strategy: {type: Recreate}
  selector: {matchLabels: {app: $1}}
  template:
    metadata: {labels: {app: $1}}
    spec:
      containers:
        - name: app
          image: $2
          securityContext: {privileged: $3}
EOF
}

# replicasets_of NS NAME: `image spec.replicas status.replicas` of each ReplicaSet of NAME, sorted.
replicasets_of() {
  k get rs -n "$1" -l "app=$2" -o json
  [ "$RC" -eq 0 ] || return 1
  jq -r '.items[] | "\(.spec.template.spec.containers[0].image) \(.spec.replicas) \(.status.replicas // 0)"' <<<"$OUT" | sort
}
# replicasets_are NS NAME EXPECTED: replicasets_of prints exactly EXPECTED.
replicasets_are() {
  local got
  got=$(replicasets_of "$1" "$2") || return 1
  [ "$got" = "$3" ]
}
# pods_of NS NAME: how many Pods of NAME exist.
pods_of() {
  k get pods -n "$1" -l "app=$2" -o name
  [ "$RC" -eq 0 ] || return 1
  grep -c . <<<"$OUT" || true
}
# set_mode NS MODE: labels the namespace and waits (10 s at most) until podguard decides by it: a
# privileged pod is refused (enforce) or admitted (warn, audit) in a server-side dry run.
set_mode() {
  local ns=$1 mode=$2 probe
  k label namespace "$ns" "podguard.dev/mode=$mode" --overwrite
  expect_ok "label $ns mode=$mode"
  probe=$(pod_privileged probe)
  if [ "$mode" = enforce ]; then
    wait_until 10 dry_run_denied_by pod-security-baseline "$ns" "$probe" || bad "$ns not enforced after 10 s"
  else
    wait_until 10 dry_run_allowed "$ns" "$probe" || bad "$ns still enforced after 10 s"
  fi
}
# violating_deployment_in_enforce NS NAME: a Deployment NAME in NS whose template breaks the
# baseline policy, created while NS was in warn mode (its ReplicaSet and Pod are created too),
# after which NS is switched to enforce.
violating_deployment_in_enforce() {
  local ns=$1 name=$2
  namespace "$ns" podguard.dev/mode=warn
  k_in "$(deployment_yaml "$name" registry.example/app:1.0 true)" apply -n "$ns" -f -
  expect_ok "create the violating Deployment in warn mode"
  expect_match '^Warning: .*pod-security-baseline'
  wait_until 30 replicasets_are "$ns" "$name" "registry.example/app:1.0 1 1" ||
    { OUT=$(replicasets_of "$ns" "$name"); bad "the controller did not create the ReplicaSet and its Pod"; }
  set_mode "$ns" enforce
}
# decisions NS KIND OPERATION: podguard's decision lines for that namespace, kind and operation,
# one JSON object per line.
decisions() {
  grep -F '"decision"' "$tmp/podguard.out" 2>/dev/null | grep -F "$1" |
    jq -R -c --arg ns "$1" --arg kind "$2" --arg op "$3" \
      'fromjson? // empty | [.. | objects | select(has("decision") and .namespace == $ns and .kind == $kind and .operation == $op)] | .[]' 2>/dev/null
}
# decided NS KIND OPERATION JQ_FILTER: some decision line of decisions() matches the filter.
decided() {
  decisions "$1" "$2" "$3" | jq -e -s "any(.[]; $4)" >/dev/null
}

# 11. A Deployment whose template breaks an enforce-mode policy, admitted before its namespace
#     enforced, is updated to a compliant template: the rollout completes. The controller scales
#     the old (violating) ReplicaSet to 0 by UPDATE, which podguard must allow.
scenario_rollout_fixing_a_violation() {
  local ns=e2e-rollout
  violating_deployment_in_enforce "$ns" web
  k_in "$(deployment_yaml web registry.example/app:1.1 false)" apply -n "$ns" -f -
  expect_ok "the compliant template is admitted"
  expect_lacks "Warning:"
  local want="registry.example/app:1.0 0 0
registry.example/app:1.1 1 1"
  wait_until 60 replicasets_are "$ns" web "$want" ||
    { OUT=$(replicasets_of "$ns" web); bad "rollout did not complete in 60 s (image, spec and status replicas per ReplicaSet above)"; }
  [ "$(pods_of "$ns" web)" = 1 ] || bad "expected exactly the new Pod"
  k get deployment web -n "$ns" -o jsonpath='{.status.updatedReplicas}/{.metadata.generation}/{.status.observedGeneration}'
  [ "$OUT" = 1/2/2 ] || bad "updatedReplicas/generation/observedGeneration is $OUT, expected 1/2/2"
  # The scale-down was an UPDATE podguard saw and let through unjudged.
  decided "$ns" ReplicaSet UPDATE '.decision == "skipped" and .allowed == true and (.reason | test("does not change its pod template"))' ||
    { OUT=$(decisions "$ns" ReplicaSet UPDATE); bad "no skipped ReplicaSet UPDATE in podguard's decision log"; }
}

# 12. The same kind of Deployment updated to another violating template is refused at apply, with
#     the violation, and nothing changes: no new generation, no new ReplicaSet.
scenario_violating_update_refused() {
  local ns=e2e-refuse
  violating_deployment_in_enforce "$ns" web
  k_in "$(deployment_yaml web registry.example/app:2.0 true)" apply -n "$ns" -f -
  expect_denied pod-security-baseline/pss "spec.template.spec.containers[0].securityContext.privileged"
  k get deployment web -n "$ns" -o jsonpath='{.metadata.generation} {.spec.template.spec.containers[0].image}'
  [ "$OUT" = "1 registry.example/app:1.0" ] || bad "the Deployment changed: generation and image are '$OUT'"
  sleep 1 # room for a controller that would (wrongly) act on a change
  replicasets_are "$ns" web "registry.example/app:1.0 1 1" ||
    { OUT=$(replicasets_of "$ns" web); bad "the ReplicaSets changed"; }
}

# 13. A compliant Deployment: the ReplicaSet the controller creates is admitted, and so is the
#     Pod the ReplicaSet controller creates; both went through podguard (its decision log).
scenario_controller_objects_are_judged() {
  local ns=e2e-controllers kind
  namespace "$ns"
  k_in "$(deployment_yaml web registry.example/app:1.0 false)" apply -n "$ns" -f -
  expect_ok "compliant Deployment"
  wait_until 30 replicasets_are "$ns" web "registry.example/app:1.0 1 1" ||
    { OUT=$(replicasets_of "$ns" web); bad "ReplicaSet or Pod not created"; }
  for kind in ReplicaSet Pod; do
    wait_until 5 decided "$ns" "$kind" CREATE '.decision == "allowed"' ||
      { OUT=$(decisions "$ns" "$kind" CREATE); bad "no allowed $kind CREATE in podguard's decision log"; }
  done
}

# 14. Deleting what violates, in an enforce namespace: a foreground deletion (the garbage
#     collector removes its finalizer by UPDATE) and then the whole namespace both complete.
scenario_deletion_completes() {
  local ns=e2e-delete
  violating_deployment_in_enforce "$ns" web
  k delete deployment web -n "$ns" --cascade=foreground --wait=true --timeout=60s
  expect_ok "foreground deletion of the violating Deployment"
  k get rs -n "$ns" -l app=web -o name
  [ -z "$OUT" ] || bad "ReplicaSets left behind"
  # A second violating workload for the namespace deletion to clear.
  set_mode "$ns" warn
  k_in "$(deployment_yaml web2 registry.example/app:1.0 true)" create -n "$ns" -f -
  expect_ok "second violating Deployment (warn)"
  wait_until 30 replicasets_are "$ns" web2 "registry.example/app:1.0 1 1" ||
    { OUT=$(replicasets_of "$ns" web2); bad "web2 not rolled out"; }
  set_mode "$ns" enforce
  k delete namespace "$ns" --wait=true --timeout=90s
  expect_ok "namespace deletion"
  k get namespace "$ns"
  expect_fail "the namespace must be gone"
  expect_has "NotFound"
}

# 15. A namespace created and used at once (one kubectl call, the Pod right after the Namespace):
#     its podguard.dev/mode=audit label already applies to that first pod, which the cluster
#     default (enforce) would refuse.
scenario_new_namespace_label_honoured() {
  local ns=e2e-fresh fetches
  k_in "apiVersion: v1
kind: Namespace
metadata:
  name: $ns
  labels: {e2e.podguard.dev/suite: \"true\", podguard.dev/mode: audit}
---
$(pod_privileged first | sed "s/^metadata: {/metadata: {namespace: $ns, /")" apply -f -
  expect_ok "namespace and first pod in one go"
  expect_has "pod/first created"
  wait_until 5 decision_logged "$ns" first || bad "no decision line for $ns/first"
  OUT=$(grep -F '"decision"' "$tmp/podguard.out" | grep -F "$ns")
  expect_has "pod-security-baseline/pss=audit"
  fetches=$(curl -sf --max-time 5 "http://127.0.0.1:$metrics_port/metrics" | grep '^podguard_namespace_fetches_total' || true)
  log "  live namespace reads so far: ${fetches:-none (the watch was first)}"
}

# 16. `kubectl debug` on a pod in an enforce namespace is judged: a debug container that breaks an
#     enforce-mode restricted policy is refused with its field named, and added once the policy is
#     gone. It is kubectl 1.20's own debug (current kubectl cannot speak to a 1.20 server's
#     ephemeralcontainers subresource), so the webhook gets the pre-1.22 EphemeralContainers body.
scenario_kubectl_debug_judged() {
  local ns=e2e-debug
  namespace "$ns"
  k_in "$(pod_plain target)" create -n "$ns" -f -
  expect_ok "target pod"
  apply_policy_and_wait e2e-debug-restricted enforce restricted "$ns"
  kubectl_debug target -n "$ns" --image=registry.example/debug:1.0 -c dbg-refused
  expect_fail "a debug container that breaks the restricted policy"
  expect_has "admission webhook \"$WEBHOOK_NAME\" denied the request"
  expect_match '\[e2e-debug-restricted/pss\] ephemeralContainers\[0\]\.securityContext\.runAsNonRoot: '
  delete_policy e2e-debug-restricted
  wait_until 10 dry_run_allowed "$ns" "$(pod_plain probe)" || bad "restricted policy still enforced after 10 s"
  kubectl_debug target -n "$ns" --image=registry.example/debug:1.0 -c dbg
  expect_ok "a baseline debug container"
  k get pod target -n "$ns" -o jsonpath='{.spec.ephemeralContainers[*].name}'
  [ "$OUT" = dbg ] || bad "ephemeral containers of the pod: '$OUT', expected 'dbg'"
}
# kubectl_debug ARGS...: `kubectl debug` of kubectl 1.20; OUT and RC as k() sets them.
kubectl_debug() {
  OUT=$("$KUBECTL_1_20" --request-timeout=30s debug "$@" 2>&1) && RC=0 || RC=$?
}

# policy_configmap_with_cel NAME CEL: a policy ConfigMap whose one rule is the CEL expression.
policy_configmap_with_cel() {
  local cel
  cel=$(jq -Rn --arg c "$2" '$c')
  cat <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: $1
  namespace: $POLICY_NS
  labels: {podguard.dev/policy: "true"}
data:
  policy.yaml: |
    apiVersion: podguard.dev/v1
    kind: Policy
    metadata: {name: $1}
    spec:
      match: {namespaces: ["e2e-nowhere"]}
      rules:
        - name: cel-rule
          cel: $cel
EOF
}

# 17. A policy ConfigMap whose CEL rule nests 7,000 levels (it used to overflow the stack and
#     abort every replica, again at every restart), stored while podguard was not asked: podguard
#     keeps serving, names the rule in a PolicyInvalid Event, and is still ready.
scenario_deep_policy_stored() {
  local deep
  deep="has(spec$(printf '.a%.0s' $(seq 7000)))"
  k_in "$(policy_configmap_with_cel e2e-deep "$deep")" apply -f -
  expect_ok "store the deep policy ConfigMap"
  wait_until 10 policy_invalid_event e2e-deep || bad "no PolicyInvalid Event on configmap/e2e-deep after 10 s"
  k get events -n "$POLICY_NS" -o json
  jq -r '.items[] | select(.reason == "PolicyInvalid" and .involvedObject.name == "e2e-deep") | .message' <<<"$OUT" |
    grep -q 'policy e2e-deep, rule cel-rule: spec.rules\[0\].cel: cel at 1:4: expression could nest more than 256' ||
    bad "the Event does not name the rule and the reason"
  kill -0 "${pids[2]}" 2>/dev/null || bad "podguard exited"
  curl -sf --max-time 2 --cacert "$tmp/podguard-ca.pem" "https://127.0.0.1:$pg_port/readyz" >/dev/null ||
    bad "podguard is not ready"
  k_in "$(pod_privileged still-judged)" create --dry-run=server -n e2e-deny -f -
  expect_denied pod-security-baseline/pss "spec.containers[0].securityContext.privileged"
  delete_policy e2e-deep
}

# 18. With podguard registered for its own policy ConfigMaps (by URL, as the chart's second
#     webhook entry does by Service), one that does not load is refused at `kubectl apply` with
#     the errors `policies lint` prints, and nothing is stored; one that loads is applied.
scenario_policy_configmaps_validated() {
  k apply -f - <<<"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: podguard-e2e-policies}
webhooks:
  - name: policies.podguard.dev
    clientConfig:
      url: https://127.0.0.1:$pg_port/validate
      caBundle: $ca_bundle
    rules:
      - {apiGroups: [\"\"], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [configmaps]}
    objectSelector:
      matchLabels: {podguard.dev/policy: \"true\"}
    failurePolicy: Ignore
    sideEffects: None
    timeoutSeconds: 10
    admissionReviewVersions: [v1]"
  expect_ok "register the policy ConfigMap webhook"
  local typo
  typo=$(policy_configmap_with_cel e2e-typo "container.image.startsWithh('1111')")
  # Registration is picked up asynchronously; the refusal is the proof it is in place.
  wait_until 15 eval 'k_in "$typo" apply --dry-run=server -f -; [ "$RC" -ne 0 ]' ||
    bad "the broken policy ConfigMap was not refused after 15 s"
  k_in "$typo" apply -f -
  expect_fail "a policy ConfigMap that does not load"
  expect_has "admission webhook \"policies.podguard.dev\" denied the request: podguard refuses this policy ConfigMap: it does not load (1 error):"
  expect_has "configmap/$POLICY_NS/e2e-typo[policy.yaml]:8: document[0]: policy e2e-typo, rule cel-rule: spec.rules[0].cel: cel at 1:17: unknown function \`startsWithh\`; did you mean \`startsWith\`?"
  k get configmap e2e-typo -n "$POLICY_NS"
  expect_fail "nothing stored"
  k_in "$(policy_configmap_with_cel e2e-deep2 "has(spec$(printf '.a%.0s' $(seq 7000)))")" apply -f -
  expect_fail "the 7,000-deep rule"
  expect_has "could nest more than 256 levels"
  k_in "$(policy_configmap_with_cel e2e-fine "spec.containers.all(c, c.image != '')")" apply -f -
  expect_ok "a policy ConfigMap that loads"
  delete_policy e2e-fine
  # A ConfigMap of the same name elsewhere, or without the label, is not podguard's business.
  namespace e2e-other-cms
  k_in "$(policy_configmap_with_cel e2e-typo "container.image.startsWithh('1')" | sed "s/namespace: $POLICY_NS/namespace: e2e-other-cms/")" apply -f -
  expect_ok "a labelled ConfigMap outside the policy namespace"
}

# 19. The API server is down for 15 s and comes back: a policy change made right after its return
#     is enforced within 2 s (podguard's watches retry at most 1.25 s apart and start over once
#     they receive again).
scenario_api_server_outage() {
  namespace e2e-outage
  local pod
  pod=$(pod_plain outage)
  dry_run_allowed e2e-outage "$pod" || bad "a baseline-compliant pod is refused before the outage"
  stop_pid "${pids[1]}" || bad "kube-apiserver did not stop"
  log "  kube-apiserver stopped"
  sleep 15
  start_apiserver
  pids[1]=$!
  echo "$!" >"$tmp/apiserver.pid"
  wait_until 60 apiserver_ready || bad "kube-apiserver not ready again after 60 s"
  log "  kube-apiserver back"
  k_in "$(policy_configmap e2e-outage-restricted enforce restricted e2e-outage)" apply -f -
  expect_ok "apply a policy right after the return"
  within_2s 20 "policy enforced after the API server's return" \
    dry_run_denied_by e2e-outage-restricted e2e-outage "$pod"
  delete_policy e2e-outage-restricted
}

run_scenario() { # NAME FUNCTION
  log "--- $1"
  local start=$SECONDS
  (
    set -eE
    failed_assertion=0
    # An assertion has said why; anything else that fails is named here.
    trap '[ "$failed_assertion" = 1 ] || log "  FAIL: command failed at line $LINENO: $BASH_COMMAND"' ERR
    "$2"
  )
  # Not `if ( ... )`: errexit is ignored inside a tested command, and the scenarios rely on it.
  # shellcheck disable=SC2181
  if [ $? -eq 0 ]; then
    log "  ok ($((SECONDS - start)) s)"
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
}

# 20. `podguard report --cluster` as a read-only user (exactly the RBAC docs/compliance.md lists):
#     the workloads stored in the cluster are evaluated; a privileged Deployment admitted in warn
#     mode fails CIS EKS 4.2.1, and is reported once, through the Deployment, not again through
#     its ReplicaSet and Pod.
scenario_report_cluster() {
  local ns=e2e-report
  violating_deployment_in_enforce "$ns" web
  k apply -f - <<<"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: e2e-podguard-report}
rules:
  - {apiGroups: [\"\"], resources: [namespaces, pods, podtemplates, replicationcontrollers], verbs: [list]}
  - {apiGroups: [apps], resources: [deployments, replicasets, statefulsets, daemonsets], verbs: [list]}
  - {apiGroups: [batch], resources: [jobs, cronjobs], verbs: [list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-podguard-report}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: e2e-podguard-report}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: e2e-reporter}]"
  expect_ok "grant the reporter list"
  local out err rc
  out=$(KUBECONFIG="$tmp/reporter.kubeconfig" "$PODGUARD_BIN" report --cluster --format json 2>"$tmp/report.err") &&
    rc=0 || rc=$?
  err=$(cat "$tmp/report.err")
  OUT=$err
  [ "$rc" -eq 0 ] || bad "report --cluster exited $rc"
  expect_has "listed"
  expect_has "deployments"
  OUT=$out
  jq -e '.metadata.source == {type: "cluster", cluster: "e2e", server: .metadata.source.server} and
    (.metadata.source.server | startswith("https://127.0.0.1:"))' <<<"$out" >/dev/null ||
    bad "the evidence does not name the cluster and its server"
  jq -e '[.frameworks[].id] | length == 7' <<<"$out" >/dev/null || bad "not seven frameworks"
  local failing
  failing=$(jq -r --arg ns "$ns" '.frameworks[] | select(.id == "cis-eks-1.8.0") | .controls[] |
    select(.id == "4.2.1") | .failing[].object | select(.namespace == $ns) | "\(.kind)/\(.name)"' <<<"$out")
  [ "$failing" = "Deployment/web" ] || bad "4.2.1 should fail on Deployment/web alone in $ns, got: $failing"
  # The reporter can list and nothing else.
  kubectl --request-timeout=10s --kubeconfig "$tmp/reporter.kubeconfig" auth can-i create pods -n "$ns" >/dev/null 2>&1 &&
    bad "the reporter may create pods: the test does not prove read-only"
  return 0
}

# report NS: podguard's /report for namespace NS (the background audit), in REPORT.
report() {
  REPORT=$(curl -sf --max-time 5 "http://127.0.0.1:$metrics_port/report?namespace=$1" 2>&1)
}
# report_has NS JQ: the namespace's report matches the jq filter (on .namespaces[0]).
report_has() {
  report "$1" && jq -e ".namespaces[0] | $2" <<<"$REPORT" >/dev/null 2>&1
}

# 21. A privileged pod stored where the webhook is not called (a namespace its namespaceSelector
#     leaves out, as when podguard was not registered): the background audit reports it within
#     the stated delay, as one admission would refuse now.
scenario_audit_unjudged_pod() {
  local ns=e2e-unjudged
  namespace "$ns" podguard.dev/ignore=true
  k_in "$(pod_privileged sneaky)" create -n "$ns" -f -
  expect_ok "the webhook is not called for this namespace"
  wait_until 5 report_has "$ns" '.refusedNow == 1 and (.results[0].name == "sneaky") and
      any(.results[0].findings[]; .path == "spec.containers[0].securityContext.privileged" and .mode == "enforce")' ||
    { OUT=$REPORT; bad "the audit did not report the pod within 5 s"; }
  k delete pod sneaky -n "$ns" --wait=false
  # Its namespace then has no object left, and is not listed.
  wait_until 5 report_has "$ns" '(.objects // 0) == 0' || { OUT=$REPORT; bad "the deleted pod is still reported"; }
}

# 22. A Deployment admitted with a warning in a warn namespace: the report shows it would be
#     refused under enforce; labelling the namespace enforce moves it to "refused now".
scenario_audit_warn_to_enforce() {
  local ns=e2e-audit-warn
  namespace "$ns" podguard.dev/mode=warn
  k_in "$(deployment_yaml web registry.example/app:1.0 true)" apply -n "$ns" -f -
  expect_ok "admitted with a warning in warn mode"
  wait_until 5 report_has "$ns" '.mode == "warn" and .refusedNow == 0 and .refusedIfEnforced == 1' ||
    { OUT=$REPORT; bad "the report does not show what enforce would refuse"; }
  # The Deployment is reported, not its ReplicaSet and Pod.
  report_has "$ns" '[.results[].kind] == ["Deployment"]' || { OUT=$REPORT; bad "owned objects reported"; }
  set_mode "$ns" enforce
  wait_until 3 report_has "$ns" '.mode == "enforce" and .refusedNow == 1' ||
    { OUT=$REPORT; bad "the namespace's new mode is not in the report within 3 s"; }
}

# 23. A policy added while objects run: they are judged again with it within 3 s.
scenario_audit_policy_change() {
  local ns=e2e-audit-policy
  namespace "$ns"
  k_in "$(pod_plain plain)" create -n "$ns" -f -
  expect_ok "a plain pod"
  wait_until 5 report_has "$ns" '.objects == 1 and .refusedIfEnforced == 0' ||
    { OUT=$REPORT; bad "the plain pod is not audited clean"; }
  apply_policy_and_wait e2e-audit-restricted enforce restricted "$ns"
  wait_until 3 report_has "$ns" 'any(.results[]?.findings[]; .policy == "e2e-audit-restricted")' ||
    { OUT=$REPORT; bad "the new policy's findings are not in the report within 3 s"; }
  delete_policy e2e-audit-restricted
}

# start_podguard NAME PORT METRICS_PORT: `podguard serve` as the chart runs it (ConfigMaps, the
# audit writing PolicyReports, the writer's Lease), in the background (its PID in $!), with
# stdout and stderr in $tmp/NAME.out and .err and its self-signed CA in $tmp/NAME-ca.pem.
start_podguard() {
  KUBECONFIG="$tmp/podguard.kubeconfig" "$PODGUARD_BIN" serve --configmaps --policy-namespace "$POLICY_NS" \
    --tls-self-signed --tls-self-signed-ca-out "$tmp/$1-ca.pem" \
    --listen "127.0.0.1:$2" --metrics-listen "127.0.0.1:$3" \
    --audit-reports true --webhook-configuration podguard \
    --exempt-namespaces "$EXEMPT_NS" >"$tmp/$1.out" 2>"$tmp/$1.err" &
}

# register_webhook: (re)registers podguard by URL, with the CA podguard wrote (also left in
# ca_bundle, for scenario 18); RC/OUT as k. Named as the chart names it, so that the chart's RBAC
# lets podguard read when it was created.
register_webhook() {
  ca_bundle=$(base64 -w0 "$tmp/podguard-ca.pem")
  k apply -f - <<<"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: podguard}
webhooks:
  - name: $WEBHOOK_NAME
    clientConfig:
      url: https://127.0.0.1:$pg_port/validate
      caBundle: $ca_bundle
    rules:
      - {apiGroups: [\"\"], apiVersions: [v1], operations: [CREATE, UPDATE],
         resources: [pods, pods/ephemeralcontainers, replicationcontrollers, podtemplates]}
      - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE],
         resources: [deployments, replicasets, statefulsets, daemonsets]}
      - {apiGroups: [batch], apiVersions: [v1], operations: [CREATE, UPDATE],
         resources: [jobs, cronjobs]}
    namespaceSelector:
      matchExpressions: [{key: podguard.dev/ignore, operator: NotIn, values: [\"true\"]}]
    failurePolicy: Fail
    sideEffects: None
    timeoutSeconds: 10
    admissionReviewVersions: [v1]"
}

# is_writer METRICS_PORT: the podguard answering there says it holds the audit writer's Lease.
is_writer() {
  curl -sf --max-time 5 "http://127.0.0.1:$1/report?namespace=-" 2>/dev/null | jq -e '.writer == true' >/dev/null 2>&1
}
# policy_report_has NS JQ: podguard's PolicyReport in NS matches the jq filter; it is in PR.
policy_report_has() {
  PR=$(kubectl --request-timeout=10s get policyreport podguard -n "$1" -o json 2>&1) &&
    jq -e "$2" <<<"$PR" >/dev/null 2>&1
}

# 24. Two replicas: exactly one writes (holds the Lease); killed, the other takes the duty over
#     within 15 s (Lease of 8 s) and writes the report of a new violation. Both answer /report.
#     A killed first replica is started again (same ports, new CA) and registered again.
scenario_audit_writer_moves() {
  wait_until 20 eval 'is_writer "$metrics_port" || is_writer "$metrics2_port"' || bad "no replica is the writer after 20 s"
  if is_writer "$metrics_port" && is_writer "$metrics2_port"; then bad "both replicas are writers"; fi
  local name pid survivor survivor_pid holder
  if is_writer "$metrics_port"; then
    name=podguard pid=$(cat "$tmp/podguard.pid") survivor=$metrics2_port survivor_pid=$(cat "$tmp/podguard-b.pid")
  else
    name=podguard-b pid=$(cat "$tmp/podguard-b.pid") survivor=$metrics_port survivor_pid=$(cat "$tmp/podguard.pid")
  fi
  # The Lease names the writer (identity: host name, then process id).
  holder=$(kubectl --request-timeout=10s get lease podguard-audit-writer -n "$POLICY_NS" -o jsonpath='{.spec.holderIdentity}')
  [[ "$holder" == *"-$pid" ]] || bad "the Lease names $holder, not the writer (PID $pid)"
  curl -sf --max-time 5 "http://127.0.0.1:$survivor/report" | jq -e '.synced == true' >/dev/null ||
    bad "the replica that is not the writer does not answer /report"
  log "  the writer is $name (PID $pid); killing it"
  kill -KILL "$pid"
  local killed=$(now_ms)
  wait_until 15 is_writer "$survivor" || bad "the other replica did not take the duty over within 15 s"
  log "  the duty moved after $(($(now_ms) - killed)) ms"
  holder=$(kubectl --request-timeout=10s get lease podguard-audit-writer -n "$POLICY_NS" -o jsonpath='{.spec.holderIdentity}')
  [[ "$holder" == *"-$survivor_pid" ]] || bad "the Lease names $holder, not the new writer (PID $survivor_pid)"
  # The new writer writes. (Where the webhook is not called, as the first replica may be down.)
  local ns=e2e-writer
  namespace "$ns" podguard.dev/mode=warn podguard.dev/ignore=true
  k_in "$(pod_privileged priv)" create -n "$ns" -f -
  expect_ok "a privileged pod"
  wait_until 15 policy_report_has "$ns" '.summary.warn >= 1 and .results[0].resources[0].name == "priv"' ||
    { OUT=$PR; bad "the new writer wrote no PolicyReport within 15 s"; }
  [ "$name" = podguard ] || return 0
  start_podguard podguard "$pg_port" "$metrics_port"
  echo "$!" >"$tmp/podguard.pid"
  # shellcheck disable=SC2016 # expanded by eval, on each attempt
  wait_until 30 eval '[ -s "$tmp/podguard-ca.pem" ] &&
    curl -sf --max-time 2 --cacert "$tmp/podguard-ca.pem" "https://127.0.0.1:$pg_port/readyz" >/dev/null' ||
    bad "podguard not ready again after 30 s"
  register_webhook
  expect_ok "register the webhook with the new CA"
  wait_until 15 dry_run_denied_by pod-security-baseline e2e-probe "$(pod_privileged probe)" ||
    bad "the API server does not call the restarted podguard"
  is_writer "$metrics_port" && bad "the restarted replica took the duty from a live writer"
  return 0
}

# 25. 1,000 violating pods in a warn namespace: one PolicyReport, within its cap (500 results
#     and a summarising one, the summary counting all), under 512 KiB; deleted once the pods go.
scenario_audit_report_cap() {
  local ns=e2e-report-cap
  namespace "$ns" podguard.dev/mode=warn
  python3 - "$ns" >"$tmp/pods-1000.json" <<'PY'
import json, sys
pods = [{"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": f"priv-{i:04d}", "namespace": sys.argv[1]},
         "spec": {"containers": [{"name": "app", "image": "registry.example/app:1.0",
                                  "securityContext": {"privileged": True}}]}}
        for i in range(1000)]
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": pods}))
PY
  local start=$(now_ms)
  OUT=$(kubectl --request-timeout=60s create -f "$tmp/pods-1000.json" 2>&1 >/dev/null) && RC=0 || RC=$?
  expect_ok "create 1,000 privileged pods"
  log "  1,000 pods created in $(($(now_ms) - start)) ms"
  wait_until 40 policy_report_has "$ns" '.summary.warn >= 1000' ||
    { OUT=$(jq -c .summary <<<"$PR" 2>&1 || echo "$PR"); bad "the report does not count 1,000 pods' findings within 40 s"; }
  policy_report_has "$ns" '. as $r | (.results | length) == 501 and .results[-1].rule == "report-limit" and
      .results[-1].result == "skip" and (.results[-1].message | startswith("\($r.summary.warn - 500) more"))' ||
    { OUT=$(jq -c '{n: (.results | length), last: .results[-1], summary}' <<<"$PR"); bad "the report is not capped at 500 results and a summary"; }
  local bytes
  bytes=$(wc -c <<<"$PR")
  [ "$bytes" -le $((600 * 1024)) ] || bad "the stored report is $bytes bytes"
  log "  report: $(jq -c .summary <<<"$PR"), $(jq '.results | length' <<<"$PR") results, $bytes bytes as stored"
  k get policyreports -n "$ns" -o name
  [ "$(grep -c . <<<"$OUT")" -eq 1 ] || bad "more than one report object in the namespace: $OUT"
  OUT=$(kubectl --request-timeout=120s delete pods --all -n "$ns" --wait=false 2>&1) && RC=0 || RC=$?
  expect_ok "delete the pods"
  # shellcheck disable=SC2016 # expanded by eval, on each attempt
  wait_until 40 eval '! kubectl --request-timeout=10s get policyreport podguard -n "$ns" >/dev/null 2>&1' ||
    bad "the report is still there 40 s after its namespace was left without findings"
}

# 26. A privileged pod created while podguard's webhook is not registered: once registered again,
#     the audit reports it as not judged at admission within 10 s, a Warning Event is recorded on
#     it, and the bypass counter counts it.
scenario_audit_bypass() {
  local ns=e2e-bypass
  namespace "$ns"
  # Times have a resolution of one second: the pod must be written after the namespace.
  sleep 1.1
  k delete validatingwebhookconfiguration podguard
  expect_ok "deregister the webhook"
  wait_until 15 dry_run_allowed "$ns" "$(pod_privileged probe)" || bad "the API server still calls podguard after 15 s"
  k_in "$(pod_privileged sneaky)" create -n "$ns" -f -
  expect_ok "created while the webhook is not registered"
  register_webhook
  expect_ok "register the webhook again"
  local start=$(now_ms)
  wait_until 15 dry_run_denied_by pod-security-baseline "$ns" "$(pod_privileged probe)" ||
    bad "the API server does not call podguard again"
  wait_until 10 report_has "$ns" '.bypassed == 1 and .results[0].name == "sneaky" and
      (.results[0].bypass.reason | IN("notAsked", "predatesWebhook"))' ||
    { OUT=$REPORT; bad "the bypass is not in /report within 10 s"; }
  log "  reported as a bypass $(($(now_ms) - start)) ms after the webhook was registered again: $(jq -r '.namespaces[0].results[0].bypass.reason' <<<"$REPORT")"
  # shellcheck disable=SC2016 # expanded by eval, on each attempt
  wait_until 10 eval 'k get events -n "$ns" --field-selector involvedObject.name=sneaky,reason=AdmissionBypassed -o name; [ "$RC" -eq 0 ] && [ -n "$OUT" ]' ||
    bad "no AdmissionBypassed Event on the pod within 10 s"
  local total
  total=$(curl -sf --max-time 5 "http://127.0.0.1:$metrics_port/metrics" | sed -n 's/^podguard_audit_bypasses_total //p')
  [ "${total:-0}" -ge 1 ] || bad "podguard_audit_bypasses_total is ${total:-absent}"
}

# --- setup ------------------------------------------------------------------------------------
log "--- prepare"
prep=$("$here/prepare.sh") || die "prepare.sh failed"
KUBE_APISERVER=$(sed -n 's/^KUBE_APISERVER=//p' <<<"$prep")
KUBE_CONTROLLER_MANAGER=$(sed -n 's/^KUBE_CONTROLLER_MANAGER=//p' <<<"$prep")
KUBECTL_1_20=$(sed -n 's/^KUBECTL_1_20=//p' <<<"$prep")
ETCD=$(sed -n 's/^ETCD=//p' <<<"$prep")
# shellcheck source=scripts/tools.sh
source "$repo/scripts/tools.sh" >/dev/null || die "scripts/tools.sh failed"
# tools.sh sets errexit; the suite handles failures itself.
set +e
if [ "${E2E_ONLY_CLUSTER:-}" != 1 ] && [ ! -x "$PODGUARD_BIN" ]; then
  die "podguard binary $PODGUARD_BIN not found (cargo build, or set PODGUARD_BIN)"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/podguard-e2e.XXXXXX") || die "mktemp failed"
export KUBECONFIG="$tmp/kubeconfig" KUBECACHEDIR="$tmp/kube-cache"

# Free loopback ports, chosen by the kernel; released just before the servers bind them.
read -r etcd_port etcd_peer_port api_port pg_port metrics_port pg2_port metrics2_port pg3_port metrics3_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(9)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])') || die "could not find free ports"

log "--- start etcd (127.0.0.1:$etcd_port) and kube-apiserver (127.0.0.1:$api_port) in $tmp"
"$ETCD" --name e2e --data-dir "$tmp/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-cluster "e2e=http://127.0.0.1:$etcd_peer_port" >"$tmp/etcd.log" 2>&1 &
pids+=($!)

token=$(openssl rand -hex 24) || die "openssl rand failed"
echo "$token,e2e-admin,e2e-admin,system:masters" >"$tmp/tokens.csv"
# podguard signs in as its ServiceAccount's user name, so that RBAC gives it exactly what the
# chart's Role and ClusterRole grant (there is no token controller to issue a real SA token).
pg_token=$(openssl rand -hex 24) || die "openssl rand failed"
echo "$pg_token,system:serviceaccount:$POLICY_NS:podguard,podguard-sa,system:serviceaccounts" >>"$tmp/tokens.csv"
# A user with list access only, for `podguard report --cluster` (scenario 20).
reporter_token=$(openssl rand -hex 24) || die "openssl rand failed"
echo "$reporter_token,e2e-reporter,e2e-reporter" >>"$tmp/tokens.csv"
openssl genrsa -out "$tmp/sa.key" 2048 2>/dev/null || die "openssl genrsa failed"
# The endpoint reconciler would try to publish 127.0.0.1 as the `kubernetes` service's endpoint,
# which the API refuses (loopback); nothing here needs that service.
# start_apiserver: starts kube-apiserver in the background (its PID in $!), appending to its log;
# scenario 19 stops it and starts it again on the same port and etcd.
start_apiserver() {
  "$KUBE_APISERVER" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --cert-dir "$tmp/certs" --token-auth-file "$tmp/tokens.csv" --authorization-mode RBAC \
    --service-account-key-file "$tmp/sa.key" --service-account-signing-key-file "$tmp/sa.key" \
    --service-account-issuer https://kubernetes.default.svc --service-cluster-ip-range 10.96.0.0/16 \
    --disable-admission-plugins ServiceAccount --allow-privileged=true \
    --feature-gates EphemeralContainers=true \
    --endpoint-reconciler-type none >>"$tmp/kube-apiserver.log" 2>&1 &
}
start_apiserver
pids+=($!)

cat >"$KUBECONFIG" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: e2e
    cluster: {server: "https://127.0.0.1:$api_port", insecure-skip-tls-verify: true}
users:
  - name: e2e-admin
    user: {token: "$token"}
contexts:
  - name: e2e
    context: {cluster: e2e, user: e2e-admin}
current-context: e2e
EOF
chmod 600 "$KUBECONFIG"
sed -e "s/name: e2e-admin/name: podguard/; s/user: e2e-admin/user: podguard/" \
  -e "s/token: \"$token\"/token: \"$pg_token\"/" "$KUBECONFIG" >"$tmp/podguard.kubeconfig"
chmod 600 "$tmp/podguard.kubeconfig"
sed -e "s/name: e2e-admin/name: reporter/; s/user: e2e-admin/user: reporter/" \
  -e "s/token: \"$token\"/token: \"$reporter_token\"/" "$KUBECONFIG" >"$tmp/reporter.kubeconfig"
chmod 600 "$tmp/reporter.kubeconfig"

apiserver_ready() {
  kill -0 "${pids[1]}" 2>/dev/null || die "kube-apiserver exited"
  kubectl --request-timeout=2s get --raw /readyz >/dev/null 2>&1
}
start=$(now_ms)
wait_until 60 apiserver_ready || die "kube-apiserver not ready after 60 s"
log "  ready after $(($(now_ms) - start)) ms"

run_scenario "cluster: ConfigMap and Pod create/get/delete" scenario_cluster
run_scenario "cluster: custom resources with zero values are stored and served" scenario_custom_resources

if [ "${E2E_ONLY_CLUSTER:-}" != 1 ]; then
  log "--- start podguard (127.0.0.1:$pg_port, metrics 127.0.0.1:$metrics_port)"
  # The policy namespace is kept out of the webhook by a label (1.20 has no
  # kubernetes.io/metadata.name label to select it by name); kube-system likewise.
  k apply -f - <<<"apiVersion: v1
kind: Namespace
metadata: {name: $POLICY_NS, labels: {podguard.dev/ignore: \"true\"}}"
  [ "$RC" -eq 0 ] || die "create namespace $POLICY_NS: $OUT"
  k label namespace kube-system podguard.dev/ignore=true --overwrite
  [ "$RC" -eq 0 ] || die "label kube-system: $OUT"
  k_in "$(policy_configmap pod-security-baseline enforce baseline)" apply -f -
  [ "$RC" -eq 0 ] || die "apply the baseline policy: $OUT"
  # The chart's RBAC with report objects on, and nothing more: scenarios 6, 7 and 24-26 (watch,
  # Events, Lease, PolicyReports) prove it is enough. The chart's PolicyReport CRD too.
  rbac=$(helm template podguard "$PODGUARD_CHART" --namespace "$POLICY_NS" --set audit.reports.enabled=true \
    --show-only templates/rbac.yaml --show-only templates/crd-policyreport.yaml 2>&1) ||
    die "helm template the chart's RBAC and CRD: $rbac"
  k_in "$rbac" apply -f -
  [ "$RC" -eq 0 ] || die "apply the chart's RBAC and CRD: $OUT"
  k wait --for condition=established --timeout=30s crd/policyreports.wgpolicyk8s.io
  [ "$RC" -eq 0 ] || die "the PolicyReport CRD is not established: $OUT"
  pg_can() { kubectl --request-timeout=10s --kubeconfig "$tmp/podguard.kubeconfig" auth can-i "$@" >/dev/null 2>&1; }
  pg_can watch configmaps -n "$POLICY_NS" || die "podguard's user cannot watch ConfigMaps under the chart's RBAC"
  pg_can create configmaps -n "$POLICY_NS" && die "podguard's user may create ConfigMaps: it is not limited to the chart's RBAC"

  start_podguard podguard "$pg_port" "$metrics_port"
  pids+=($!)
  echo "$!" >"$tmp/podguard.pid"
  podguard_ready() {
    kill -0 "${pids[2]}" 2>/dev/null || die "podguard exited"
    [ -s "$tmp/podguard-ca.pem" ] &&
      curl -sf --max-time 2 --cacert "$tmp/podguard-ca.pem" "https://127.0.0.1:$pg_port/readyz" >/dev/null
  }
  start=$(now_ms)
  wait_until 30 podguard_ready ||
    die "podguard not ready after 30 s: $(curl -sS --max-time 2 --cacert "$tmp/podguard-ca.pem" \
      "https://127.0.0.1:$pg_port/readyz" 2>&1 | head -c 300)"
  log "  ready after $(($(now_ms) - start)) ms"

  register_webhook
  [ "$RC" -eq 0 ] || die "register the webhook: $OUT"
  # The API server picks webhook configurations up asynchronously; wait until it calls podguard.
  namespace e2e-probe || die "create namespace e2e-probe"
  webhook_active() { dry_run_denied_by pod-security-baseline e2e-probe "$(pod_privileged probe)"; }
  wait_until 15 webhook_active || die "webhook not called by the API server after 15 s: $OUT"

  run_scenario "1. privileged pod -> Forbidden" scenario_privileged_pod_denied
  run_scenario "2. compliant pod -> created" scenario_compliant_pod_created
  run_scenario "3. Deployment with a privileged template -> Forbidden" scenario_deployment_denied
  run_scenario "4. warn-mode policy -> created with a Warning" scenario_warn_mode
  run_scenario "5. audit namespace -> created silently, decision logged" scenario_audit_namespace
  run_scenario "6. policy ConfigMap hot reload (2 s)" scenario_hot_reload
  run_scenario "7. broken policy ConfigMap -> none of it in force, PolicyInvalid Event" scenario_broken_configmap
  run_scenario "8. exempt namespace -> admitted" scenario_exempt_namespace
  run_scenario "9. label-only update of an existing non-compliant pod -> allowed" \
    scenario_label_update_of_existing_pod

  log "--- start kube-controller-manager"
  # Only the controllers the scenarios need; no serving port (nothing here reads it), no leader
  # election (one instance), and the admin's credentials (there is no token controller).
  "$KUBE_CONTROLLER_MANAGER" --kubeconfig "$KUBECONFIG" --leader-elect=false \
    --controllers deployment,replicaset,namespace,garbagecollector \
    --port 0 --secure-port 0 --use-service-account-credentials=false \
    >"$tmp/kube-controller-manager.log" 2>&1 &
  pids+=($!)
  kcm_pid=$!
  controllers_up() {
    kill -0 "$kcm_pid" 2>/dev/null || die "kube-controller-manager exited"
    replicasets_are e2e-kcm-probe probe "registry.example/app:1.0 1 1"
  }
  namespace e2e-kcm-probe || die "create namespace e2e-kcm-probe"
  k_in "$(deployment_yaml probe registry.example/app:1.0 false)" apply -n e2e-kcm-probe -f -
  [ "$RC" -eq 0 ] || die "create the probe Deployment: $OUT"
  start=$(now_ms)
  wait_until 60 controllers_up || die "kube-controller-manager created no ReplicaSet and Pod in 60 s"
  log "  controllers working after $(($(now_ms) - start)) ms"

  run_scenario "11. rollout that fixes a violation in an enforce namespace completes" \
    scenario_rollout_fixing_a_violation
  run_scenario "12. a violating template update is refused, nothing changes" scenario_violating_update_refused
  run_scenario "13. controller-made ReplicaSet and Pods go through podguard" \
    scenario_controller_objects_are_judged
  run_scenario "14. foreground and namespace deletion with violating workloads complete" \
    scenario_deletion_completes
  run_scenario "15. namespace created and used at once: its mode label applies" \
    scenario_new_namespace_label_honoured
  run_scenario "16. kubectl debug in an enforce namespace is judged" scenario_kubectl_debug_judged
  run_scenario "17. a stored 7,000-deep policy ConfigMap: podguard keeps serving, PolicyInvalid" \
    scenario_deep_policy_stored
  run_scenario "18. a policy ConfigMap that does not load is refused at kubectl apply" \
    scenario_policy_configmaps_validated
  run_scenario "19. 15 s API server outage: a change right after it applies within 2 s" \
    scenario_api_server_outage
  run_scenario "20. report --cluster as a read-only user: evidence per control, owners only" \
    scenario_report_cluster
  run_scenario "21. audit: a pod stored without admission is reported within 5 s" scenario_audit_unjudged_pod
  run_scenario "22. audit: a warn namespace shows what enforce would refuse, then refuses" \
    scenario_audit_warn_to_enforce
  run_scenario "23. audit: a new policy judges what runs within 3 s" scenario_audit_policy_change

  log "--- start a second podguard replica (127.0.0.1:$pg2_port, metrics 127.0.0.1:$metrics2_port)"
  start_podguard podguard-b "$pg2_port" "$metrics2_port"
  pids+=($!)
  echo "$!" >"$tmp/podguard-b.pid"
  # shellcheck disable=SC2016 # expanded by eval, on each attempt
  wait_until 30 eval 'curl -sf --max-time 2 "http://127.0.0.1:$metrics2_port/report?namespace=-" | jq -e ".synced == true" >/dev/null 2>&1' ||
    die "the second replica's audit is not synced after 30 s"
  run_scenario "24. audit: two replicas, one writer; the writer killed, the other writes within 15 s" \
    scenario_audit_writer_moves
  run_scenario "25. audit: 1,000 violating pods, one PolicyReport within its cap" scenario_audit_report_cap
  run_scenario "26. audit: a pod created while the webhook is not registered is reported as a bypass" \
    scenario_audit_bypass
fi

# bench_audit N: N pods stored (in a namespace the webhook leaves out, mode warn: no admission
# call, no bypass), then a podguard started afresh; prints how long its first audit took (its
# own figure, and from its start to /report saying synced) and its memory.
bench_audit() {
  local n=$1 ns=e2e-bench made=0 start
  namespace "$ns" podguard.dev/mode=warn podguard.dev/ignore=true
  start=$(now_ms)
  while [ "$made" -lt "$n" ]; do
    local batch=$((n - made < 1000 ? n - made : 1000))
    python3 - "$ns" "$made" "$batch" >"$tmp/bench-pods.json" <<'PY'
import json, sys
ns, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pods = [{"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": f"bench-{i:06d}", "namespace": ns,
                      "labels": {"app": f"app-{i % 50}", "team": "bench"}},
         "spec": {"serviceAccountName": "app",
                  "containers": [{"name": "app", "image": f"registry.example/app-{i % 50}:1.{i % 7}",
                                  "ports": [{"containerPort": 8080}],
                                  "env": [{"name": "MODE", "value": "production"}],
                                  "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
                                  "securityContext": {"privileged": i % 2 == 0}}]}}
        for i in range(first, first + count)]
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": pods}))
PY
    kubectl --request-timeout=120s create -f "$tmp/bench-pods.json" >/dev/null 2>&1 || die "bench: cannot create pods"
    made=$((made + batch))
  done
  log "  $n pods stored in $(($(now_ms) - start)) ms"
  start=$(now_ms)
  KUBECONFIG="$tmp/podguard.kubeconfig" "${E2E_BENCH_BIN:-$PODGUARD_BIN}" serve --configmaps --policy-namespace "$POLICY_NS" \
    --tls-self-signed --listen "127.0.0.1:$pg3_port" --metrics-listen "127.0.0.1:$metrics3_port" \
    --audit-lease e2e-bench-unused >"$tmp/podguard-bench.out" 2>"$tmp/podguard-bench.err" &
  local pid=$!
  pids+=("$pid")
  # shellcheck disable=SC2016 # expanded by eval, on each attempt
  wait_until 120 eval 'curl -sf --max-time 5 "http://127.0.0.1:$metrics3_port/report?namespace=-" | jq -e ".synced == true" >/dev/null 2>&1' ||
    die "bench: the audit is not synced after 120 s"
  local wall=$(($(now_ms) - start)) first held hwm rss
  first=$(curl -sf --max-time 5 "http://127.0.0.1:$metrics3_port/report?namespace=-" | jq -r '.firstAuditSeconds')
  held=$(curl -sf --max-time 5 "http://127.0.0.1:$metrics3_port/metrics" | sed -n 's/^podguard_audit_objects //p')
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  log "bench: first audit of $held objects through the API server: ${first} s (podguard's figure), $wall ms from start to synced; VmHWM $((hwm / 1024)) MiB, VmRSS $((rss / 1024)) MiB"
  stop_pid "$pid"
}

if [ "${E2E_AUDIT_PODS:-0}" -gt 0 ] && [ "${E2E_ONLY_CLUSTER:-}" != 1 ]; then
  log "--- bench: the first audit of ${E2E_AUDIT_PODS} pods through the API server"
  bench_audit "$E2E_AUDIT_PODS"
fi

if [ -d "$PODGUARD_CHART" ]; then
  run_scenario "10. helm template | kubectl apply --dry-run=server" scenario_chart_dry_run
else
  log "--- 10. chart dry run: skipped, chart not present ($PODGUARD_CHART)"
fi
