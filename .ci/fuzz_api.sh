#!/usr/bin/env bash
# Property-based API fuzzing (issue 14, SPEC §7): schemathesis generates requests
# from the server's own /openapi.json and sends them to the real imas-server,
# signed in as an admin, on SQLite, PostgreSQL (DATABASE_URL) and MongoDB
# (MONGODB_URL). It fails on any 5xx answer (check `not_a_server_error`) and on
# any answer whose body does not match the schema the document gives for its
# status (check `response_schema_conformance`). Exits non-zero on any failure.
#
# By hand, from the repository root:
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/imas_test \
#   MONGODB_URL='mongodb://127.0.0.1:27018/?directConnection=true' \
#   bash .ci/fuzz_api.sh [sqlite] [postgres] [mongo]
# With no argument every backend runs; one whose URL is unset is skipped with a
# message (under CI=true it fails). Knobs: FUZZ_MAX_EXAMPLES (test cases per
# operation and phase, default 100), FUZZ_TIMEOUT (seconds per schemathesis run, default
# 300), FUZZ_SEED (reproduce a run), FUZZ_ARGS (more schemathesis options,
# e.g. '--include-path /incidents'), IMAS_SERVER (a prebuilt binary; by
# default target/debug/imas-server, built first with `cargo build`). Reports (JUnit, NDJSON events)
# and the server's log go to target/fuzz/<backend>/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-100}"
TIMEOUT="${FUZZ_TIMEOUT:-300}"
SERVER="${IMAS_SERVER:-$ROOT/target/debug/imas-server}"
OUT="$ROOT/target/fuzz"

# schemathesis, pinned, in its own virtualenv (kept between runs).
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/imas-fuzz/schemathesis-$SCHEMATHESIS_VERSION"
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
    echo "== installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "schemathesis==$SCHEMATHESIS_VERSION"
fi

# Without IMAS_SERVER, the binary is (re)built from this tree first; .ci/run
# passes the one `cargo test` has just built.
if [ -z "${IMAS_SERVER:-}" ]; then
    echo "== building imas-server"
    cargo build --quiet --bin imas-server
fi
if [ ! -x "$SERVER" ]; then
    echo "no imas-server binary at $SERVER" >&2
    exit 2
fi
SERVER="$(cd "$(dirname "$SERVER")" && pwd)/$(basename "$SERVER")"

SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
trap cleanup EXIT

random_hex() { python3 -c 'import secrets; print(secrets.token_hex(16))'; }

