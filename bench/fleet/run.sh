#!/usr/bin/env bash
# Thousands of routes, mostly idle (bench/fleet/fleet_bench.py): one scheduler, WORKERS workers,
# ROUTES routes over the stack's 2,000 fleet mailboxes, 1 % with new mail; a durable PostgreSQL.
#
#   bench/fleet/run.sh          ROUTES=5000 WORKERS=2 CONCURRENCY=8
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../sync/common.sh"
ROUTES=${ROUTES:-5000} WORKERS=${WORKERS:-2} CONCURRENCY=${CONCURRENCY:-8}
trap bench_down EXIT
bench_up 0
python3 "$root/bench/fleet/fleet_bench.py" --bin "$bin" --work "$work" --routes "$ROUTES" \
  --workers "$WORKERS" --concurrency "$CONCURRENCY" --postgres-pid "$(head -1 "$work/pg/data/postmaster.pid")"
