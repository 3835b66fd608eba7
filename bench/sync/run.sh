#!/usr/bin/env bash
# Sync throughput, mailsync beside mbsync (isync), in one run on one throwaway stack: both copy the
# same Gmail INBOX of COUNT x SIZE messages into a fresh Outlook folder, alternating, ROUNDS times.
# mailsync runs `mailsync run-once` with everything on: Postgres claims on a durable PostgreSQL
# (fsync and synchronous_commit on) and the DynamoDB mirror (dynalite). mbsync logs in with
# PLAIN (the same cost as XOAUTH2 for a login; XOAUTH2 needs a SASL plugin Debian lacks).
# Then: the time of a run with nothing new, for both; mailsync's peak RSS while copying a mailbox
# that includes a 30 MB message.
#
#   bench/sync/run.sh                     COUNT=5000 SIZE=5120 ROUNDS=3
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$root/deploy/local/lib.sh"
COUNT=${COUNT:-5000} SIZE=${SIZE:-5120} ROUNDS=${ROUNDS:-3}

"$root/deploy/local/install-deps.sh"
cmake --preset release >/dev/null
cmake --build --preset release --target mailsync mailsync-worker imap_bench >/dev/null
bin=$root/build/release

stack=$("$root/deploy/local/up.sh")
work=$(mktemp -d /tmp/mailsync-bench-sync.XXXXXX)
chmod 755 "$work"
read -r durable_port < <(free_ports 1)
trap 'stop_postgres "$work/pg"; "$root/deploy/local/down.sh" "$stack" >/dev/null; rm -rf "$work"' EXIT
. "$stack/env"
start_postgres "$work/pg" "$durable_port" durable
psql -q -h 127.0.0.1 -p "$durable_port" -U postgres -c "CREATE DATABASE bench"
export MAILSYNC_DATABASE_URL="postgresql://postgres@127.0.0.1:$durable_port/bench" LOG_LEVEL=warn
"$bin/admin/mailsync" migrate >/dev/null
"$bin/admin/mailsync" dynamo create-table >/dev/null

