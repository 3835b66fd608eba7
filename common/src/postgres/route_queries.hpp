#pragma once

// Statements about routes and route_sync jobs (the scheduler's and the admin command's).
// Conventions as in queue_queries.hpp.

#include "postgres/queue_queries.hpp"

namespace mailsync::postgres::queries {

#define MAILSYNC_NOW(n) \
  "coalesce('epoch'::timestamptz + $" #n "::bigint * interval '1 microsecond', now())"

inline constexpr Query kRouteUpsert{"route_upsert", R"sql(
WITH input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::boolean[], $6::boolean[])
           AS r(route_key, gmail_email, outlook_email, target_folder, enabled, push)
),
changed AS (
  INSERT INTO mailsync.routes AS r (route_key, gmail_email, outlook_email, target_folder, enabled, push)
  SELECT route_key, gmail_email, outlook_email, target_folder, enabled, push FROM input
  ON CONFLICT (route_key) DO UPDATE SET enabled = EXCLUDED.enabled, push = EXCLUDED.push,
                                        updated_at = now()
    WHERE r.enabled IS DISTINCT FROM EXCLUDED.enabled OR r.push IS DISTINCT FROM EXCLUDED.push
  RETURNING 1
),
disabled AS (
  UPDATE mailsync.routes SET enabled = false, updated_at = now()
  WHERE enabled AND route_key NOT IN (SELECT route_key FROM input)
  RETURNING 1
)
SELECT (SELECT count(*) FROM changed), (SELECT count(*) FROM disabled)
)sql"};

// The row lock on periodic_cycles serialises racing replicas: the loser re-checks the condition
// against the winner's committed last_cycle_at and updates nothing.
inline constexpr Query kCycleClaim{"cycle_claim", R"sql(
INSERT INTO mailsync.periodic_cycles AS c (name, last_cycle_at, owner)
VALUES ($1, )sql" MAILSYNC_NOW(4) R"sql(, $2)
ON CONFLICT (name) DO UPDATE SET last_cycle_at = EXCLUDED.last_cycle_at, owner = EXCLUDED.owner
  WHERE $5 OR c.last_cycle_at <= EXCLUDED.last_cycle_at - $3::bigint * interval '1 millisecond'
RETURNING 1
)sql"};

// Every enabled, unpaused route without auth trouble, or one route; routes with a queued or
// running route_sync are skipped by the partial unique index.
inline constexpr Query kRouteSyncEnqueue{"route_sync_enqueue", R"sql(
INSERT INTO mailsync.jobs (kind, route_key, priority, run_at, max_attempts)
SELECT 'route_sync', r.route_key, $2, )sql" MAILSYNC_NOW(3) R"sql(, $4
FROM mailsync.routes r
WHERE CASE WHEN $1::text IS NULL THEN r.enabled AND NOT r.paused AND r.auth_state = 'ok'
           ELSE r.route_key = $1 END
ORDER BY r.route_key
ON CONFLICT (route_key) WHERE kind = 'route_sync' AND finished_at IS NULL DO NOTHING
RETURNING id
)sql"};

// A route_watch job for every push route that has none and can be watched: enabled, unpaused,
// without auth trouble, and not found without IDLE in the last hour. The partial unique index
// collapses a second one.
inline constexpr Query kRouteWatchEnsure{"route_watch_ensure", R"sql(
INSERT INTO mailsync.jobs (kind, route_key, priority, max_attempts)
SELECT 'route_watch', r.route_key, 0, 1000000
FROM mailsync.routes r
WHERE r.push AND r.enabled AND NOT r.paused AND r.auth_state = 'ok'
  AND NOT (r.watch_state IS NOT DISTINCT FROM 'unsupported'
           AND r.watch_updated_at > now() - interval '1 hour')
ORDER BY r.route_key
ON CONFLICT (route_key) WHERE kind = 'route_watch' AND finished_at IS NULL DO NOTHING
RETURNING id
)sql"};

inline constexpr Query kRouteExists{"route_exists",
                                    "SELECT 1 FROM mailsync.routes WHERE route_key = $1"};

