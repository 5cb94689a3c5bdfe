#!/usr/bin/env bash
# HTTP load benchmark of the reference server (release build) with wrk:
# authenticated GET /incidents (50 rows) and POST /incidents, on SQLite and on
# PostgreSQL. Usage: benches/http_load.sh [sqlite|postgres|both] (default both).
# Needs wrk (Debian package `wrk`) and, for PostgreSQL, a server reachable at
# $BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/imas_bench, created
# fresh). Traffic goes to 127.0.0.1 only; each run is bounded by DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."
WHICH="${1:-both}"
DURATION="${DURATION:-15s}"
THREADS=2
CONNECTIONS=64
PORT="${BENCH_PORT:-3917}"
BASE="http://127.0.0.1:$PORT"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
cargo build --release --example server -q
WORK="$(mktemp -d)"
trap 'kill "${SERVER_PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

json() { python3 -c "import sys, json; print(json.load(sys.stdin)$1)"; }

run_backend() {
    local backend="$1" url
    case "$backend" in
        sqlite) url="sqlite://$WORK/bench.db" ;;
        postgres)
            url="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/imas_bench}"
            local db="${url##*/}"
            psql "${url%/*}/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" ;;
    esac
    PORT=$PORT DATABASE_URL="$url" JWT_SECRET="benchmark secret of at least 32 bytes" \
        IMAS_ADMIN_USERNAME=bench IMAS_ADMIN_PASSWORD="bench password" RUST_LOG=warn \
        ./target/release/examples/server >"$WORK/server-$backend.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
    local token
    token=$(curl -sf -X POST "$BASE/auth/login" -H 'content-type: application/json' \
        -d '{"username":"bench","password":"bench password"}' | json '["token"]')
    for n in $(seq 1 60); do
        curl -sf -o /dev/null -X POST "$BASE/incidents" -H "authorization: Bearer $token" \
            -H 'content-type: application/json' -d "{\"title\":\"seed incident $n\",\"priority\":\"low\"}"
    done
    cat >"$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"title":"load test incident","description":"created by wrk","priority":"low"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
LUA
    echo "### $backend: GET /incidents?limit=50"
    wrk -t$THREADS -c$CONNECTIONS -d"$DURATION" --latency -H "Authorization: Bearer $token" \
        "$BASE/incidents?limit=50" | grep -E "Requests/sec|99%|50%|Non-2xx|Socket errors"
    echo "### $backend: POST /incidents"
    wrk -t$THREADS -c$CONNECTIONS -d"$DURATION" --latency -s "$WORK/post.lua" "$BASE/incidents" \
        | grep -E "Requests/sec|99%|50%|Non-2xx|Socket errors"
    kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true
}

case "$WHICH" in
    sqlite | postgres) run_backend "$WHICH" ;;
    both) run_backend sqlite; run_backend postgres ;;
    *) echo "usage: $0 [sqlite|postgres|both]" >&2; exit 2 ;;
esac
