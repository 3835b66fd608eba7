-- 0007: refresh tokens announced before they end, and near-real-time delivery with IDLE (issue
-- "What the earlier versions promised", parts 2 and 3). Forward-only: never edit this file once
-- it has landed.

-- One row per refresh token mailsync uses: a route's Gmail token ('gmail:' || route_key) and each
-- Outlook mailbox's token ('outlook:' || email). No secret is stored: `fingerprint` is the first
-- 16 hex digits of the token's SHA-256, enough to tell a new token (after `mailsync auth`) from
-- the old one and useless for anything else.
--   rule 'google_testing_7d': the Google app is in "Testing" (route option
--     gmail_oauth_app_testing): Google ends its refresh tokens 7 days after they were issued;
--     mailsync counts from when it first saw the token.
--   rule 'microsoft_90d': Microsoft ends a refresh token 90 days after it was last used (each
--     refresh rotates it, so a token in use does not expire).
--   rule 'none': no known end (revocation still ends it: refused_at).
CREATE TABLE mailsync.refresh_tokens (
  token_key       text        PRIMARY KEY,
  provider        text        NOT NULL CHECK (provider IN ('google', 'microsoft')),
  account         text        NOT NULL,
  fingerprint     text        NOT NULL,
  rule            text        NOT NULL CHECK (rule IN ('none', 'google_testing_7d', 'microsoft_90d')),
  first_seen_at   timestamptz NOT NULL DEFAULT now(),
  last_refresh_at timestamptz,
  refused_at      timestamptz,
  refused_detail  text,
  updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE VIEW mailsync.token_expiry AS
SELECT token_key, provider, account, rule, first_seen_at, last_refresh_at, refused_at, refused_detail,
       CASE rule
         WHEN 'google_testing_7d' THEN first_seen_at + interval '7 days'
         WHEN 'microsoft_90d' THEN coalesce(last_refresh_at, first_seen_at) + interval '90 days'
       END AS expires_at
FROM mailsync.refresh_tokens;

-- Since when a route waits for new credentials.
ALTER TABLE mailsync.routes ADD COLUMN auth_required_at timestamptz;
UPDATE mailsync.routes SET auth_required_at = updated_at WHERE auth_state = 'auth_required';

-- A route with `push: true` in its configuration has a long-running route_watch job: a worker
-- holds IDLE on its Gmail INBOX and enqueues its route_sync when mail arrives; the 5-minute
-- schedule stays as the safety net. watch_state is what the watch last said:
--   'watching'     IDLE is held
--   'backoff'      it cannot connect or log in; retrying with exponential backoff (watch_detail)
--   'unsupported'  the server lists no IDLE: the route is polled (watch_detail says so); the
--                  scheduler asks again an hour later
--   'stopped'      the watch ended (route paused, disabled, auth_required)
ALTER TABLE mailsync.routes ADD COLUMN push boolean NOT NULL DEFAULT false;
ALTER TABLE mailsync.routes ADD COLUMN watch_state text
  CHECK (watch_state IN ('watching', 'backoff', 'unsupported', 'stopped'));
ALTER TABLE mailsync.routes ADD COLUMN watch_detail text;
ALTER TABLE mailsync.routes ADD COLUMN watch_updated_at timestamptz;

-- At most one queued or running route_watch per route, as for route_sync.
CREATE UNIQUE INDEX jobs_one_active_route_watch ON mailsync.jobs (route_key)
  WHERE kind = 'route_watch' AND finished_at IS NULL;

-- route_status as in 0004, with the route's tokens and its watch in the last columns. The token:
-- the one of its two (its Gmail token, its Outlook mailbox's token) that ends first, and a state:
-- 'auth_required' (a token was refused; since auth_required_since), 'expired', 'expiring'
-- (within 7 days), 'ok', or 'unknown' (no run has used its tokens yet).
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
LEFT JOIN LATERAL (
  SELECT count(*) FILTER (WHERE permanent) AS permanent, count(*) FILTER (WHERE NOT permanent) AS transient
  FROM mailsync.failures x WHERE x.route_key = r.route_key
) f ON true
LEFT JOIN mailsync.route_progress p
  ON p.route_key = r.route_key AND p.updated_at > now() - interval '2 minutes'
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
