#!/usr/bin/env bash
# Offers demo traffic at RATE events/s to `spur dev` (embedded broker, engine
# and generator in one process) for SECONDS, then prints the engine's applied
# events/s, the consumer lag, the trigger latency and timer lateness
# histograms (from /metrics) and the process RSS.
# Usage: deploy/bench/dev-rate.sh [RATE] [SECONDS]   (after `make build`)
# A stop-gap until `spur bench` (issue 5) measures with HdrHistogram.
set -euo pipefail
RATE=${1:-20000}
SECONDS_=${2:-20}
BIN=${BIN:-bin/spur}
DIR=$(mktemp -d)
HTTP=127.0.0.1:9645
"$BIN" dev --demo --demo-rate "$RATE" --demo-customers 100000 --quiet --data-dir "$DIR" \
	--listen 127.0.0.1:9192 --http "$HTTP" >/dev/null 2>"$DIR/spur.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$DIR"' EXIT
consumed() { curl -s "http://$HTTP/metrics" | awk '/^spur_events_consumed_total/ {s+=$2} END {printf "%d", s}'; }
for _ in $(seq 100); do curl -sf "http://$HTTP/readyz" >/dev/null && break; sleep 0.1; done
sleep 5 # warm-up: sessions start, first waits run out
a=$(consumed)
sleep "$SECONDS_"
b=$(consumed)
echo "offered ${RATE}/s for ${SECONDS_}s: applied $(( (b - a) / SECONDS_ )) events/s"
curl -s "http://$HTTP/metrics" | grep -E '^spur_consumer_lag|^spur_trigger_latency_seconds_(bucket|count)|^spur_timer_lateness_seconds_(bucket|count)|^process_resident_memory_bytes'