# fuzz BACKEND VAR=VALUE...: starts imas-server with the store the variables
# name, signs in as its bootstrap admin and runs schemathesis against it.
fuzz() {
    local backend="$1"
    shift
    local dir="$OUT/$backend"
    rm -rf "$dir"
    mkdir -p "$dir"
    local password
    password="fuzz $(random_hex)"
    echo "== fuzzing the API on $backend (schemathesis $SCHEMATHESIS_VERSION, $MAX_EXAMPLES examples per operation)"
    # A clean environment (no REDIS_URL, no .env): only what this run sets.
    (cd "$dir" && exec env -i PATH="$PATH" HOME="$HOME" PORT=0 NO_COLOR=1 \
        RUST_LOG="warn,imas=info,imas_http=warn" \
        JWT_SECRET="fuzz secret $(random_hex)" \
        IMAS_ADMIN_USERNAME=fuzzadmin IMAS_ADMIN_PASSWORD="$password" \
        "$@" "$SERVER") >"$dir/server.log" 2>&1 &
    SERVER_PID=$!
    local port=
    for _ in $(seq 1 120); do
        port="$(sed -n -e 's/\x1b\[[0-9;]*m//g' -e 's/.*IMAS listening.*address=[^ ]*:\([0-9][0-9]*\).*/\1/p' "$dir/server.log" | head -n 1)"
        [ -n "$port" ] && break
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
        sleep 0.5
    done
    if [ -z "$port" ]; then
        cat "$dir/server.log" >&2
        echo "imas-server did not start on $backend" >&2
        return 1
    fi
    local base="http://127.0.0.1:$port"
    local token
    token="$(curl -sf -X POST "$base/auth/login" -H 'Content-Type: application/json' \
        -d "{\"username\":\"fuzzadmin\",\"password\":\"$password\"}" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')"
    local seed=()
    [ -n "${FUZZ_SEED:-}" ] && seed=(--seed "$FUZZ_SEED")
    local status=0
    # Two runs: every operation but the role change first (its stateful links
    # would soon demote the signed-in admin, and every later request would be
    # a 403), then the role change alone. The live stream
    # (/notifications/stream) never ends by itself: it is not fuzzed.
    local run
    for run in main roles; do
        local select=(--exclude-path /notifications/stream --exclude-path /users/{id}/role)
        [ "$run" = roles ] && select=(--include-path /users/{id}/role)
        mkdir -p "$dir/$run"
        # Run inside target/fuzz: schemathesis keeps its cache in the working directory.
        # One worker: with two threads, hypothesis's ast.parse of lambda sources
        # hits a CPython 3.11 race ("AST constructor recursion depth mismatch",
        # fixed in 3.12) and schemathesis reports a runtime error.
        (cd "$dir/$run" && exec timeout --kill-after=10 "$TIMEOUT" "$VENV/bin/schemathesis" run "$base/openapi.json" \
            --checks not_a_server_error,response_schema_conformance \
            --header "Authorization: Bearer $token" \
            "${select[@]}" \
            --max-examples "$MAX_EXAMPLES" \
            --request-timeout 15 \
            --workers 1 \
            --generation-database none \
            --suppress-health-check all \
            --no-color \
            --report junit,ndjson --report-dir "$dir/$run" \
            "${seed[@]}" ${FUZZ_ARGS:-}) || status=$?
    done
    cleanup
    if [ "$status" -ne 0 ]; then
        echo "schemathesis found failures on $backend (exit $status); server log: $dir/server.log" >&2
        grep -E ' (ERROR|WARN) ' "$dir/server.log" | tail -n 20 >&2 || true
        return 1
    fi
}

backends=("$@")
[ ${#backends[@]} -eq 0 ] && backends=(sqlite postgres mongo)
failed=()
passed=0
skipped=0
for backend in "${backends[@]}"; do
    case "$backend" in
    sqlite)
        fuzz sqlite DATABASE_URL="sqlite://$OUT/sqlite-$(random_hex).db" || failed+=(sqlite)
        ;;
    postgres)
        if [ -z "${DATABASE_URL:-}" ] || [[ "$DATABASE_URL" != postgres* ]]; then
            if [ "${CI:-}" = true ]; then
                echo "DATABASE_URL (PostgreSQL) is not set: cannot fuzz on PostgreSQL" >&2
                failed+=(postgres)
            else
                echo "== skipping PostgreSQL: DATABASE_URL is not set"
                skipped=$((skipped + 1))
            fi
            continue
        fi
        schema="imas_fuzz_$(random_hex)"
        fuzz postgres DATABASE_URL="$DATABASE_URL" IMAS_DB_SCHEMA="$schema" || failed+=(postgres)
        if command -v psql >/dev/null; then
            psql "$DATABASE_URL" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
        fi
        ;;
    mongo)
        if [ -z "${MONGODB_URL:-}" ]; then
            if [ "${CI:-}" = true ]; then
                echo "MONGODB_URL is not set: cannot fuzz on MongoDB" >&2
                failed+=(mongo)
            else
                echo "== skipping MongoDB: MONGODB_URL is not set"
                skipped=$((skipped + 1))
            fi
            continue
        fi
        # The server's database is the one the URL names: a fresh one per run.
        db="imas_fuzz_$(random_hex)"
        url="$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$MONGODB_URL" "$db")"
        fuzz mongo MONGODB_URL="$url" || failed+=(mongo)
        ;;
    *)
        echo "unknown backend $backend (expected sqlite, postgres or mongo)" >&2
        exit 2
        ;;
    esac
    [[ " ${failed[*]} " == *" $backend "* ]] || passed=$((passed + 1))
done

echo "fuzz: ${passed} passed, ${#failed[@]} failed, ${skipped} skipped"
[ ${#failed[@]} -eq 0 ]
