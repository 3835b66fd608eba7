#!/usr/bin/env bash
# Stops everything deploy/local/up.sh started in DIR, by the PIDs it recorded, waits until none
# of its ports is listening, and removes DIR (keep it with --keep, e.g. to read the logs).
#
#   deploy/local/down.sh DIR [--keep]
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

stack=${1:?usage: down.sh STACK_DIR [--keep]}
keep=${2:-}
[[ -f $stack/pids ]] || die "$stack is not a stack directory (no pids file)"

ports=()
if [[ -f $stack/env ]]; then
  # shellcheck disable=SC1091
  ports=($(. "$stack/env" && echo "$MAILSYNC_STACK_PG_PORT ${MAILSYNC_STACK_OAUTH_URL##*:} $GMAIL_IMAP_PORT $OUTLOOK_IMAP_PORT ${DYNAMODB_ENDPOINT##*:} ${MAILSYNC_STACK_GMAIL_STARTTLS_PORT:-} ${MAILSYNC_STACK_PGBOUNCER_PORT:-} ${MAILSYNC_STACK_GMAIL_DOVECOT_PORT:-} ${MAILSYNC_STACK_OUTLOOK_DOVECOT_PORT:-} ${MAILSYNC_STACK_PROVIDER_CONTROL_URL##*:}"))
fi

# TERM to everything at once (dovecot takes ~3 s to stop its children, dynalite ~1.5 s), then wait.
pids=()
while read -r name pid; do
  [[ -n $pid ]] || continue
  if [[ $name == postgres ]]; then
    as_user postgres "$pg_bin/pg_ctl" -D "$stack/pg/data" -m fast -W stop >/dev/null 2>&1 || true
  fi
  kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
done <"$stack/pids"
for pid in "${pids[@]}"; do
  for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
done

status=0
for port in "${ports[@]}"; do
  wait_not_listening "$port" 20 || { echo "stack: port $port is still listening" >&2; status=1; }
done
# dovecot children (imap, auth, ...) exit with their master; make sure none is left.
pkill -f "dovecot -c $stack/" 2>/dev/null || true

if [[ $keep != --keep && $status == 0 ]]; then
  rm -rf "$stack"
else
  echo "stack: kept $stack" >&2
fi
exit $status
