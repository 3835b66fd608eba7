#!/usr/bin/env bash
# Delivery latency, push (IDLE) against the 5-minute poll, on a throwaway local stack: ROUTES push
# routes held by WORKERS worker processes, MESSAGES messages appended at random times over SPREAD
# seconds; prints p50/p99/max per mode and fails when a message is missing or claimed twice.
# The poll run waits for the real schedule (POLL_INTERVAL=300 s), so the whole bench takes ~8 min.
#
#   bench/push/run.sh          ROUTES=200 WORKERS=2 MESSAGES=200 SPREAD=60 POLL_INTERVAL=300 MODES=push,poll
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ROUTES=${ROUTES:-200} WORKERS=${WORKERS:-2} MESSAGES=${MESSAGES:-200} SPREAD=${SPREAD:-60}
POLL_INTERVAL=${POLL_INTERVAL:-300} MODES=${MODES:-push,poll}

"$root/deploy/local/install-deps.sh"
cmake --preset release >/dev/null
cmake --build --preset release --target mailsync mailsync-worker mailsync-scheduler >/dev/null
bin=$root/build/release

stack=$("$root/deploy/local/up.sh")
work=$(mktemp -d /tmp/mailsync-bench-push.XXXXXX)
trap '"$root/deploy/local/down.sh" "$stack" >/dev/null; rm -rf "$work"' EXIT
. "$stack/env"
psql -q "$MAILSYNC_STACK_PG_ADMIN_URL" -c "CREATE DATABASE bench_push"
export MAILSYNC_DATABASE_URL="${MAILSYNC_DATABASE_URL%/*}/bench_push" LOG_LEVEL=warn
"$bin/admin/mailsync" migrate >/dev/null
"$bin/admin/mailsync" dynamo create-table >/dev/null
python3 "$root/bench/push/push_bench.py" --bin "$bin" --work "$work" --routes "$ROUTES" \
  --workers "$WORKERS" --messages "$MESSAGES" --spread "$SPREAD" --poll-interval "$POLL_INTERVAL" \
  --modes "$MODES"
