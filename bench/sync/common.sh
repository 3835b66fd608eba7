# Sourced by bench/sync/run.sh and import.sh: the release build, a throwaway stack whose
# "outlook" Dovecot advertises Outlook.com's capabilities (LITERAL+, no MULTIAPPEND: one APPEND
# per message, as against the real service), a durable PostgreSQL (fsync and synchronous_commit
# on) with the schema and the DynamoDB table, and the source mailbox's grant.
#
#   bench_up EXTRA_PORTS     sets root bin stack work durable_port ports (EXTRA_PORTS free ports),
#                            source_user source_token; MAILSYNC_DATABASE_URL points at PostgreSQL
#   bench_down               stops what bench_up started (call it from the caller's EXIT trap)
#   seed_source COUNT SIZE|MIN-MAX [FIRST]   pipelined APPENDs into the source INBOX
#   routes FOLDER            the route's JSON (initial_sync: all)
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$root/deploy/local/lib.sh"
# outlook.office365.com's capabilities after login (deploy/local/provider_proxy.py has the source)
export MAILSYNC_STACK_OUTLOOK_IMAP_CAPABILITY="IMAP4 IMAP4rev1 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+"
bin=$root/build/release
stack= work=

bench_up() {
  "$root/deploy/local/install-deps.sh"
  cmake --preset release >/dev/null
  cmake --build --preset release --target mailsync mailsync-worker mailsync-scheduler imap_bench delay_proxy >/dev/null
  stack=$("$root/deploy/local/up.sh")
  work=$(mktemp -d /tmp/mailsync-bench-sync.XXXXXX)
  chmod 755 "$work"
  local all
  all=($(free_ports $((1 + $1))))
  durable_port=${all[0]}
  ports=("${all[@]:1}")
  . "$stack/env"
  start_postgres "$work/pg" "$durable_port" durable
  psql -q -h 127.0.0.1 -p "$durable_port" -U postgres -c "CREATE DATABASE bench"
  export MAILSYNC_DATABASE_URL="postgresql://postgres@127.0.0.1:$durable_port/bench" LOG_LEVEL=warn
  "$bin/admin/mailsync" migrate >/dev/null
  "$bin/admin/mailsync" dynamo create-table >/dev/null
  source_user=sync200@gmail.test  # the last of the stack's spare mailboxes, which the tests claim first-come
  source_token=$(curl -s -H 'Content-Type: application/json' -d "{\"provider\": \"google\", \"user\": \"$source_user\"}" \
    "$MAILSYNC_STACK_OAUTH_URL/admin/grant" | python3 -c 'import json, sys; print(json.load(sys.stdin)["refresh_token"])')
}

bench_down() {
  [[ -z $work ]] || stop_postgres "$work/pg"
  [[ -z $stack ]] || "$root/deploy/local/down.sh" "$stack" >/dev/null
  [[ -z $work ]] || rm -rf "$work"
}

seed_source() {  # COUNT SIZE|MIN-MAX [FIRST]: with the benchmark's own tool, over XOAUTH2
  local access
  access=$(curl -s --data-urlencode grant_type=refresh_token --data-urlencode "client_id=$GMAIL_CLIENT_ID" \
    --data-urlencode "client_secret=$GMAIL_CLIENT_SECRET" --data-urlencode "refresh_token=$source_token" \
    "$GOOGLE_TOKEN_URL" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
  BENCH_IMAP_HOST=$GMAIL_IMAP_HOST BENCH_IMAP_PORT=$GMAIL_IMAP_PORT BENCH_USER=$source_user BENCH_ACCESS_TOKEN=$access \
    "$bin/bench/imap_bench" seed INBOX "$@" >/dev/null
}

routes() {  # FOLDER
  printf '[{"gmail_email": "%s", "outlook_target_folder": "%s", "gmail_refresh_token": "%s", "initial_sync": "all"}]' \
    "$source_user" "$1" "$source_token"
}
