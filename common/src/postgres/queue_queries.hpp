#pragma once

// Every statement of the job queue, named (the name is also the prepared statement's). Time
// parameters are microseconds since the epoch or NULL for the database's now(), so tests can move
// time without sleeping. Arrays are passed as array literals (libpqxx 6.4 has no array
// parameters) and unnested, so a batch of any size is one statement and one round trip.

#include "postgres/query.hpp"

namespace mailsync::postgres::queries {

#define MAILSYNC_NOW(n) \
  "coalesce('epoch'::timestamptz + $" #n "::bigint * interval '1 microsecond', now())"

// Ids come back in insert order: identity values are assigned in the order of the ordered SELECT.
inline constexpr Query kJobEnqueue{"job_enqueue", R"sql(
INSERT INTO mailsync.jobs (kind, route_key, args, priority, run_at, max_attempts)
SELECT n.kind, n.route_key, n.args::jsonb, n.priority,
       coalesce('epoch'::timestamptz + n.run_at_us * interval '1 microsecond', now()), n.max_attempts
FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::bigint[], $6::integer[])
       WITH ORDINALITY AS n(kind, route_key, args, priority, run_at_us, max_attempts, ord)
ORDER BY n.ord
ON CONFLICT (route_key) WHERE kind = 'route_sync' AND finished_at IS NULL DO NOTHING
RETURNING id
)sql"};

// One statement: pick due jobs through jobs_claim_idx (priority, run_at, id) WHERE finished_at IS
// NULL, skipping rows other workers hold, and lease them (a HOT update: see sql/0001).
inline constexpr Query kJobClaim{"job_claim", R"sql(
WITH clock AS (SELECT )sql" MAILSYNC_NOW(3) R"sql( AS now),
due AS (
  SELECT j.id
  FROM mailsync.jobs j, clock
  WHERE j.finished_at IS NULL AND j.state = 'available' AND j.run_at <= clock.now
    AND j.kind = ANY($5::text[])
  ORDER BY j.priority, j.run_at, j.id
  LIMIT $2
  FOR UPDATE OF j SKIP LOCKED
)
UPDATE mailsync.jobs j
SET state = 'running', attempt = j.attempt + 1, lease_owner = $1,
    lease_expires_at = clock.now + $4::bigint * interval '1 millisecond', attempted_at = clock.now
FROM due, clock
WHERE j.id = due.id
RETURNING j.id, j.kind, j.route_key, j.args::text, j.priority, j.attempt, j.max_attempts,
          (extract(epoch FROM j.run_at) * 1000000)::bigint,
          (extract(epoch FROM j.created_at) * 1000000)::bigint
)sql"};

// claim_route: the route's queued or running route_sync (at most one: jobs_one_active_route_sync),
// locked for the rest of the transaction.
inline constexpr Query kJobRouteActive{"job_route_active", R"sql(
SELECT id, state::text, lease_owner, (extract(epoch FROM lease_expires_at) * 1000000)::bigint
FROM mailsync.jobs
WHERE kind = 'route_sync' AND route_key = $1 AND finished_at IS NULL
FOR UPDATE
)sql"};

// claim_route: a queued job taken now, whenever it was due (a run-once is asked for now).
inline constexpr Query kJobTake{"job_take", R"sql(
UPDATE mailsync.jobs j
SET state = 'running', attempt = j.attempt + 1, lease_owner = $2,
    lease_expires_at = now() + $3::bigint * interval '1 millisecond', attempted_at = now()
WHERE j.id = $1 AND j.state = 'available'
RETURNING j.id, j.kind, j.route_key, j.args::text, j.priority, j.attempt, j.max_attempts,
          (extract(epoch FROM j.run_at) * 1000000)::bigint,
          (extract(epoch FROM j.created_at) * 1000000)::bigint
)sql"};

// claim_route: no job queued, so one inserted as running (its first attempt; if that fails, the
// queue retries it like any other). A racing insert for the same route conflicts on
// jobs_one_active_route_sync and returns nothing.
inline constexpr Query kJobInsertRunning{"job_insert_running", R"sql(
INSERT INTO mailsync.jobs (kind, route_key, state, attempt, lease_owner, lease_expires_at, attempted_at)
VALUES ('route_sync', $1, 'running', 1, $2, now() + $3::bigint * interval '1 millisecond', now())
ON CONFLICT (route_key) WHERE kind = 'route_sync' AND finished_at IS NULL DO NOTHING
RETURNING id, kind, route_key, args::text, priority, attempt, max_attempts,
          (extract(epoch FROM run_at) * 1000000)::bigint, (extract(epoch FROM created_at) * 1000000)::bigint
)sql"};