inline constexpr Query kRoutePause{"route_pause", R"sql(
WITH route AS (
  -- Resuming also clears auth_required: it is what the log tells an operator to run after fixing
  -- the credentials.
  UPDATE mailsync.routes
  SET paused = $2, updated_at = now(),
      auth_state = CASE WHEN $2 THEN auth_state ELSE 'ok' END,
      auth_detail = CASE WHEN $2 THEN auth_detail END,
      auth_required_at = CASE WHEN $2 THEN auth_required_at END
  WHERE route_key = $1 RETURNING route_key
),
cancelled AS (
  UPDATE mailsync.jobs j SET state = 'cancelled', finished_at = now(), last_error = 'route paused'
  FROM route
  WHERE $2 AND j.route_key = route.route_key AND j.kind = 'route_sync' AND j.state = 'available'
  RETURNING 1
)
SELECT (SELECT count(*) FROM route), (SELECT count(*) FROM cancelled)
)sql"};

inline constexpr Query kRouteStatus{"route_status", R"sql(
SELECT coalesce(json_agg(row_to_json(s) ORDER BY s.route_key), '[]')::text FROM mailsync.route_status s
)sql"};

inline constexpr Query kQueueSummary{"queue_summary", R"sql(
SELECT json_build_object(
  'by_state', (SELECT coalesce(json_object_agg(state, n), '{}') FROM (
                 SELECT state::text, count(*) AS n FROM mailsync.jobs GROUP BY state) s),
  'succeeded_last_hour', (SELECT coalesce(sum(succeeded), 0) FROM mailsync.jobs_per_minute),
  'failed_last_hour', (SELECT coalesce(sum(failed), 0) FROM mailsync.jobs_per_minute),
  'due_jobs', d.due_jobs,
  'oldest_due_age_seconds', d.oldest_due_age_seconds)::text
FROM mailsync.queue_due d
)sql"};

inline constexpr Query kJobsList{"jobs_list", R"sql(
SELECT coalesce(json_agg(row_to_json(j)), '[]')::text FROM (
  SELECT id, kind, route_key, state, priority, attempt, max_attempts, run_at, lease_owner,
         lease_expires_at, created_at, finished_at, last_error
  FROM mailsync.jobs
  WHERE ($1::text IS NULL OR state::text = $1) AND ($2::text IS NULL OR kind = $2)
    AND ($3::text IS NULL OR route_key = $3)
  ORDER BY id DESC
  LIMIT $4
) j
)sql"};

inline constexpr Query kDeadRetry{"dead_retry", R"sql(
UPDATE mailsync.jobs j
SET state = 'available', run_at = now(), finished_at = NULL, max_attempts = j.attempt + $2
WHERE j.state = 'dead' AND ($1::bigint[] IS NULL OR j.id = ANY($1::bigint[]))
  AND NOT (j.kind = 'route_sync' AND EXISTS (
    SELECT 1 FROM mailsync.jobs o
    WHERE o.route_key = j.route_key AND o.kind = 'route_sync' AND o.state IN ('available', 'running')))
RETURNING j.id
)sql"};

inline constexpr Query kDeadDiscard{"dead_discard", R"sql(
DELETE FROM mailsync.jobs WHERE state = 'dead' AND ($1::bigint[] IS NULL OR id = ANY($1::bigint[]))
RETURNING id
)sql"};

