#!/usr/bin/env bash
# Webhook load test: the release binary over real HTTPS on loopback, driven by oha.
#
# Three servers run side by side: podguard with the built-in library, podguard with an empty
# policy set, and the floor: a minimal axum + rustls server that decodes the review and allows
# it (benches/floor.rs), what any Rust webhook pays for HTTP, TLS and decoding. For each review (a compliant and a violating pod,
# ~6.6 KB of compact JSON each) and each server it measures the maximum throughput
# (-c $CONNECTIONS) and the latency at a fixed $RATE req/s, $ROUNDS rounds (the latency
# percentiles taken over every request of every round, from oha's per-request CSV), and reads
# VmRSS/VmHWM idle and after the load (VmHWM is the kernel's own record of the peak, so nothing
# samples memory during the runs: a sampler would fork processes while latency is measured).
# Around each maximum-throughput run it also reads the CPU time the server (user and system)
# and oha spent per request, which shows where a denial's extra cost goes.
# Loopback only, bounded in time (ROUNDS x 8 x SECONDS_EACH seconds of load plus a 1 s warm-up
# before each, about 3.5 minutes by default, plus the build). Prints Markdown.
#
#   benches/load/run.sh                           # installs oha into the tools cache once
#   ROUNDS=1 SECONDS_EACH=3 benches/load/run.sh   # a quick look
set -euo pipefail
cd "$(dirname "$0")/../.."

SECONDS_EACH="${SECONDS_EACH:-4}"
ROUNDS="${ROUNDS:-5}"
CONNECTIONS="${CONNECTIONS:-32}"
RATE="${RATE:-1000}"
PODGUARD_TOOLS="${PODGUARD_TOOLS:-$HOME/.cache/podguard-tools}"
OHA="$PODGUARD_TOOLS/bin/oha"

if [ ! -x "$OHA" ]; then
  echo "installing oha into $PODGUARD_TOOLS (once)" >&2
  cargo install oha --locked --root "$PODGUARD_TOOLS" >&2
fi
cargo build --release --locked --bin podguard --example floor >&2
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/podguard"
FLOOR="${CARGO_TARGET_DIR:-$PWD/target}/release/examples/floor"

