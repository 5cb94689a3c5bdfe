#!/usr/bin/env bash
# HTTP load benchmark of the reference server with wrk, on SQLite and on
# PostgreSQL. Phases, each run twice (no Accept-Encoding, then
# `Accept-Encoding: gzip`):
#   get   authenticated GET /incidents?limit=50 (60 incidents seeded)
#   post  authenticated POST /incidents
#   mixed GET /incidents?limit=50 with one POST /incidents per 10 requests
#         (benches/http_mixed.lua), so the list cache keeps being invalidated
#         and GETs also read the database.
# The run fails (exit 1) on any non-2xx answer or socket error (connect, read,
# write, timeout) that wrk reports. With the server's default limits a healthy
# run has none: wrk keeps 64 connections (IMAS_MAX_CONNECTIONS 1024) with one
# request each in flight (IMAS_MAX_CONCURRENT_REQUESTS 512, beyond which the
# server sheds with 503); the benchmark user is an admin (IMAS_REPORT_LIMIT
# limits only `user`s) and signs in once (IMAS_LOGIN_LIMIT counts failures).
#
# Usage: benches/http_load.sh [sqlite|postgres|both] (default both).
# DURATION per run (default 10s). IMAS_SMOKE=1: 2 s runs on the debug build
# (for CI). Needs wrk (Debian package `wrk`), curl, python3, and for
# PostgreSQL psql and a server reachable at $BENCH_PG_URL (default
# postgres://postgres@127.0.0.1:5432/imas_bench, created fresh). Traffic goes to
# 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
WHICH="${1:-both}"
THREADS=2
CONNECTIONS=64
PORT="${BENCH_PORT:-3917}"
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
trap 'kill "${SERVER_PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
FAILED=0

json() { python3 -c "import sys, json; print(json.load(sys.stdin)$1)"; }

# run_wrk BACKEND PHASE ENCODING WRK-ARGS...: one wrk run; prints its figures
# on one line and records a failure on any non-2xx answer or socket error.
run_wrk() {
    local backend="$1" phase="$2" encoding="$3" out
    shift 3
    out=$(wrk -t$THREADS -c$CONNECTIONS -d"$DURATION" --latency "$@")
    local rps p50 p99 non2xx sockets
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ {print $2}' <<<"$out")
    sockets=$(grep -E 'Socket errors' <<<"$out" || true)
    echo "| $backend | $phase | $encoding | $rps req/s | $p50 / $p99 | ${non2xx:-0} non-2xx${sockets:+; $sockets} |"
    if [ -n "$non2xx" ] || [ -n "$sockets" ] || [ -z "$rps" ]; then
        echo "FAILED: $backend $phase $encoding: ${non2xx:-0} non-2xx answers${sockets:+, $sockets}" >&2
        echo "$out" >&2
        FAILED=1
    fi
}

run_backend() {
    local backend="$1" url
    case "$backend" in
        sqlite) url="sqlite://$WORK/bench.db" ;;
        postgres)
            url="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/imas_bench}"
            local db="${url##*/}"
            psql "${url%/*}/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" ;;
    esac
    env -u MONGODB_URL -u REDIS_URL -u REDIS_HOST \
        PORT=$PORT DATABASE_URL="$url" JWT_SECRET="benchmark secret of at least 32 bytes" \
        IMAS_ADMIN_USERNAME=bench IMAS_ADMIN_PASSWORD="bench password" RUST_LOG=warn \
        "./target/$PROFILE/examples/server" >"$WORK/server-$backend.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 300); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
    local token
    token=$(curl -sf -X POST "$BASE/auth/login" -H 'content-type: application/json' \
        -d '{"username":"bench","password":"bench password"}' | json '["token"]')
    for n in $(seq 1 60); do
        curl -sf -o /dev/null -X POST "$BASE/incidents" -H "authorization: Bearer $token" \
            -H 'content-type: application/json' -d "{\"title\":\"seed incident $n\",\"priority\":\"low\"}"
    done
    local encoding gzip_header
    for encoding in identity gzip; do
        gzip_header=()
        [ "$encoding" = gzip ] && gzip_header=(-H "Accept-Encoding: gzip")
        run_wrk "$backend" "GET /incidents?limit=50" "$encoding" \
            -H "Authorization: Bearer $token" "${gzip_header[@]}" "$BASE/incidents?limit=50"
        BENCH_TOKEN="$token" BENCH_ENCODING="$encoding" run_wrk "$backend" "POST /incidents" "$encoding" \
            -s benches/http_post.lua "$BASE/incidents"
        BENCH_TOKEN="$token" BENCH_ENCODING="$encoding" run_wrk "$backend" "GET + 1 POST in 10" "$encoding" \
            -s benches/http_mixed.lua "$BASE/incidents?limit=50"
    done
    kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true
    SERVER_PID=
}

echo "| backend | phase | Accept-Encoding | throughput | latency p50 / p99 | errors |"
case "$WHICH" in
    sqlite | postgres) run_backend "$WHICH" ;;
    both) run_backend sqlite; run_backend postgres ;;
    *) echo "usage: $0 [sqlite|postgres|both]" >&2; exit 2 ;;
esac
if [ "$FAILED" != 0 ]; then
    echo "http_load: some runs had non-2xx answers or socket errors" >&2
    exit 1
fi