// Finishes a batch of attempts held by $13. succeeded -> the row is deleted; failed ->
// available at the backoff time, or dead when the attempt was the last; retry -> available at the
// chosen time with max_attempts + 1 so that waiting does not use up attempts; cancelled / dead ->
// final. Attempts flagged for history get a job_attempts row, and every attempt is counted in
// job_counts, in the same statement.
inline constexpr Query kJobFinish{"job_finish", R"sql(
WITH clock AS (SELECT )sql" MAILSYNC_NOW(12) R"sql( AS now),
input AS (
  SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::boolean[], $6::text[],
                       $7::integer[], $8::integer[], $9::integer[], $10::integer[], $11::bigint[])
           AS f(id, outcome, error, run_at_us, record, run_id, fetched, appended, skipped, failed, bytes)
),
decided AS (
  SELECT f.*, j.kind, j.route_key, j.attempt, j.attempted_at,
         CASE WHEN f.outcome IN ('succeeded', 'cancelled', 'dead') THEN f.outcome
              WHEN f.outcome = 'retry' THEN 'available'
              WHEN j.attempt >= j.max_attempts THEN 'dead'
              ELSE 'available' END AS new_state
  FROM input f JOIN mailsync.jobs j ON j.id = f.id
  WHERE j.state = 'running' AND j.lease_owner = $13
),
deleted AS (
  DELETE FROM mailsync.jobs j USING decided d
  WHERE j.id = d.id AND d.new_state = 'succeeded'
  RETURNING j.id
),
updated AS (
  UPDATE mailsync.jobs j
  SET state = d.new_state::mailsync.job_state,
      run_at = CASE WHEN d.new_state = 'available'
                    THEN coalesce('epoch'::timestamptz + d.run_at_us * interval '1 microsecond', clock.now)
                    ELSE j.run_at END,
      max_attempts = CASE WHEN d.outcome = 'retry' THEN j.max_attempts + 1 ELSE j.max_attempts END,
      finished_at = CASE WHEN d.new_state = 'available' THEN NULL ELSE clock.now END,
      last_error = d.error, lease_owner = NULL, lease_expires_at = NULL
  FROM decided d, clock
  WHERE j.id = d.id AND d.new_state <> 'succeeded'
  RETURNING j.id
),
finished AS (
  SELECT d.* FROM decided d WHERE d.id IN (SELECT id FROM deleted UNION ALL SELECT id FROM updated)
),
history AS (
  INSERT INTO mailsync.job_attempts (job_id, attempt, kind, route_key, worker, run_id, started_at,
                                     finished_at, outcome, error, fetched, appended, skipped, failed, bytes)
  SELECT f.id, f.attempt, f.kind, f.route_key, $13, f.run_id, coalesce(f.attempted_at, clock.now), clock.now,
         CASE WHEN f.outcome = 'failed' AND f.new_state = 'dead' THEN 'dead' ELSE f.outcome END,
         f.error, f.fetched, f.appended, f.skipped, f.failed, f.bytes
  FROM finished f, clock
  WHERE f.record
  ON CONFLICT (job_id, attempt) DO NOTHING
),
counts AS (
  INSERT INTO mailsync.job_counts AS c (minute, kind, worker, succeeded, failed)
  SELECT date_trunc('minute', clock.now), f.kind, $13,
         count(*) FILTER (WHERE f.new_state = 'succeeded'), count(*) FILTER (WHERE f.outcome IN ('failed', 'dead'))
  FROM finished f, clock
  GROUP BY 1, 2
  ON CONFLICT (minute, kind, worker)
    DO UPDATE SET succeeded = c.succeeded + EXCLUDED.succeeded, failed = c.failed + EXCLUDED.failed
)
SELECT id, new_state FROM finished
)sql"};

// The common case of kJobFinish: a batch of plain successes without history. Same effect, a
// fraction of the work (one array, no joins, no CASEs).
inline constexpr Query kJobSucceed{"job_succeed", R"sql(
WITH clock AS (SELECT )sql" MAILSYNC_NOW(3) R"sql( AS now),
deleted AS (
  DELETE FROM mailsync.jobs
  WHERE id = ANY($1::bigint[]) AND state = 'running' AND lease_owner = $2
  RETURNING id, kind
),
counts AS (
  INSERT INTO mailsync.job_counts AS c (minute, kind, worker, succeeded)
  SELECT date_trunc('minute', clock.now), d.kind, $2, count(*) FROM deleted d, clock GROUP BY 1, 2
  ON CONFLICT (minute, kind, worker) DO UPDATE SET succeeded = c.succeeded + EXCLUDED.succeeded
)
SELECT id FROM deleted
)sql"};

