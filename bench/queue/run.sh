#!/usr/bin/env bash
# Queue throughput and latency, mailsync beside graphile-worker, in one run on one throwaway
# PostgreSQL with durable settings (fsync and synchronous_commit on).
#
#   bench/queue/run.sh                  N=20000 jobs, P=2 processes x C=24, 3 alternating rounds
#   N=50000 P=2 C=24 ROUNDS=5 LATENCY_JOBS=1000 bench/queue/run.sh
#
# Throughput: N no-op jobs inserted up front in one statement, then drained by P worker processes
# with concurrency C each (mailsync-worker --drain; graphile-worker runOnce, batched mode as in its
# perfTest: localQueue 500, completeJobBatchDelay 0). The median of the rounds is reported.
# Latency: LATENCY_JOBS jobs enqueued one after another against one idle worker of each; the time
# from the insert to the claim, both timestamps taken by the database.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$root/deploy/local/lib.sh"
N=${N:-20000} P=${P:-2} C=${C:-24} ROUNDS=${ROUNDS:-3} LATENCY_JOBS=${LATENCY_JOBS:-1000}
PREFETCH=${PREFETCH:-500}  # the same in-memory allowance as graphile-worker's localQueue size

"$root/deploy/local/install-deps.sh"
npm_dir=$(dirname "$(npm_cache_dir)")/bench-npm
if [[ ! -d $npm_dir/node_modules/graphile-worker ]]; then
  log "installing graphile-worker@0.17.3 into $npm_dir"
  mkdir -p "$npm_dir"
  npm install --silent --no-audit --no-fund --engine-strict --prefix "$npm_dir" graphile-worker@0.17.3 pg@8 >/dev/null
fi
export NODE_PATH=$npm_dir/node_modules NO_LOG_SUCCESS=1

cmake --preset release >/dev/null
cmake --build --preset release --target mailsync mailsync-worker >/dev/null
bin=$root/build/release

dir=$(mktemp -d /tmp/mailsync-bench-queue.XXXXXX)
chmod 755 "$dir"
read -r port < <(free_ports 1)
trap 'stop_postgres "$dir/pg"; rm -rf "$dir"' EXIT
start_postgres "$dir/pg" "$port" durable
base="postgresql://postgres@127.0.0.1:$port"
psql -q -h 127.0.0.1 -p "$port" -U postgres -c "CREATE DATABASE mailsync_bench" -c "CREATE DATABASE graphile_bench"
MAILSYNC_DATABASE_URL=$base/mailsync_bench "$bin/admin/mailsync" migrate >/dev/null
node -e "require('graphile-worker').runMigrations({connectionString: '$base/graphile_bench'}).then(() => process.exit(0))"
echo "postgres 15 durable (fsync on, synchronous_commit on); N=$N jobs, $P processes x $C; $ROUNDS rounds" >&2

now_ms() { date +%s%3N; }
# drain_rate DB TABLE NAME COMMAND...: run COMMAND in $P processes until they drain TABLE of DB;
# print jobs per second, or die if any job is left.
drain_rate() {
  local db=$1 table=$2 name=$3
  shift 3
  local start pids=()
  start=$(now_ms)
  for _ in $(seq "$P"); do
    "$@" &
    pids+=($!)
  done
  wait "${pids[@]}"
  local elapsed=$(($(now_ms) - start))
  local left
  left=$(psql -tA -h 127.0.0.1 -p "$port" -U postgres -d "$db" -c "SELECT count(*) FROM $table")
  [[ $left == 0 ]] || die "$name left $left of $N jobs"
  echo $((N * 1000 / elapsed))
}
mailsync_round() {
  psql -q -h 127.0.0.1 -p "$port" -U postgres -d mailsync_bench \
    -c "TRUNCATE mailsync.jobs, mailsync.job_counts" -c "INSERT INTO mailsync.jobs (kind) SELECT 'noop' FROM generate_series(1, $N)" \
    -c "VACUUM ANALYZE mailsync.jobs"
  drain_rate mailsync_bench mailsync.jobs mailsync \
    env LOG_LEVEL=warn MAILSYNC_DATABASE_URL="$base/mailsync_bench" "$bin/worker/mailsync-worker" --kinds noop --drain --concurrency "$C" --prefetch "$PREFETCH"
}
graphile_round() {
  psql -q -h 127.0.0.1 -p "$port" -U postgres -d graphile_bench \
    -c "DELETE FROM graphile_worker._private_jobs" \
    -c "SELECT count(*) FROM graphile_worker.add_jobs(array(SELECT json_populate_record(null::graphile_worker.job_spec, json_build_object('identifier', 'noop')) FROM generate_series(1, $N)))" \
    -c "VACUUM ANALYZE graphile_worker._private_jobs" >/dev/null
  drain_rate graphile_bench graphile_worker._private_jobs graphile-worker \
    node "$root/bench/queue/graphile_drain.js" "$base/graphile_bench" "$C"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

m_rates=() g_rates=()
for round in $(seq "$ROUNDS"); do
  m=$(mailsync_round)
  g=$(graphile_round)
  echo "round $round: mailsync $m jobs/s, graphile-worker $g jobs/s" >&2
  m_rates+=("$m")
  g_rates+=("$g")
done
m_median=$(printf '%s\n' "${m_rates[@]}" | median)
g_median=$(printf '%s\n' "${g_rates[@]}" | median)

# Latency: one idle worker of each.
psql -q -h 127.0.0.1 -p "$port" -U postgres -d mailsync_bench <<'SQL'
TRUNCATE mailsync.jobs;
-- Bench only: keep each job's claim latency when its row is deleted at completion.
CREATE TABLE bench_latency (ms float8 NOT NULL);
CREATE FUNCTION bench_record_latency() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO bench_latency VALUES (extract(epoch FROM OLD.attempted_at - OLD.created_at) * 1000);
  RETURN OLD;
END $$;
CREATE TRIGGER bench_latency AFTER DELETE ON mailsync.jobs FOR EACH ROW EXECUTE FUNCTION bench_record_latency();
SQL
LOG_LEVEL=warn MAILSYNC_DATABASE_URL=$base/mailsync_bench "$bin/worker/mailsync-worker" --kinds noop --concurrency 1 &
worker=$!
sleep 0.5
m_latency=$(node "$root/bench/queue/latency.js" mailsync "$base/mailsync_bench" "$LATENCY_JOBS")
kill -TERM "$worker"
wait "$worker" || true
g_latency=$(node "$root/bench/queue/latency.js" graphile "$base/graphile_bench" "$LATENCY_JOBS")

echo "mailsync_jobs_per_s=$m_median"
echo "graphile_worker_jobs_per_s=$g_median"
awk -v m="$m_median" -v g="$g_median" 'BEGIN { printf "ratio=%.2f\n", m / g }'
node -e "const m = $m_latency, g = $g_latency;
  console.log('mailsync_latency_ms_p50=' + m.p50.toFixed(2) + ' p99=' + m.p99.toFixed(2));
  console.log('graphile_worker_latency_ms_p50=' + g.p50.toFixed(2) + ' p99=' + g.p99.toFixed(2));"
