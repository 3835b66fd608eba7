-- 0001: the queue and the sync state (DESIGN.md section 5).
-- Forward-only: never edit this file once it has landed; add 0002_... instead.
-- Applied by `mailsync migrate` inside one transaction that first records version 1.

CREATE SCHEMA IF NOT EXISTS mailsync;

-- Routes: one Gmail INBOX copied into one folder of one Outlook mailbox. Upserted from the routes
-- configuration by the scheduler; the key is also the DynamoDB partition key.
CREATE TABLE mailsync.routes (
  route_key       text        PRIMARY KEY,
  gmail_email     text        NOT NULL CHECK (gmail_email <> ''),
  outlook_email   text        NOT NULL CHECK (outlook_email <> ''),
  target_folder   text        NOT NULL CHECK (target_folder <> ''),
  enabled         boolean     NOT NULL DEFAULT true,   -- from configuration
  paused          boolean     NOT NULL DEFAULT false,  -- by an operator (`mailsync pause`)
  -- 'auth_required': a token was refused; the route's jobs stop retrying until fixed.
  auth_state      text        NOT NULL DEFAULT 'ok' CHECK (auth_state IN ('ok', 'auth_required')),
  auth_detail     text,
  last_outcome    text        CHECK (last_outcome IN ('succeeded', 'failed', 'retry', 'auth_required',
                                                      'gate_unavailable', 'cancelled')),
  last_error      text,
  last_run_at     timestamptz,
  last_success_at timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT routes_key_matches CHECK (
    route_key = 'ROUTE#' || gmail_email || '#DEST#' || outlook_email || '#FOLDER#' || target_folder)
);

-- The job queue. State machine:
--   available --claim--> running --complete--> succeeded (the row is deleted at once and counted
--                          |                   in job_counts; kinds that need more keep a
--                          |                   job_attempts row)
--                          |  \--fail (attempts left) / retry at T / lease expired--> available
--                          |  \--fail (no attempts left)--> dead
--   available | running --cancel--> cancelled
-- Deleting successes at completion keeps the table as small as the backlog: measured on a 2-core
-- machine with durable settings, finishing by UPDATE cost 15.6 us of server time per job, by
-- DELETE a fraction of that (no new row version, no index insertions), and nothing is left for
-- autovacuum to chase but the dead row versions of claims.
CREATE TYPE mailsync.job_state AS ENUM ('available', 'running', 'succeeded', 'dead', 'cancelled');