token() {  # PROVIDER_URL CLIENT_ID SECRET REFRESH
  curl -s --data-urlencode grant_type=refresh_token --data-urlencode "client_id=$2" --data-urlencode "client_secret=$3" \
    --data-urlencode "refresh_token=$4" "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}
source_user=sync120@gmail.test  # the last of the stack's spare mailboxes, which the tests claim first-come
# Seed the source with the benchmark's own tool (pipelined APPEND over XOAUTH2).
source_token=$(curl -s -H 'Content-Type: application/json' -d "{\"provider\": \"google\", \"user\": \"$source_user\"}" \
  "$MAILSYNC_STACK_OAUTH_URL/admin/grant" | python3 -c 'import json, sys; print(json.load(sys.stdin)["refresh_token"])')
BENCH_IMAP_HOST=$GMAIL_IMAP_HOST BENCH_IMAP_PORT=$GMAIL_IMAP_PORT BENCH_USER=$source_user \
  BENCH_ACCESS_TOKEN=$(token "$GOOGLE_TOKEN_URL" "$GMAIL_CLIENT_ID" "$GMAIL_CLIENT_SECRET" "$source_token") \
  "$bin/bench/imap_bench" seed INBOX "$COUNT" "$SIZE" >/dev/null
echo "source: $COUNT x $SIZE bytes in $source_user's INBOX" >&2

routes() {  # FOLDER
  printf '[{"gmail_email": "%s", "outlook_target_folder": "%s", "gmail_refresh_token": "%s", "initial_sync": "all"}]' \
    "$source_user" "$1" "$source_token"
}
mbsync_config() {  # FOLDER
  mkdir -p "$work/mbsync-$1"
  cat >"$work/mbsync-$1/rc" <<RC
IMAPAccount gmail
Host localhost
Port $GMAIL_IMAP_PORT
User $source_user
Pass $MAILSYNC_STACK_IMAP_PASSWORD
SSLType IMAPS
CertificateFile $MAILSYNC_TLS_CA_FILE
AuthMechs PLAIN

IMAPStore gmail
Account gmail

IMAPAccount outlook
Host localhost
Port $OUTLOOK_IMAP_PORT
User $OUTLOOK_EMAIL
Pass $MAILSYNC_STACK_IMAP_PASSWORD
SSLType IMAPS
CertificateFile $MAILSYNC_TLS_CA_FILE
AuthMechs PLAIN

IMAPStore outlook
Account outlook

Channel bench
Far :gmail:INBOX
Near :outlook:$1
Create Near
Sync PullNew
Expunge None
Remove None
CopyArrivalDate yes
SyncState $work/mbsync-$1/
RC
}
now_ms() { date +%s%3N; }
# CPU time (clock ticks) the dynalite process has used: every durable claim is one conditional
# PutItem there, and dynalite runs them on one core, so its CPU per message bounds any
# implementation that mirrors each message into it before the APPEND (DESIGN invariant 2).
dynalite_pid=$(awk '$1 == "dynalite" { print $2 }' "$stack/pids")
dynalite_ticks() { awk '{ print $14 + $15 }' "/proc/$dynalite_pid/stat"; }
timed() { local start; start=$(now_ms); "$@" >/dev/null; echo $(($(now_ms) - start)); }

m_rates=() s_rates=() d_cpu=()
for round in $(seq "$ROUNDS"); do
  d0=$(dynalite_ticks)
  m_ms=$(SYNC_ROUTES_JSON=$(routes "BenchM$round") timed "$bin/admin/mailsync" run-once)
  d_cpu+=($((($(dynalite_ticks) - d0) * 1000000 / $(getconf CLK_TCK) / COUNT)))  # µs per message
  mbsync_config "BenchS$round"
  s_ms=$(timed mbsync -q -c "$work/mbsync-BenchS$round/rc" bench)
  echo "round $round: mailsync $m_ms ms, mbsync $s_ms ms" >&2
  m_rates+=($((COUNT * 1000 / m_ms)))
  s_rates+=($((COUNT * 1000 / s_ms)))
done
python3 "$root/deploy/local/compare_mail.py" <(printf '[{"gmail_email": "%s", "outlook_email": "%s", "outlook_target_folder": "BenchM1"}]' "$source_user" "$OUTLOOK_EMAIL") >&2

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
m=$(median "${m_rates[@]}")
s=$(median "${s_rates[@]}")
m_idle=$(SYNC_ROUTES_JSON=$(routes BenchM1) timed "$bin/admin/mailsync" run-once)
s_idle=$(timed mbsync -q -c "$work/mbsync-BenchS1/rc" bench)
# An idle route's job inside a running worker (tokens cached, connections pooled): the normal
# case every five minutes. Three cycles; the last job's duration from the attempt history.
export SYNC_ROUTES_JSON=$(routes BenchM1)
"$bin/worker/mailsync-worker" --concurrency 1 2>"$work/worker.log" &
worker=$!
for cycle in 1 2 3; do
  "$bin/admin/mailsync" enqueue --all >/dev/null
  until [[ $(psql -tA "$MAILSYNC_DATABASE_URL" -c "SELECT count(*) FROM mailsync.job_attempts WHERE route_key LIKE '%BenchM1'") == "$cycle" ]]; do
    sleep 0.05
  done
done
kill -TERM "$worker"
wait "$worker" || true
m_job=$(psql -tA "$MAILSYNC_DATABASE_URL" -c "SELECT round(extract(epoch FROM finished_at - started_at) * 1000, 1) FROM mailsync.job_attempts WHERE route_key LIKE '%BenchM1' ORDER BY started_at DESC LIMIT 1")
unset SYNC_ROUTES_JSON

# Peak RSS with a 30 MB message among the others.
python3 - "$work/big.eml" <<'PY'
import sys
line = b"x" * 998 + b"\r\n"
open(sys.argv[1], "wb").write(b"Message-ID: <thirty@example.com>\r\nSubject: 30 MB\r\n\r\n" + line * (30 * 1024 * 1024 // len(line)))
PY
python3 - "$work/big.eml" "$source_user" <<'PY'
import imaplib, os, ssl, sys
m = imaplib.IMAP4_SSL(os.environ["GMAIL_IMAP_HOST"], int(os.environ["GMAIL_IMAP_PORT"]),
                      ssl_context=ssl.create_default_context(cafile=os.environ["MAILSYNC_TLS_CA_FILE"]))
m.login(sys.argv[2], os.environ["MAILSYNC_STACK_IMAP_PASSWORD"])
m.append("INBOX", None, None, open(sys.argv[1], "rb").read())
PY
rss=$(SYNC_ROUTES_JSON=$(routes BenchRss) python3 "$root/bench/sync/peak_rss.py" "$bin/admin/mailsync" run-once 2>&1 >/dev/null |
  sed -n 's/^peak_rss_kb=//p')

echo "mbsync_msgs_per_s=$s"
echo "mailsync_msgs_per_s=$m"
awk -v m="$m" -v s="$s" 'BEGIN { printf "ratio=%.2f\n", m / s }'
d=$(median "${d_cpu[@]}")
echo "dynalite_cpu_us_per_msg=$d (mailsync's DynamoDB traffic, one conditional claim and one batched DONE per message, on dynalite's one core: a ceiling of $((1000000 / d)) msgs/s on this stack; mailsync ran at $((m * 100 * d / 1000000))% of it)"
echo "idle_run_ms (whole process) mailsync=$m_idle mbsync=$s_idle"
echo "idle_job_ms (in a running worker) mailsync=$m_job"
echo "mailsync_peak_rss_mb=$((rss / 1024)) (copying $((COUNT + 1)) messages including one of 30 MB)"
