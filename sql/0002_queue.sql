-- 0002: what the queue needs beyond the tables of 0001.
-- Forward-only: never edit this file once it has landed.

-- One NOTIFY per inserting statement (not per row) wakes LISTENing workers when it inserts a job
-- that is due now; jobs due later are found by the workers' poll. Also fires for jobs inserted by
-- hand with SQL. Notifications are delivered at commit, so a worker never wakes for an
-- uncommitted job.
CREATE FUNCTION mailsync.notify_jobs_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM inserted WHERE state = 'available' AND run_at <= now()) THEN
    PERFORM pg_notify('mailsync_jobs', '');
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER jobs_notify_inserted
  AFTER INSERT ON mailsync.jobs
  REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION mailsync.notify_jobs_inserted();

-- Periodic cycles shared by all scheduler replicas. A replica runs the route_sync cycle only when
-- it moves last_cycle_at forward by at least the interval in one conditional upsert, inside the
-- same transaction as the enqueue; replicas racing for the same cycle serialise on this row and
-- all but one find the condition false. So each route is enqueued at most once per interval
-- however many schedulers run, with no leader to elect and nothing to hand over when one dies.
CREATE TABLE mailsync.periodic_cycles (
  name          text        PRIMARY KEY,
  last_cycle_at timestamptz NOT NULL,
  owner         text        NOT NULL   -- the scheduler that ran it (host:pid), for operators
);

-- Finished attempts per minute, kind and worker: successes (whose rows are deleted at once) and
-- failures. One row per worker, so that concurrent completers never wait on each other's row
-- lock; the dashboards sum over workers.
CREATE TABLE mailsync.job_counts (
  minute    timestamptz NOT NULL,
  kind      text        NOT NULL,
  worker    text        NOT NULL,
  succeeded bigint      NOT NULL DEFAULT 0,
  failed    bigint      NOT NULL DEFAULT 0,  -- attempts that failed, were dead-lettered or rescued
  PRIMARY KEY (minute, kind, worker)
);

-- The jobs table holds only the backlog, so the default trigger (20 % of the table dead) fires
-- at a handful of rows when idle and too late in a burst; vacuum on absolute counts instead.
-- Measured: 5 x 100k no-op jobs drained back to back grew the table to 114 MB within seconds
-- (autovacuum_naptime, 1 min, is the limit there); one idle minute later autovacuum had truncated
-- it to 0 bytes. For sustained rates of thousands of jobs per second lower autovacuum_naptime.
ALTER TABLE mailsync.jobs SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
                               autovacuum_vacuum_insert_scale_factor = 0,
                               autovacuum_vacuum_insert_threshold = 5000,
                               autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 5000);
