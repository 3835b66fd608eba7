-- 0005: fencing (docs/state_machine.md, "A UID claim"). Every claim names the attempt that made it
-- (job_id was there; attempt is new), so that only that attempt, while it still holds its job's
-- lease, may finalize or release it, and crash recovery takes over only the claims of attempts that
-- are over. Forward-only: never edit this file once it has landed.

-- NULL for claims made before 0005: their attempts are over (stop every worker of an older version
-- before migrating, as for any migration).
ALTER TABLE mailsync.uid_claims ADD COLUMN attempt integer CHECK (attempt > 0);

-- Whether attempt `p_attempt` of job `p_job` may still be running, or stopped less than `p_grace`
-- ago: its job row is running that attempt under a lease that has not expired `p_grace` ago, or it
-- was rescued (its lease expired) less than `p_grace` ago. A run whose lease was rescued can still
-- have one APPEND on the wire (it checks its lease before each message it sends, not during it),
-- so its claims are left alone for a grace longer than the longest APPEND. Anything else is over:
-- finished (the handler returned), released at shutdown (likewise), or pruned.
CREATE FUNCTION mailsync.attempt_may_be_running(p_job bigint, p_attempt integer, p_grace interval)
RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT p_attempt IS NOT NULL AND (
    EXISTS (SELECT 1 FROM mailsync.jobs j
            WHERE j.id = p_job AND j.attempt = p_attempt AND j.state = 'running'
              AND j.lease_expires_at > now() - p_grace)
    OR EXISTS (SELECT 1 FROM mailsync.job_attempts a
               WHERE a.job_id = p_job AND a.attempt = p_attempt AND a.outcome = 'rescued'
                 AND a.finished_at > now() - p_grace))
$$;