work=$(mktemp -d)
cleanup() {
  for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The API server sends compact JSON; the fixtures are indented for readers.
for review in compliant violating; do
  jq -c . "tests/fixtures/reviews/pod-$review.json" > "$work/$review.json"
done
mkdir "$work/empty"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mem() { # $1: pid. VmRSS and VmHWM in MiB
  awk '/^VmRSS|^VmHWM/ { printf "%s %.1f MiB, ", $1, $2/1024 }' "/proc/$1/status"
}

declare -A PID URL METRICS
start_server() { # $1: name, $2: extra flags (or `floor`)
  local port metrics
  port=$(free_port); metrics=$(free_port)
  if [ "$2" = floor ]; then
    "$FLOOR" "127.0.0.1:$port" "$work/ca-$1.pem" > "$work/server-$1.log" 2>&1 &
  else
    # shellcheck disable=SC2086
    "$BIN" serve --tls-self-signed --tls-self-signed-ca-out "$work/ca-$1.pem" \
      --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$metrics" $2 > "$work/server-$1.log" 2>&1 &
  fi
  PID[$1]=$!
  URL[$1]="https://localhost:$port"
  METRICS[$1]="http://127.0.0.1:$metrics"
  for _ in $(seq 100); do
    if curl -sf --cacert "$work/ca-$1.pem" "${URL[$1]}/readyz" > /dev/null 2>&1; then return; fi
    sleep 0.1
  done
  echo "server $1 did not become ready:" >&2; cat "$work/server-$1.log" >&2; exit 1
}

# $1: json (a summary) or csv (a line per request), $2: server, $3: review, rest: oha flags.
oha_run() {
  local format=$1 server=$2 review=$3; shift 3
  "$OHA" --no-tui --output-format "$format" -m POST -H 'content-type: application/json' \
    -D "$work/$review.json" --cacert "$work/ca-$server.pem" "$@" "${URL[$server]}/validate"
}

# rps, p50 ms, p99 ms, and whether every answer was 200.
summarize() {
  jq -r '[.summary.requestsPerSec, .latencyPercentiles.p50 * 1000, .latencyPercentiles.p99 * 1000,
          ((.statusCodeDistribution | keys) == ["200"])] | @tsv' "$1"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# The $1 quantile (0.99: p99) of durations in seconds, one per line, in ms (nearest rank).
percentile() { sort -g | awk -v q="$1" '{ v[NR] = $1 } END { i = int(NR * q + 0.999999); if (i < 1) i = 1; printf "%.3f\n", v[i] * 1000 }'; }

# CPU time of a process in clock ticks: user and system (fields 14 and 15 of /proc/PID/stat).
cpu_ticks() { awk '{ print $14, $15 }' "/proc/$1/stat"; }
TICK_US=$(awk -v hz="$(getconf CLK_TCK)" 'BEGIN { print 1e6 / hz }')
TIMEFORMAT='%U %S'

# Both servers run side by side and the measurements alternate between them, round after
# round, so that a noisy neighbour on a shared machine hits both sets alike; each figure is the
# median of the rounds.
start_server library ""
start_server empty "--policies $work/empty"
start_server floor floor
sleep 1
declare -A IDLE
for set in library empty; do IDLE[$set]=$(mem "${PID[$set]}"); done

all_ok=true
for round in $(seq "$ROUNDS"); do
  for review in compliant violating; do
    for set in library empty; do
      oha_run json "$set" "$review" -z 1s -c "$CONNECTIONS" > /dev/null # warm-up
      # CPU time per request of the server (user, system) and of oha, around the maximum
      # throughput run: where a denial's extra cost goes, and steadier than req/s.
      read -r u0 s0 < <(cpu_ticks "${PID[$set]}")
      { time oha_run json "$set" "$review" -z "${SECONDS_EACH}s" -c "$CONNECTIONS" > "$work/max-$set-$review-$round.json"; } 2> "$work/oha-time"
      read -r u1 s1 < <(cpu_ticks "${PID[$set]}")
      read -r ou os < "$work/oha-time"
      n=$(jq '[.statusCodeDistribution[]] | add' "$work/max-$set-$review-$round.json")
      awk -v n="$n" -v t="$TICK_US" -v u="$((u1 - u0))" -v s="$((s1 - s0))" -v ou="$ou" -v os="$os" \
        'BEGIN { printf "%.1f %.1f %.1f\n", u * t / n, s * t / n, (ou + os) * 1e6 / n }' >> "$work/cpu-$set-$review"
      read -r rps p50 p99 ok < <(summarize "$work/max-$set-$review-$round.json")
      echo "$rps" >> "$work/max-rps-$set-$review"
      [ "$ok" = true ] || all_ok=false
    done
    # The latency runs come after all the maximum-throughput ones, with a pause before them: a
    # maximum run leaves podguard's log writer a backlog of decision lines to write, which would
    # otherwise land in the next latency run. Each is preceded by a 1 s warm-up at the same rate
    # (connections open, caches as they are at that rate, no backlog of its own). The order of
    # the three alternates round by round, so that no server is always measured first.
    sleep 2
    order="floor library empty"
    [ $((round % 2)) -eq 0 ] && order="empty library floor"
    for set in $order; do
      oha_run csv "$set" "$review" -z 1s -q "$RATE" -c 16 > /dev/null # warm-up
      sleep 0.5
      read -r u0 s0 < <(cpu_ticks "${PID[$set]}")
      oha_run csv "$set" "$review" -z "${SECONDS_EACH}s" -q "$RATE" -c 16 > "$work/rate-$set-$review-$round.csv"
      read -r u1 s1 < <(cpu_ticks "${PID[$set]}")
      # This round's durations (seconds), kept too for the percentiles over all rounds.
      awk -F, -v ok="$work/not-200" 'NR > 1 { print $5; if ($7 != 200) print >> ok }' \
        "$work/rate-$set-$review-$round.csv" > "$work/durations"
      cat "$work/durations" >> "$work/all-$set-$review"
      n=$(wc -l < "$work/durations")
      awk -v n="$n" -v t="$TICK_US" -v c="$((u1 - u0 + s1 - s0))" 'BEGIN { printf "%.1f\n", c * t / n }' \
        >> "$work/ratecpu-$set-$review"
      percentile 0.50 < "$work/durations" >> "$work/rate-p50-$set-$review"
      percentile 0.99 < "$work/durations" >> "$work/rate-p99-$set-$review"
    done
    lib_p99=$(tail -1 "$work/rate-p99-library-$review")
    fl_p99=$(tail -1 "$work/rate-p99-floor-$review")
    awk -v l="$lib_p99" -v f="$fl_p99" 'BEGIN { printf "%.3f\n", l / f }' >> "$work/p99-ratio-$review"
    # The two sets measured back to back in this round: their ratio is steadier than the ratio
    # of two medians when the machine's other load comes and goes.
    lib=$(jq '.summary.requestsPerSec' "$work/max-library-$review-$round.json")
    empty=$(jq '.summary.requestsPerSec' "$work/max-empty-$review-$round.json")
    awk -v l="$lib" -v e="$empty" 'BEGIN { printf "%.3f\n", l / e }' >> "$work/ratio-$review"
  done
done

[ -s "$work/not-200" ] && all_ok=false
# Percentiles of every request of every round (ROUNDS x SECONDS_EACH x RATE of them per figure):
# one round's p99 rests on its slowest 1 %, a few dozen requests, and moves with whatever else
# the machine did in those seconds; over all rounds the bursts of noise weigh on each server
# alike, since the rounds alternate.
declare -A P50 P99
for review in compliant violating; do
  for set in library empty floor; do
    P50[$set-$review]=$(percentile 0.50 < "$work/all-$set-$review")
    P99[$set-$review]=$(percentile 0.99 < "$work/all-$set-$review")
  done
done

echo
echo "oha $("$OHA" --version | awk '{print $2}'), $(nproc) cores shared by server and load generator," \
  "$ROUNDS rounds of ${SECONDS_EACH}s per figure; max: -c $CONNECTIONS; latency: -q $RATE -c 16;" \
  "every answer HTTP 200: $all_ok"
echo
echo "| policy set | review (answer) | max req/s | p50 ms at $RATE req/s | p99 ms at $RATE req/s |"
echo "|---|---|---:|---:|---:|"
for review in compliant violating; do
  for set in library empty; do
    policies=$(curl -s "${METRICS[$set]}/policies" | jq '.policies | length')
    allowed=$(curl -s --cacert "$work/ca-$set.pem" -H 'content-type: application/json' \
      --data-binary "@$work/$review.json" "${URL[$set]}/validate" | jq -r '.response.allowed')
    printf '| %s (%s policies) | %s (allowed: %s) | %.0f | %s | %s |\n' "$set" "$policies" "$review" "$allowed" \
      "$(median < "$work/max-rps-$set-$review")" "${P50[$set-$review]}" "${P99[$set-$review]}"
  done
done
for review in compliant violating; do
  printf '| floor (decode, allow) | %s | | %s | %s |\n' "$review" "${P50[floor-$review]}" "${P99[floor-$review]}"
done
echo
echo "Latency percentiles over all $ROUNDS rounds' requests; max req/s the median of rounds."
echo
for review in compliant violating; do
  echo "- $review: library / floor p99 at $RATE req/s over all rounds' requests:" \
    "**$(awk -v l="${P99[library-$review]}" -v f="${P99[floor-$review]}" 'BEGIN { printf "%.3f", l / f }')**" \
    "(p50 $(awk -v l="${P50[library-$review]}" -v f="${P50[floor-$review]}" 'BEGIN { printf "%.3f", l / f }'); target ≤ 1.25)"
done
echo
echo "Round by round (each round's own percentiles, median of rounds):"
echo
echo "| server | review | p50 ms | p99 ms | server CPU µs per request | p99 of each round |"
echo "|---|---|---:|---:|---:|---|"
for review in compliant violating; do
  for set in library empty floor; do
    echo "| $set | $review | $(median < "$work/rate-p50-$set-$review") | $(median < "$work/rate-p99-$set-$review") |" \
      "$(median < "$work/ratecpu-$set-$review") |" \
      "$(tr '\n' ' ' < "$work/rate-p99-$set-$review" | sed 's/ $//') |"
  done
done
echo
for review in compliant violating; do
  echo "- $review: library / floor p99 at $RATE req/s, paired round by round: median $(median < "$work/p99-ratio-$review")" \
    "(rounds: $(tr '\n' ' ' < "$work/p99-ratio-$review" | sed 's/ $//'); target ≤ 1.25)"
done
for review in compliant violating; do
  echo "- $review: library / empty max req/s, paired round by round: median $(median < "$work/ratio-$review")" \
    "(rounds: $(tr '\n' ' ' < "$work/ratio-$review" | sed 's/ $//'))"
done
cpu_median() { cut -d' ' -f"$1" "$2" | median; }
for review in compliant violating; do
  line="- $review, CPU µs per request at maximum throughput (median of rounds):"
  for set in library empty; do
    f="$work/cpu-$set-$review"
    total=$(awk '{ print $1 + $2 + $3 }' "$f" | median)
    line="$line $set: server $(cpu_median 1 "$f") user + $(cpu_median 2 "$f") system, oha $(cpu_median 3 "$f"), total $total;"
    echo "$total" > "$work/total-$set-$review"
  done
  echo "$line empty / library total: $(awk -v e="$(cat "$work/total-empty-$review")" -v l="$(cat "$work/total-library-$review")" 'BEGIN { printf "%.3f", e / l }')"
done
for set in library empty; do
  decisions=$(grep -c '"podguard::decision"' "$work/server-$set.log" || true)
  echo "- $set: idle $(echo "${IDLE[$set]}" | sed 's/, $//'); after load $(mem "${PID[$set]}" | sed 's/, $//'); $decisions decision log lines written"
done