inline constexpr Query kJobHeartbeat{"job_heartbeat", R"sql(
UPDATE mailsync.jobs
SET lease_expires_at = )sql" MAILSYNC_NOW(4) R"sql( + $3::bigint * interval '1 millisecond'
WHERE id = ANY($1::bigint[]) AND state = 'running' AND lease_owner = $2
RETURNING id
)sql"};

// Graceful shutdown: the attempt did not happen as far as the count goes.
inline constexpr Query kJobRelease{"job_release", R"sql(
UPDATE mailsync.jobs
SET state = 'available', run_at = )sql" MAILSYNC_NOW(3) R"sql(, max_attempts = max_attempts + 1,
    lease_owner = NULL, lease_expires_at = NULL, last_error = 'released by ' || $2 || ' at shutdown'
WHERE id = ANY($1::bigint[]) AND state = 'running' AND lease_owner = $2
)sql"};

// Expired leases: the worker died or lost its host. The job is due again at once (its lease
// already cost it the lease duration), or dead when that was its last attempt.
inline constexpr Query kJobRescue{"job_rescue", R"sql(
WITH clock AS (SELECT )sql" MAILSYNC_NOW(2) R"sql( AS now),
expired AS (
  SELECT j.id, j.lease_owner
  FROM mailsync.jobs j, clock
  WHERE j.state = 'running' AND j.lease_expires_at < clock.now
  ORDER BY j.lease_expires_at
  LIMIT $1
  FOR UPDATE OF j SKIP LOCKED
),
rescued AS (
  UPDATE mailsync.jobs j
  SET state = (CASE WHEN j.attempt >= j.max_attempts THEN 'dead' ELSE 'available' END)::mailsync.job_state,
      finished_at = CASE WHEN j.attempt >= j.max_attempts THEN clock.now END,
      run_at = clock.now,
      last_error = 'lease expired: worker ' || e.lease_owner || ' stopped heartbeating',
      lease_owner = NULL, lease_expires_at = NULL
  FROM expired e, clock
  WHERE j.id = e.id
  RETURNING j.id, j.state, j.kind, j.route_key, j.attempt, j.attempted_at, j.last_error, e.lease_owner,
            clock.now AS now
),
history AS (
  INSERT INTO mailsync.job_attempts (job_id, attempt, kind, route_key, worker, started_at, finished_at,
                                     outcome, error)
  SELECT r.id, r.attempt, r.kind, r.route_key, r.lease_owner, coalesce(r.attempted_at, r.now), r.now,
         'rescued', r.last_error
  FROM rescued r
  ON CONFLICT (job_id, attempt) DO NOTHING
),
counts AS (
  INSERT INTO mailsync.job_counts AS c (minute, kind, worker, failed)
  SELECT date_trunc('minute', r.now), r.kind, r.lease_owner, count(*) FROM rescued r GROUP BY 1, 2, 3
  ON CONFLICT (minute, kind, worker) DO UPDATE SET failed = c.failed + EXCLUDED.failed
)
SELECT id, state::text FROM rescued
)sql"};

// Cancelled jobs after $1 seconds, dead ones after $2 (operators read those), attempt history
// and per-minute counts after $2. At most $3 rows each, oldest first, so one call never holds
// locks for long. (Succeeded jobs were deleted when they finished.)
inline constexpr Query kJobPrune{"job_prune", R"sql(
WITH clock AS (SELECT )sql" MAILSYNC_NOW(4) R"sql( AS now),
old_jobs AS (
  SELECT j.id FROM mailsync.jobs j, clock
  WHERE (j.state = 'cancelled' AND j.finished_at < clock.now - $1::bigint * interval '1 second')
     OR (j.state = 'dead' AND j.finished_at < clock.now - $2::bigint * interval '1 second')
  ORDER BY j.finished_at
  LIMIT $3
),
deleted_jobs AS (DELETE FROM mailsync.jobs j USING old_jobs o WHERE j.id = o.id RETURNING 1),
old_attempts AS (
  SELECT a.job_id, a.attempt FROM mailsync.job_attempts a, clock
  WHERE a.finished_at < clock.now - $2::bigint * interval '1 second'
  LIMIT $3
),
deleted_attempts AS (
  DELETE FROM mailsync.job_attempts a USING old_attempts o
  WHERE a.job_id = o.job_id AND a.attempt = o.attempt RETURNING 1
),
deleted_counts AS (
  DELETE FROM mailsync.job_counts c USING clock WHERE c.minute < clock.now - $2::bigint * interval '1 second'
  RETURNING 1
)
SELECT (SELECT count(*) FROM deleted_jobs), (SELECT count(*) FROM deleted_attempts)
)sql"};

#undef MAILSYNC_NOW

}  // namespace mailsync::postgres::queries
