-- 0008: route_status shows the progress of the running attempt only. Until now a worker killed
-- mid-copy left its progress row showing for two minutes, also after its job was rescued and
-- taken again. Forward-only: never edit this file once it has landed.

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
       p.updated_at AS progress_updated_at,
       CASE WHEN r.auth_state = 'auth_required' THEN 'auth_required'
            WHEN t.known = 0 THEN 'unknown'
            WHEN t.expires_at < now() THEN 'expired'
            WHEN t.expires_at < now() + interval '7 days' THEN 'expiring'
            ELSE 'ok' END AS token_state,
       t.expires_at AS token_expires_at,
       floor(extract(epoch FROM t.expires_at - now()))::bigint AS token_expires_in_seconds,
       t.account AS token_account, t.rule AS token_rule,
       CASE WHEN r.auth_state = 'auth_required' THEN coalesce(r.auth_required_at, r.updated_at) END
         AS auth_required_since,
       r.push, CASE WHEN r.push THEN r.watch_state END AS watch_state,
       CASE WHEN r.push THEN r.watch_detail END AS watch_detail,
       CASE WHEN r.push THEN r.watch_updated_at END AS watch_updated_at
FROM mailsync.routes r
LEFT JOIN LATERAL (
  SELECT j.id, j.state, j.attempt, j.run_at, j.last_error, j.attempted_at FROM mailsync.jobs j
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
LEFT JOIN LATERAL (
  SELECT count(*) FILTER (WHERE permanent) AS permanent, count(*) FILTER (WHERE NOT permanent) AS transient
  FROM mailsync.failures x WHERE x.route_key = r.route_key
) f ON true
-- Progress of the attempt that is running now: not a killed attempt's row, once its job was rescued
-- (no longer running) or taken again (the row predates the new attempt).
LEFT JOIN mailsync.route_progress p
  ON p.route_key = r.route_key AND p.updated_at > now() - interval '2 minutes'
     AND q.state = 'running' AND p.job_id = q.id
     AND (q.attempted_at IS NULL OR p.started_at > q.attempted_at - interval '1 second')
LEFT JOIN LATERAL (
  SELECT (SELECT count(*) FROM mailsync.refresh_tokens k
          WHERE k.token_key IN ('gmail:' || r.route_key, 'outlook:' || r.outlook_email)) AS known,
         e.expires_at, e.account, e.rule
  FROM (SELECT NULL::int) one
  LEFT JOIN LATERAL (
    SELECT x.expires_at, x.account, x.rule FROM mailsync.token_expiry x
    WHERE x.token_key IN ('gmail:' || r.route_key, 'outlook:' || r.outlook_email)
      AND x.expires_at IS NOT NULL
    ORDER BY x.expires_at LIMIT 1
  ) e ON true
) t ON true;
