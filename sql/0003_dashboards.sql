-- 0003: dashboard views for operators (psql, Grafana's PostgreSQL data source).
-- Forward-only: change a view in a later migration with CREATE OR REPLACE VIEW.

-- Jobs by state and kind, including states with no jobs, so a graph shows zeroes.
CREATE VIEW mailsync.queue_depth AS
SELECT k.kind, s.state, count(j.id) AS jobs
FROM (SELECT DISTINCT kind FROM mailsync.jobs) k
CROSS JOIN unnest(enum_range(NULL::mailsync.job_state)) AS s(state)
LEFT JOIN mailsync.jobs j ON j.kind = k.kind AND j.state = s.state
GROUP BY k.kind, s.state;

-- How far behind the workers are: due jobs waiting, and the age of the oldest.
CREATE VIEW mailsync.queue_due AS
SELECT count(*) AS due_jobs,
       coalesce(extract(epoch FROM now() - min(run_at)), 0)::numeric(12, 3) AS oldest_due_age_seconds
FROM mailsync.jobs
WHERE state = 'available' AND run_at <= now();

-- Jobs finished per minute over the last hour, success and failure apart, every kind together.
CREATE VIEW mailsync.jobs_per_minute AS
SELECT m.minute, coalesce(sum(c.succeeded), 0)::bigint AS succeeded, coalesce(sum(c.failed), 0)::bigint AS failed
FROM generate_series(date_trunc('minute', now()) - interval '59 minutes', date_trunc('minute', now()),
                     interval '1 minute') AS m(minute)
LEFT JOIN mailsync.job_counts c ON c.minute = m.minute
GROUP BY m.minute;

-- Each route's queue state and history at a glance: what `mailsync status` prints.
CREATE VIEW mailsync.route_status AS
SELECT r.route_key, r.gmail_email, r.outlook_email, r.target_folder, r.enabled, r.paused, r.auth_state,
       q.id AS queued_job_id, q.state AS queued_job_state, q.attempt AS queued_job_attempt,
       q.run_at AS queued_job_run_at, q.last_error AS queued_job_last_error,
       coalesce(r.last_outcome, a.outcome) AS last_outcome,
       coalesce(r.last_run_at, a.finished_at) AS last_run_at,
       coalesce(r.last_error, a.error) AS last_error,
       coalesce(r.last_success_at, s.finished_at) AS last_success_at,
       extract(epoch FROM now() - coalesce(r.last_success_at, s.finished_at))::bigint AS lag_seconds,
       coalesce(f.permanent, 0) AS refused_messages, coalesce(f.transient, 0) AS retrying_messages
FROM mailsync.routes r
LEFT JOIN LATERAL (
  SELECT j.id, j.state, j.attempt, j.run_at, j.last_error FROM mailsync.jobs j
  WHERE j.route_key = r.route_key AND j.kind = 'route_sync' AND j.state IN ('available', 'running')
  LIMIT 1
) q ON true
LEFT JOIN LATERAL (
  SELECT a.outcome, a.finished_at, a.error FROM mailsync.job_attempts a
  WHERE a.route_key = r.route_key AND a.finished_at IS NOT NULL
  ORDER BY a.started_at DESC LIMIT 1
) a ON true
LEFT JOIN LATERAL (
  SELECT a.finished_at FROM mailsync.job_attempts a
  WHERE a.route_key = r.route_key AND a.outcome = 'succeeded'
  ORDER BY a.started_at DESC LIMIT 1
) s ON true
-- Messages not copied: refused for good (the server's words are in mailsync.failures) or waiting
-- for a retry.
LEFT JOIN LATERAL (
  SELECT count(*) FILTER (WHERE permanent) AS permanent, count(*) FILTER (WHERE NOT permanent) AS transient
  FROM mailsync.failures x WHERE x.route_key = r.route_key
) f ON true;

-- Routes whose latest attempt did not succeed: attempts so far, the error, when it runs next.
CREATE VIEW mailsync.failing_routes AS
SELECT route_key, last_outcome, last_error, last_run_at, queued_job_attempt AS attempts,
       queued_job_run_at AS next_run_at, auth_state
FROM mailsync.route_status
WHERE last_outcome IS DISTINCT FROM 'succeeded' AND last_outcome IS NOT NULL
   OR auth_state <> 'ok';

-- Dead jobs waiting for an operator (`mailsync dead retry|discard`).
CREATE VIEW mailsync.dead_jobs AS
SELECT id, kind, route_key, attempt, max_attempts, created_at, finished_at, last_error
FROM mailsync.jobs
WHERE state = 'dead';
