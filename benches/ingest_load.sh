#!/usr/bin/env bash
# Alert ingestion under load: POST /v2/enqueue (PagerDuty Events v2) of the
# reference server, driven by wrk -t2 -c64, on SQLite and on PostgreSQL.
# Phases:
#   new     every event a new dedup key: a new alert and a new incident each
#           (with its SLA, audit entries and notification intents);
#   repeat  triggers of 1,000 dedup keys that are already open: each one a
#           repeated trigger (the alert's eventCount and lastEventAt move).
# Each phase runs on a fresh database, and starts once the notifications of
# what was made before it (the 1,000 seeded incidents) are delivered.
# Every answer is durable when it is sent (the store committed it). The run
# checks its own result in the database: after "new", as many more alerts and
# incidents as wrk counted 202s; after "repeat", no new alert and the alerts'
# eventCount sum grown by exactly the 202s. It fails on any non-202 answer,
# socket error or count mismatch. The server's resident memory is sampled
# every half second: start, end and peak of each run are printed.
#
# Usage: benches/ingest_load.sh [sqlite|postgres|both] (default both).
# DURATION per run (default 10s; the README's 60 s memory check uses
# DURATION=60s). IMAS_SMOKE=1: 2 s runs on the debug build (for CI). Needs
# wrk, curl, python3, and for PostgreSQL psql and a server at $BENCH_PG_URL
# (default postgres://postgres@127.0.0.1:5432/imas_bench, created fresh).
# The reference figures come from benches/alertmanager_ref.sh, run at the
# same moment.
set -euo pipefail
cd "$(dirname "$0")/.."
WHICH="${1:-both}"
THREADS=2
CONNECTIONS=64
KEYS=1000
PORT="${BENCH_PORT:-3918}"
BASE="http://127.0.0.1:$PORT"
if [ "${IMAS_SMOKE:-}" = 1 ]; then
    DURATION="${DURATION:-2s}"
    PROFILE=debug
    cargo build --example server -q
else
    DURATION="${DURATION:-10s}"
    PROFILE=release
    cargo build --release --example server -q
fi
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'kill "${SERVER_PID:-}" 2>/dev/null || true; kill "${SAMPLER_PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
FAILED=0

json() { python3 -c "import sys, json; print(json.load(sys.stdin)$1)"; }

# counts BACKEND URL: "<alerts> <sum of eventCount> <incidents>" from the database.
counts() {
    local sql="SELECT (SELECT count(*) FROM alerts), (SELECT coalesce(sum(event_count), 0) FROM alerts), (SELECT count(*) FROM incidents)"
    case "$1" in
        sqlite) python3 - "${2#sqlite://}" "$sql" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(*db.execute(sys.argv[2]).fetchone())
PY
        ;;
        postgres) psql "$2" -Atqc "SET search_path TO imas; $sql" | tr '|' ' ' ;;
    esac
}

# authed METHOD PATH BODY: an admin's API call; prints the answer.
authed() {
    curl -sf -X "$1" "$BASE$2" -H "authorization: Bearer $TOKEN" \
        -H 'content-type: application/json' ${3:+-d "$3"}
}

# new_key NAME: a service with an events-v2 integration; prints its key.
new_key() {
    local service
    service=$(authed POST /services "{\"name\":\"$1\"}" | json '["id"]')
    authed POST "/services/$service/integrations" "{\"name\":\"$1 events\",\"kind\":\"events-v2\"}" | json '["key"]'
}