CREATE TABLE mailsync.jobs (
  id               bigint             GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind             text               NOT NULL CHECK (kind <> ''),
  route_key        text,              -- set for route_sync; other kinds (noop) may have none
  args             jsonb              NOT NULL DEFAULT '{}',
  state            mailsync.job_state NOT NULL DEFAULT 'available',
  priority         smallint           NOT NULL DEFAULT 0,  -- lower runs first
  attempt          integer            NOT NULL DEFAULT 0 CHECK (attempt >= 0),
  max_attempts     integer            NOT NULL DEFAULT 25 CHECK (max_attempts > 0),
  run_at           timestamptz        NOT NULL DEFAULT now(),
  lease_owner      text,
  lease_expires_at timestamptz,
  created_at       timestamptz        NOT NULL DEFAULT now(),
  attempted_at     timestamptz,
  finished_at      timestamptz,
  last_error       text,
  CONSTRAINT jobs_lease_iff_running CHECK (
    (state = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
  CONSTRAINT jobs_finished_iff_final CHECK (
    (state IN ('succeeded', 'dead', 'cancelled')) = (finished_at IS NOT NULL)),
  CONSTRAINT jobs_route_sync_has_route CHECK (kind <> 'route_sync' OR route_key IS NOT NULL)
) WITH (fillfactor = 35);

-- No index mentions `state`, in its columns or its predicate: a claim changes only state, attempt,
-- lease and attempted_at, so it is a HOT update (the new row version goes on the same page and no
-- index gets a new entry), provided the page has room: hence fillfactor below. "Queued or running"
-- is written `finished_at IS NULL` (the CHECK above makes the two the same), which no claim changes.
-- Measured on 2 cores, durable settings, 100k no-op jobs drained by 2 workers: with state in the
-- index predicates a claim cost 19 us of server time per job; without, 13 us. A claimed row
-- version is larger than the inserted one (lease owner, timestamps), so at fillfactor 50 a quarter
-- of the claims found no room on the page and were not HOT (97k jobs/s); at 35 all were
-- (129k jobs/s). The table holds only the backlog, so the space costs little.

-- Claim: unfinished jobs in (priority, run_at, id) order. Running jobs stay in it, so a claim scan
-- steps over the ones in flight (at most the workers' slots) before it finds available ones.
CREATE INDEX jobs_claim_idx ON mailsync.jobs (priority, run_at, id) WHERE finished_at IS NULL;
-- Rescue (running jobs whose lease expired) has no index of its own on purpose: one would cost an
-- insertion on every claim, while the rescuer scans a table holding only the backlog every tick.
-- Prune: dead and cancelled jobs past retention.
CREATE INDEX jobs_finished_idx ON mailsync.jobs (finished_at) WHERE finished_at IS NOT NULL;
-- Invariant 5 and "one job per route per interval": at most one queued or running route_sync.
CREATE UNIQUE INDEX jobs_one_active_route_sync ON mailsync.jobs (route_key)
  WHERE kind = 'route_sync' AND finished_at IS NULL;
-- Per-route history for status and dashboards.
CREATE INDEX jobs_route_idx ON mailsync.jobs (route_key, id) WHERE route_key IS NOT NULL;

-- One row per attempt of a job, kept after the job itself is pruned, for the dashboards.
CREATE TABLE mailsync.job_attempts (
  job_id      bigint      NOT NULL,
  attempt     integer     NOT NULL CHECK (attempt > 0),
  kind        text        NOT NULL,
  route_key   text,
  worker      text        NOT NULL,
  run_id      text,       -- the id on this attempt's log lines
  started_at  timestamptz NOT NULL,
  finished_at timestamptz,
  outcome     text        CHECK (outcome IN ('succeeded', 'failed', 'retry', 'dead', 'cancelled',
                                             'auth_required', 'gate_unavailable', 'rescued')),
  error       text,
  fetched     integer     NOT NULL DEFAULT 0 CHECK (fetched >= 0),
  appended    integer     NOT NULL DEFAULT 0 CHECK (appended >= 0),
  skipped     integer     NOT NULL DEFAULT 0 CHECK (skipped >= 0),
  failed      integer     NOT NULL DEFAULT 0 CHECK (failed >= 0),
  bytes       bigint      NOT NULL DEFAULT 0 CHECK (bytes >= 0),
  PRIMARY KEY (job_id, attempt),
  CONSTRAINT job_attempts_outcome_iff_finished CHECK ((outcome IS NULL) = (finished_at IS NULL))
);
CREATE INDEX job_attempts_finished_idx ON mailsync.job_attempts (finished_at);
CREATE INDEX job_attempts_route_idx ON mailsync.job_attempts (route_key, started_at DESC)
  WHERE route_key IS NOT NULL;

-- IMAP UIDs and UIDVALIDITY are unsigned 32-bit (RFC 3501 2.3.1.1); bigint with range checks.
CREATE DOMAIN mailsync.uid32 AS bigint CHECK (VALUE BETWEEN 0 AND 4294967295);

-- Highest source UID below which every UID is DONE or recorded in failures (invariant 4).
CREATE TABLE mailsync.watermarks (
  route_key   text            PRIMARY KEY REFERENCES mailsync.routes ON DELETE CASCADE,
  uidvalidity mailsync.uid32  NOT NULL CHECK (uidvalidity > 0),
  last_uid    mailsync.uid32  NOT NULL DEFAULT 0,
  updated_at  timestamptz     NOT NULL DEFAULT now()
);

-- A claim is committed before the APPEND (invariant 2) and finalized DONE after the server's OK.
CREATE TABLE mailsync.uid_claims (
  route_key        text            NOT NULL REFERENCES mailsync.routes ON DELETE CASCADE,
  uidvalidity      mailsync.uid32  NOT NULL CHECK (uidvalidity > 0),
  uid              mailsync.uid32  NOT NULL CHECK (uid > 0),
  state            text            NOT NULL DEFAULT 'PENDING' CHECK (state IN ('PENDING', 'DONE')),
  message_id       text,           -- Message-ID header, as found; NULL when absent
  gm_msgid         numeric(20, 0), -- X-GM-MSGID (unsigned 64-bit) where the source offers it
  sha256           bytea           CHECK (octet_length(sha256) = 32),
  size             bigint          CHECK (size >= 0),
  internaldate     timestamptz,
  dest_uidvalidity mailsync.uid32, -- APPENDUID (RFC 4315)
  dest_uid         mailsync.uid32,
  job_id           bigint,
  claimed_at       timestamptz     NOT NULL DEFAULT now(),
  done_at          timestamptz,
  PRIMARY KEY (route_key, uidvalidity, uid),
  CONSTRAINT uid_claims_done_has_time CHECK ((state = 'DONE') = (done_at IS NOT NULL))
);
CREATE INDEX uid_claims_sha256_idx ON mailsync.uid_claims (route_key, sha256);
CREATE INDEX uid_claims_message_id_idx ON mailsync.uid_claims (route_key, message_id)
  WHERE message_id IS NOT NULL;
CREATE INDEX uid_claims_gm_msgid_idx ON mailsync.uid_claims (route_key, gm_msgid)
  WHERE gm_msgid IS NOT NULL;
-- Reconciliation after a crash looks only at PENDING claims.
CREATE INDEX uid_claims_pending_idx ON mailsync.uid_claims (route_key) WHERE state = 'PENDING';

-- Messages that failed to copy; transient ones are retried at next_retry_at by later runs.
CREATE TABLE mailsync.failures (
  route_key       text            NOT NULL REFERENCES mailsync.routes ON DELETE CASCADE,
  uidvalidity     mailsync.uid32  NOT NULL CHECK (uidvalidity > 0),
  uid             mailsync.uid32  NOT NULL CHECK (uid > 0),
  reason          text            NOT NULL,  -- classification, e.g. 'too_large', 'network'
  last_error      text            NOT NULL,  -- the server's or the library's words
  permanent       boolean         NOT NULL DEFAULT false,
  retry_count     integer         NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
  next_retry_at   timestamptz,
  message_id      text,
  size            bigint          CHECK (size >= 0),
  first_failed_at timestamptz     NOT NULL DEFAULT now(),
  updated_at      timestamptz     NOT NULL DEFAULT now(),
  PRIMARY KEY (route_key, uidvalidity, uid),
  CONSTRAINT failures_retry_iff_transient CHECK (permanent = (next_retry_at IS NULL))
);
CREATE INDEX failures_due_idx ON mailsync.failures (route_key, next_retry_at) WHERE NOT permanent;
