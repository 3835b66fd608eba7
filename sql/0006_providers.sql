-- 0006: what real Gmail and Outlook.com need: an account that asked every client to back off,
-- honoured by every route and worker; the destination UIDNEXT recorded with claims.
-- Forward-only: never edit this file once it has landed.

-- Outlook.com throttles a mailbox, not a connection: "BAD Request is throttled. Suggested Backoff
-- Time: 89117 milliseconds" (then "* BYE Connection closed. 14"), and every route copies into that
-- one mailbox. The run that is told writes the time here; every run of a route to that mailbox
-- reads it first and waits, without connecting, instead of each route being throttled in turn.
-- Not fenced: it only ever delays work, and a later time wins (GREATEST).
CREATE TABLE mailsync.account_backoff (
  account    text        PRIMARY KEY,  -- 'outlook:me@outlook.com'
  not_before timestamptz NOT NULL,
  reason     text        NOT NULL,     -- the server's words
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- For `mailsync status` and the dashboards: accounts backing off now.
CREATE VIEW mailsync.account_backoffs AS
SELECT account, not_before, reason, updated_at
FROM mailsync.account_backoff
WHERE not_before > now();

-- Crash recovery that does not trust the destination's bytes (Outlook.com may serve regenerated
-- MIME): before a batch's APPENDs, the destination folder's UIDVALIDITY and UIDNEXT are recorded
-- with its claims, and the claim keeps the INTERNALDATE the APPEND names. A PENDING claim is then
-- reconciled against what arrived since that UIDNEXT, by Message-ID and INTERNALDATE, with one
-- FETCH per batch. NULL: a claim of a batch not yet sent (or from before this migration, found
-- the old way).
ALTER TABLE mailsync.uid_claims ADD COLUMN dest_uidnext bigint;