# seed KEY: opens the dedup keys bench-0..bench-999 (one trigger each), over
# one keep-alive connection.
seed() {
    python3 - "$PORT" "$1" "$KEYS" <<'PY'
import http.client, json, sys
port, key, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port)
for i in range(n):
    body = json.dumps({"routing_key": key, "event_action": "trigger", "dedup_key": f"bench-{i}",
                       "payload": {"summary": f"Disk almost full on bench-{i}", "source": f"host-bench-{i}",
                                   "severity": "warning", "custom_details": {"free_bytes": 1048576, "mount": "/var"}}})
    c.request("POST", "/v2/enqueue", body, {"Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    assert r.status == 202, (r.status, i)
PY
}

# run_phase BACKEND URL MODE KEY: one wrk run, its figures on one line, and
# the check of what it did against the database.
run_phase() {
    local backend="$1" url="$2" mode="$3" key="$4" out before after
    before=$(counts "$backend" "$url")
    : >"$WORK/rss"
    ( while kill -0 "$SERVER_PID" 2>/dev/null; do ps -o rss= -p "$SERVER_PID" >>"$WORK/rss" || true; sleep 0.5; done ) &
    SAMPLER_PID=$!
    out=$(BENCH_KEY="$key" BENCH_MODE="$mode" BENCH_KEYS=$KEYS \
        wrk -t$THREADS -c$CONNECTIONS -d"$DURATION" --latency -s benches/ingest_event.lua "$BASE")
    kill "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=
    after=$(counts "$backend" "$url")
    local rps p50 p99 accepted refused sockets
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    accepted=$(sed -n 's/.*accepted=\([0-9]*\).*/\1/p' <<<"$out")
    refused=$(sed -n 's/.*refused=\([0-9]*\).*/\1/p' <<<"$out")
    sockets=$(grep -E 'Socket errors' <<<"$out" || true)
    read -r a0 e0 i0 <<<"$before"
    read -r a1 e1 i1 <<<"$after"
    local d_alerts=$((a1 - a0)) d_events=$((e1 - e0)) d_incidents=$((i1 - i0)) check=ok
    # wrk stops counting answers when its time is up, but requests in flight
    # then still commit: the database may hold up to one request per
    # connection more than wrk counted, never fewer.
    case "$mode" in
        new) if [ "$d_alerts" -lt "$accepted" ] || [ "$d_alerts" -gt $((accepted + CONNECTIONS)) ] \
                || [ "$d_incidents" != "$d_alerts" ] || [ "$d_events" != "$d_alerts" ]; then check=MISMATCH; fi ;;
        repeat) if [ "$d_alerts" != 0 ] || [ "$d_incidents" != 0 ] || [ "$d_events" -lt "$accepted" ] \
                || [ "$d_events" -gt $((accepted + CONNECTIONS)) ]; then check=MISMATCH; fi ;;
    esac
    local rss_start rss_end rss_peak
    rss_start=$(head -1 "$WORK/rss"); rss_end=$(tail -1 "$WORK/rss"); rss_peak=$(sort -n "$WORK/rss" | tail -1)
    echo "| $backend | $mode | $rps events/s | $p50 / $p99 | 202: $accepted, other: $refused${sockets:+; $sockets} | +$d_alerts alerts, +$d_incidents incidents, +$d_events events: $check | $((rss_start / 1024)) → $((rss_end / 1024)) MB (peak $((rss_peak / 1024))) |"
    if [ "$check" != ok ] || [ "${refused:-1}" != 0 ] || [ -n "$sockets" ] || [ -z "$rps" ]; then
        echo "FAILED: $backend $mode" >&2
        echo "$out" >&2
        tail -20 "$WORK/server-$backend.log" >&2
        FAILED=1
    fi
}

# settled BACKEND URL: waits (up to 60 s) until the outbox has nothing left
# to deliver, so that a timed run does not share the machine with the
# notifications of the incidents made before it.
settled() {
    local sql="SELECT count(*) FROM outbox WHERE delivered_at IS NULL" pending
    for _ in $(seq 1 600); do
        case "$1" in
            sqlite) pending=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' "${2#sqlite://}" "$sql") ;;
            postgres) pending=$(psql "$2" -Atqc "SET search_path TO imas; $sql") ;;
        esac
        [ "$pending" = 0 ] && return 0
        sleep 0.1
    done
    echo "the outbox still holds $pending undelivered entries" >&2
}

# start_server BACKEND: a fresh database and a server on it; sets URL,
# SERVER_PID and TOKEN.
start_server() {
    local backend="$1"
    case "$backend" in
        sqlite) rm -f "$WORK"/bench.db*; URL="sqlite://$WORK/bench.db" ;;
        postgres)
            URL="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/imas_bench}"
            local db="${URL##*/}"
            psql "${URL%/*}/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" ;;
    esac
    env -u MONGODB_URL -u REDIS_URL -u REDIS_HOST \
        PORT=$PORT DATABASE_URL="$URL" JWT_SECRET="benchmark secret of at least 32 bytes" \
        IMAS_ADMIN_USERNAME=bench IMAS_ADMIN_PASSWORD="bench password" IMAS_INGEST_RATE_LIMIT=0 \
        RUST_LOG=warn "./target/$PROFILE/examples/server" >>"$WORK/server-$backend.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 300); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
    TOKEN=$(curl -sf -X POST "$BASE/auth/login" -H 'content-type: application/json' \
        -d '{"username":"bench","password":"bench password"}' | json '["token"]')
}

stop_server() {
    kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true
    SERVER_PID=
}

# Each phase on a fresh database, timed once what came before has settled.
run_backend() {
    local backend="$1" key
    start_server "$backend"
    key=$(new_key "checkout")
    settled "$backend" "$URL"
    run_phase "$backend" "$URL" new "$key"
    stop_server
    start_server "$backend"
    key=$(new_key "storage")
    seed "$key"
    settled "$backend" "$URL"
    run_phase "$backend" "$URL" repeat "$key"
    stop_server
}

echo "| backend | phase | throughput | latency p50 / p99 | answers | checked in the database | server RSS start → end |"
case "$WHICH" in
    sqlite | postgres) run_backend "$WHICH" ;;
    both) run_backend sqlite; run_backend postgres ;;
    *) echo "usage: $0 [sqlite|postgres|both]" >&2; exit 2 ;;
esac
if [ "$FAILED" != 0 ]; then
    echo "ingest_load: some runs failed their checks" >&2
    exit 1
fi
