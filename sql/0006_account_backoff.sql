-- 0006: an account that asked every client to back off, honoured by every route and worker.
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
