#!/usr/bin/env bash
# Records what the real kubectl makes of each case in tests/fixtures/yaml11/: NN-name.kubectl.json (its output;
# several documents become {"kind": "List", "items": [...]}) or NN-name.kubectl.err (its error).
# kubectl converts offline: `label --local` reads the file, prints it back as JSON, and needs no
# cluster. The kind YamlCase is unknown to it, so no typed conversion happens; it only adds an
# empty `metadata.labels`, which the test strips.
#
# Usage: scripts/yaml11-record.sh [kubectl]   (default: ~/.cache/podguard-tools/bin/kubectl)
# CASES_DIR=dir records into another copy of the corpus (scripts/yaml11-differential.sh).
set -euo pipefail
kubectl=${1:-$HOME/.cache/podguard-tools/bin/kubectl}
if [ ! -x "$kubectl" ]; then
    echo "yaml11-record.sh: no kubectl at $kubectl" >&2
    exit 1
fi
cd "${CASES_DIR:-$(dirname "$0")/../tests/fixtures/yaml11}"
# sed, not head: head would leave kubectl writing into a closed pipe, a SIGPIPE that pipefail turns
# into a failed run now and then.
"$kubectl" version --client 2>/dev/null | sed -n 1p > kubectl-version.txt
err=$(mktemp)
trap 'rm -f "$err"' EXIT
for f in [0-9]*.yaml; do
    base=${f%.yaml}
    rm -f "$base.kubectl.json" "$base.kubectl.err"
    if out=$(KUBECONFIG=/nonexistent "$kubectl" label --local -f "$f" -o json podguard-case- 2>"$err"); then
        # kubectl prints one pretty JSON object per document; each closes with `}` alone on a line.
        if [ "$(printf '%s\n' "$out" | grep -c '^}$')" -gt 1 ]; then
            { echo '{"kind": "List", "items": ['; printf '%s\n' "$out" | sed 's/^}$/},/' | sed '$ s/^},$/}/'; echo ']}'; } \
                > "$base.kubectl.json"
        else
            printf '%s\n' "$out" > "$base.kubectl.json"
        fi
    else
        cp "$err" "$base.kubectl.err"
    fi
done
echo "recorded $(ls [0-9]*.yaml | wc -l) cases: $(ls *.kubectl.json | wc -l) JSON, $(ls *.kubectl.err 2>/dev/null | wc -l) errors"
