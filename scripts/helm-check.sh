#!/usr/bin/env bash
# Checks charts/podguard and the files generated from it; what .ci/run calls for the chart.
#   1. charts/podguard/policies and deploy/podguard.yaml are in step with their sources
#   2. helm lint --strict with the default values and every charts/podguard/ci/*-values.yaml
#   3. helm template of the same into target/helm-check/ (kept for inspection)
#   4. values.schema.json refuses an unknown top-level key and a wrong type
#   5. tests/e2e/chart.rs: every rendered object is valid for its k8s-openapi type, plus the
#      chart's safety properties (webhook wiring, TLS, exemptions, RBAC, policy ConfigMaps)
#   6. `podguard check` with the restricted policy finds nothing in the rendered chart (the
#      hostNetwork variant: only its host networking)
# Env: PODGUARD_BIN (default target/debug/podguard, built by step 5).
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