// The gauges of the metrics endpoint, in one round trip.
inline constexpr Query kHealthSnapshot{"health_snapshot", R"sql(
SELECT json_build_object(
  'due', (SELECT coalesce(json_object_agg(kind, n), '{}') FROM (
            SELECT kind, count(*) AS n FROM mailsync.jobs
            WHERE state = 'available' AND run_at <= now() GROUP BY kind) d),
  'jobs', (SELECT coalesce(json_agg(json_build_object('kind', kind, 'state', state, 'jobs', jobs)), '[]')
           FROM mailsync.queue_depth),
  'oldest_due_age_seconds', (SELECT oldest_due_age_seconds FROM mailsync.queue_due),
  'auth_required', (SELECT count(*) FROM mailsync.routes WHERE enabled AND auth_state <> 'ok'),
  'paused', (SELECT count(*) FROM mailsync.routes WHERE enabled AND paused),
  'token_expiry', (SELECT coalesce(json_object_agg(route_key, expires), '{}') FROM (
                     SELECT r.route_key, extract(epoch FROM min(x.expires_at)) AS expires
                     FROM mailsync.routes r JOIN mailsync.token_expiry x
                       ON x.token_key IN ('gmail:' || r.route_key, 'outlook:' || r.outlook_email)
                     WHERE r.enabled AND x.expires_at IS NOT NULL
                     GROUP BY r.route_key) t))::text
)sql"};

// The status page (src/ui): every panel in one statement, one snapshot. Routes as route_status
// (those needing attention first); the queue as queue_summary; finished jobs per minute for the
// last hour; dead jobs and messages not copied, newest first, the first 50 of each (their totals
// beside them).
inline constexpr Query kStatusPage{"status_page", R"sql(
SELECT json_build_object(
  'now', now(),
  -- routes needing a person first, then failing, then running, then the rest, by key
  'routes', (SELECT coalesce(json_agg(row_to_json(s) ORDER BY
               s.enabled AND s.auth_state <> 'ok' DESC,
               s.enabled AND s.last_outcome IS DISTINCT FROM 'succeeded' AND s.last_outcome IS NOT NULL DESC,
               s.queued_job_state IS NOT DISTINCT FROM 'running' DESC, s.enabled DESC, s.route_key), '[]')
             FROM mailsync.route_status s),
  'queue', (SELECT json_build_object(
              'by_state', (SELECT coalesce(json_object_agg(state, n), '{}') FROM (
                             SELECT state::text, count(*) AS n FROM mailsync.jobs GROUP BY state) s),
              'due_jobs', d.due_jobs, 'oldest_due_age_seconds', d.oldest_due_age_seconds)
            FROM mailsync.queue_due d),
  'per_minute', (SELECT coalesce(json_agg(row_to_json(m) ORDER BY m.minute), '[]') FROM mailsync.jobs_per_minute m),
  'dead_total', (SELECT count(*) FROM mailsync.dead_jobs),
  'dead', (SELECT coalesce(json_agg(row_to_json(d)), '[]') FROM (
             SELECT * FROM mailsync.dead_jobs ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT 50) d),
  'failures_total', (SELECT count(*) FROM mailsync.failures),
  'failures', (SELECT coalesce(json_agg(row_to_json(f)), '[]') FROM (
                 SELECT route_key, uid, reason, last_error, permanent, retry_count, next_retry_at,
                        message_id, size, updated_at
                 FROM mailsync.failures ORDER BY updated_at DESC LIMIT 50) f))::text
)sql"};

// One route's page: its route_status row (NULL when there is no such route), its last 50
// attempts and its messages not copied.
inline constexpr Query kRoutePage{"route_page", R"sql(
SELECT json_build_object(
  'now', now(),
  'route', (SELECT row_to_json(s) FROM mailsync.route_status s WHERE s.route_key = $1),
  'attempts', (SELECT coalesce(json_agg(row_to_json(a)), '[]') FROM (
                 SELECT job_id, attempt, worker, run_id, started_at, finished_at, outcome, error,
                        fetched, appended, skipped, failed, bytes
                 FROM mailsync.job_attempts WHERE route_key = $1
                 ORDER BY started_at DESC LIMIT 50) a),
  'failures', (SELECT coalesce(json_agg(row_to_json(f)), '[]') FROM (
                 SELECT uid, reason, last_error, permanent, retry_count, next_retry_at, message_id,
                        size, updated_at
                 FROM mailsync.failures WHERE route_key = $1 ORDER BY updated_at DESC LIMIT 200) f))::text
)sql"};

#undef MAILSYNC_NOW

}  // namespace mailsync::postgres::queries
