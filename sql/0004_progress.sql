-- 0004: progress of long syncs, shown by `mailsync status` and the dashboards.
-- Forward-only: never edit this file once it has landed.

-- One row per route while a run copies more than one batch: written every few seconds by the
-- running job, deleted when the run ends (whatever its outcome). Unlogged: progress is worth
-- nothing after a crash, and a crashed run's row is overwritten by the next run or ignored by the
-- view once its job is no longer running.
CREATE UNLOGGED TABLE mailsync.route_progress (
  route_key      text             PRIMARY KEY REFERENCES mailsync.routes (route_key) ON DELETE CASCADE,
  job_id         bigint           NOT NULL,
  started_at     timestamptz      NOT NULL,
  updated_at     timestamptz      NOT NULL DEFAULT now(),
  messages_done  bigint           NOT NULL,
  messages_total bigint           NOT NULL,
  bytes_done     bigint           NOT NULL,
  bytes_total    bigint           NOT NULL,
  rate_per_s     double precision NOT NULL,
  eta_seconds    bigint
);

-- route_status as in 0003, with the progress of the route's run in the last columns (NULL when
-- nothing is being copied). CREATE OR REPLACE keeps failing_routes, which reads this view.
CREATE OR REPLACE VIEW mailsync.route_status AS
SELECT r.route_key, r.gmail_email, r.outlook_email, r.target_folder, r.enabled, r.paused, r.auth_state,
       q.id AS queued_job_id, q.state AS queued_job_state, q.attempt AS queued_job_attempt,
       q.run_at AS queued_job_run_at, q.last_error AS queued_job_last_error,
       coalesce(r.last_outcome, a.outcome) AS last_outcome,
       coalesce(r.last_run_at, a.finished_at) AS last_run_at,
       coalesce(r.last_error, a.error) AS last_error,
       coalesce(r.last_success_at, s.finished_at) AS last_success_at,
       extract(epoch FROM now() - coalesce(r.last_success_at, s.finished_at))::bigint AS lag_seconds,
       coalesce(f.permanent, 0) AS refused_messages, coalesce(f.transient, 0) AS retrying_messages,
       p.messages_done AS progress_messages_done, p.messages_total AS progress_messages_total,
       p.bytes_done AS progress_bytes_done, p.bytes_total AS progress_bytes_total,
       p.rate_per_s AS progress_rate_per_s, p.eta_seconds AS progress_eta_seconds,
       p.updated_at AS progress_updated_at
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
) f ON true
-- A run that stopped without clearing its row (a crash) stops showing after two minutes.
LEFT JOIN mailsync.route_progress p
  ON p.route_key = r.route_key AND p.updated_at > now() - interval '2 minutes';
