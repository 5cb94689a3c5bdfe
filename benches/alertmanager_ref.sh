#!/usr/bin/env bash
# The reference of benches/ingest_load.sh: a real Prometheus Alertmanager
# (Debian's prometheus-alertmanager) taking alerts on its own
# POST /api/v2/alerts, one alert per request, wrk -t2 -c64, with a null
# receiver (alerts kept in memory, nothing sent, nothing written per alert).
# Phases: "new" (every alert a new label set) and "repeat" (re-sent alerts of
# 1,000 label sets). Prints throughput, p50/p99 latency, answers counted by
# the wrk script, the alerts Alertmanager holds afterwards (its own
# GET /api/v2/alerts) and its peak RSS.
#
# Usage: benches/alertmanager_ref.sh. DURATION per run (default 10s);
# IMAS_SMOKE=1: 2 s runs. Needs prometheus-alertmanager, wrk, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=2
CONNECTIONS=64
PORT="${BENCH_AM_PORT:-3919}"
BASE="http://127.0.0.1:$PORT"
if [ "${IMAS_SMOKE:-}" = 1 ]; then DURATION="${DURATION:-2s}"; else DURATION="${DURATION:-10s}"; fi
AM="$(command -v prometheus-alertmanager || command -v alertmanager || true)"
[ -n "$AM" ] || { echo "prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'kill "${AM_PID:-}" 2>/dev/null || true; kill "${SAMPLER_PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

cat >"$WORK/alertmanager.yml" <<'YAML'
route:
  receiver: "null"
  group_by: ["alertname", "instance"]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: "null"
YAML

FAILED=0
echo "| system | phase | throughput | latency p50 / p99 | answers | alerts held | peak RSS |"
for mode in new repeat; do
    rm -rf "$WORK/data"; mkdir -p "$WORK/data"
    "$AM" --config.file="$WORK/alertmanager.yml" --storage.path="$WORK/data" \
        --web.listen-address="127.0.0.1:$PORT" --cluster.listen-address= \
        --log.level=warn >"$WORK/am-$mode.log" 2>&1 &
    AM_PID=$!
    for _ in $(seq 1 100); do curl -sf "$BASE/-/ready" >/dev/null && break; sleep 0.1; done
    if [ "$mode" = repeat ]; then
        # The 1,000 alerts exist before the timed run.
        BENCH_MODE=repeat wrk -t1 -c8 -d2s -s benches/alertmanager_alert.lua "$BASE" >/dev/null
    fi
    : >"$WORK/rss"
    ( while kill -0 "$AM_PID" 2>/dev/null; do ps -o rss= -p "$AM_PID" >>"$WORK/rss" || true; sleep 0.5; done ) &
    SAMPLER_PID=$!
    out=$(BENCH_MODE=$mode wrk -t$THREADS -c$CONNECTIONS -d"$DURATION" --latency -s benches/alertmanager_alert.lua "$BASE")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    answers=$(grep -o 'accepted=[0-9]* refused=[0-9]*' <<<"$out" || echo "?")
    held=$(curl -sf "$BASE/api/v2/alerts?active=true&silenced=true&inhibited=true" | python3 -c 'import sys, json; print(len(json.load(sys.stdin)))')
    kill "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true
    peak=$(sort -n "$WORK/rss" | tail -1)
    echo "| Alertmanager $("$AM" --version 2>&1 | awk 'NR==1 {print $3}') | $mode | $rps req/s | $p50 / $p99 | $answers | $held | $((peak / 1024)) MB |"
    if [ -z "$rps" ] || grep -q 'refused=[1-9]' <<<"$answers"; then
        echo "FAILED: Alertmanager $mode" >&2; echo "$out" >&2; FAILED=1
    fi
    kill -TERM "$AM_PID"; wait "$AM_PID" || true
    AM_PID=
done
exit "$FAILED"
