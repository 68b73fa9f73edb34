#!/usr/bin/env bash
# The kubectl differential test of podguard's YAML reader, second half. `cargo test` checks that
# src/yaml11.rs reads every case of tests/fixtures/yaml11/ as the recorded kubectl output says;
# this records the corpus again with the real kubectl (installed by scripts/tools.sh) and checks
# that the recording in the repository is exactly what kubectl says today. Together: podguard
# reads the corpus as kubectl does. Offline, a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp tests/fixtures/yaml11/* "$work/"
rm -f "$work"/*.kubectl.json "$work"/*.kubectl.err
CASES_DIR="$work" bash scripts/yaml11-record.sh "$(command -v kubectl)"
if ! diff -r tests/fixtures/yaml11 "$work"; then
  echo "yaml11-differential: kubectl reads the corpus differently from the recording above;" >&2
  echo "run scripts/yaml11-record.sh, then fix src/yaml11.rs until cargo test passes" >&2
  exit 1
fi
echo "yaml11-differential: kubectl's reading of $(ls tests/fixtures/yaml11/[0-9]*.yaml | wc -l) cases matches the recording"
