#!/usr/bin/env bash
# Webhook load test: the release binary over real HTTPS on loopback, driven by oha.
#
# For each policy set (the built-in library, then an empty set: the floor that HTTP, TLS and
# decoding cost) and each review (compliant, violating pod, ~6.6 KB compact JSON each), it
# measures the maximum throughput (-c $CONNECTIONS for $SECONDS_EACH s) and the latency at a
# fixed 1,000 req/s, and reads VmRSS/VmHWM of the server idle and under load. Loopback only,
# bounded in time (about 2 minutes of load plus the builds). Prints a Markdown table.
#
#   benches/load/run.sh                 # everything (installs oha into the tools cache once)
#   SECONDS_EACH=5 benches/load/run.sh  # shorter runs
set -euo pipefail
cd "$(dirname "$0")/../.."

SECONDS_EACH="${SECONDS_EACH:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
RATE="${RATE:-1000}"
PODGUARD_TOOLS="${PODGUARD_TOOLS:-$HOME/.cache/podguard-tools}"
OHA="$PODGUARD_TOOLS/bin/oha"

if [ ! -x "$OHA" ]; then
  echo "installing oha into $PODGUARD_TOOLS (once)" >&2
  cargo install oha --locked --root "$PODGUARD_TOOLS" >&2
fi
cargo build --release --locked --bin podguard >&2
BIN="$PWD/target/release/podguard"

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The API server sends compact JSON; the fixtures are indented for readers.
for review in compliant violating; do
  jq -c . "tests/fixtures/reviews/pod-$review.json" > "$work/$review.json"
done
mkdir "$work/empty"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mem() { # VmRSS and VmHWM of the server, in MiB
  awk '/^VmRSS|^VmHWM/ { printf "%s %.1f ", $1, $2/1024 }' "/proc/$server_pid/status"
}

start_server() { # $1: extra flags
  local port metrics
  port=$(free_port); metrics=$(free_port)
  # shellcheck disable=SC2086
  "$BIN" serve --tls-self-signed --tls-self-signed-ca-out "$work/ca.pem" \
    --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$metrics" $1 > "$work/server.log" 2>&1 &
  server_pid=$!
  URL="https://localhost:$port"
  METRICS="http://127.0.0.1:$metrics"
  for _ in $(seq 100); do
    if curl -sf --cacert "$work/ca.pem" "$URL/readyz" > /dev/null 2>&1; then return; fi
    sleep 0.1
  done
  echo "server did not become ready:" >&2; cat "$work/server.log" >&2; exit 1
}

stop_server() {
  kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=""
}

oha_json() { # $1: review, rest: oha flags; prints oha's JSON summary
  local review=$1; shift
  "$OHA" --no-tui --output-format json -m POST -H 'content-type: application/json' \
    -D "$work/$review.json" --cacert "$work/ca.pem" "$@" "$URL/validate"
}

# Field of oha's JSON: rps, p50/p99 in ms, and whether every answer was 200.
summarize() {
  jq -r '[.summary.requestsPerSec, .latencyPercentiles.p50 * 1000, .latencyPercentiles.p99 * 1000,
          ((.statusCodeDistribution | keys) == ["200"])] | @tsv'
}

sample_rss() { # max VmRSS (MiB) while $1 runs in the background
  local pid=$1 max=0 rss
  while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS/ { print int($2/1024) }' "/proc/$server_pid/status")
    [ "$rss" -gt "$max" ] && max=$rss
    sleep 0.2
  done
  echo "$max"
}

results=()
for set in library empty; do
  if [ "$set" = library ]; then flags=""; else flags="--policies $work/empty"; fi
  start_server "$flags"
  policies=$(curl -s "$METRICS/policies" | jq '.policies | length')
  idle=$(mem)
  for review in compliant violating; do
    # Warm up (connections, allocator) before measuring.
    oha_json "$review" -z 2s -c "$CONNECTIONS" > /dev/null
    oha_json "$review" -z "${SECONDS_EACH}s" -c "$CONNECTIONS" > "$work/max.json" &
    oha_pid=$!
    peak_rss=$(sample_rss "$oha_pid")
    wait "$oha_pid"
    read -r max_rps _ _ max_ok < <(summarize < "$work/max.json")
    oha_json "$review" -z "${SECONDS_EACH}s" -q "$RATE" -c 16 > "$work/rate.json"
    read -r rate_rps p50 p99 rate_ok < <(summarize < "$work/rate.json")
    allowed=$(jq -r '.response.allowed' <(curl -s --cacert "$work/ca.pem" -H 'content-type: application/json' \
      --data-binary "@$work/$review.json" "$URL/validate"))
    results+=("$(printf '| %s (%s policies) | %s (allowed: %s) | %.0f | %.0f | %.3f | %.3f | %s | %s MiB |' \
      "$set" "$policies" "$review" "$allowed" "$max_rps" "$rate_rps" "$p50" "$p99" \
      "$([ "$max_ok" = true ] && [ "$rate_ok" = true ] && echo "all 200" || echo "NOT all 200")" "$peak_rss")")
  done
  after=$(mem)
  decisions=$(grep -c '"podguard::decision"' "$work/server.log" || true)
  stop_server
  results+=("|   memory, $set: idle $idle; after load $after; $decisions decision log lines written |")
done

echo
echo "oha $("$OHA" --version | awk '{print $2}'), $(nproc) cores, ${SECONDS_EACH}s per run, -c $CONNECTIONS for max, -q $RATE -c 16 for latency"
echo
echo "| policy set | review | max req/s | req/s at -q $RATE | p50 ms | p99 ms | status | peak VmRSS (max run) |"
echo "|---|---|---:|---:|---:|---:|---|---:|"
printf '%s\n' "${results[@]}"
