#!/usr/bin/env bash
# Sync throughput, mailsync beside mbsync (isync), in one run on one throwaway stack: both copy the
# same Gmail INBOX of COUNT x SIZE messages into a fresh Outlook folder, alternating, ROUNDS times,
# first on loopback, then over a WAN-like path. The "outlook" Dovecot advertises Outlook.com's
# capabilities (LITERAL+, no MULTIAPPEND: one APPEND per message, as against the real service).
# mailsync runs `mailsync run-once` with everything on: Postgres claims on a durable PostgreSQL
# (fsync and synchronous_commit on) and the DynamoDB mirror (dynalite). mbsync logs in with
# PLAIN (the same cost as XOAUTH2 for a login; XOAUTH2 needs a SASL plugin Debian lacks).
#
# Loopback: msgs/s of each (`ratio`), and the CPU each process spent per copied message
# (mailsync, its PostgreSQL, dynalite; mbsync).
# WAN (`wan_ratio`): bench/delay_proxy between the programs and every server, one way GMAIL_MS
# (25) to "gmail", OUTLOOK_MS (40) to "outlook", DYNAMO_MS (5) to DynamoDB, PG_MS (0.5) to
# PostgreSQL; each path's round trip is measured through the proxy first and printed.
# Then: the time of a run with nothing new, for both; an idle job in a running worker; mailsync's
# peak RSS while copying a mailbox that includes a 30 MB message. Every copy is checked byte for
# byte against the source.
#
#   bench/sync/run.sh       COUNT=5000 SIZE=5120 ROUNDS=3 WAN_ROUNDS=3 GMAIL_MS=25 OUTLOOK_MS=40 ...
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
COUNT=${COUNT:-5000} SIZE=${SIZE:-5120} ROUNDS=${ROUNDS:-3} WAN_ROUNDS=${WAN_ROUNDS:-${ROUNDS:-3}}
GMAIL_MS=${GMAIL_MS:-25} OUTLOOK_MS=${OUTLOOK_MS:-40} DYNAMO_MS=${DYNAMO_MS:-5} PG_MS=${PG_MS:-0.5}

proxy=
trap '[[ -z $proxy ]] || kill "$proxy"; bench_down' EXIT
bench_up 4
read -r gmail_wan outlook_wan dynamo_wan pg_wan <<<"${ports[*]}"
seed_source "$COUNT" "$SIZE"
echo "source: $COUNT x $SIZE bytes in $source_user's INBOX" >&2

mbsync_config() {  # FOLDER [GMAIL_PORT OUTLOOK_PORT]
  local gmail_port=${2:-$GMAIL_IMAP_PORT} outlook_port=${3:-$OUTLOOK_IMAP_PORT}
  mkdir -p "$work/mbsync-$1"
  cat >"$work/mbsync-$1/rc" <<RC
IMAPAccount gmail
Host localhost
Port $gmail_port
User $source_user
Pass $MAILSYNC_STACK_IMAP_PASSWORD
SSLType IMAPS
CertificateFile $MAILSYNC_TLS_CA_FILE
AuthMechs PLAIN

IMAPStore gmail
Account gmail

IMAPAccount outlook
Host localhost
Port $outlook_port
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
# CPU of the servers mailsync uses, watched while each mailsync run lasts (bench/sync/measure.py).
dynalite_pid=$(awk '$1 == "dynalite" { print $2 }' "$stack/pids")
postgres_pid=$(head -1 "$work/pg/data/postmaster.pid")
measured() {  # LOG COMMAND... : runs it, appends measure.py's line to LOG
  local log=$1
  shift
  python3 "$root/bench/sync/measure.py" --watch "postgres=$postgres_pid" --watch "dynalite=$dynalite_pid" \
    -- "$@" 2>>"$log.tmp" >/dev/null || { cat "$log.tmp" >&2; return 1; }
  grep '^wall_ms=' "$log.tmp" >>"$log"
  rm -f "$log.tmp"
}
field() { sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p"; }  # NAME <lines: the values, one per line

copy_rounds() {  # PREFIX ROUNDS [GMAIL_PORT OUTLOOK_PORT]: alternating copies, logs in $work/PREFIX.{m,s}
  local prefix=$1 rounds=$2 round
  for round in $(seq "$rounds"); do
    SYNC_ROUTES_JSON=$(routes "${prefix}M$round") measured "$work/$prefix.m" "$bin/admin/mailsync" run-once
    mbsync_config "${prefix}S$round" "${@:3}"
    measured "$work/$prefix.s" mbsync -q -c "$work/mbsync-${prefix}S$round/rc" bench
    echo "$prefix round $round: mailsync $(tail -1 "$work/$prefix.m" | field wall_ms) ms, mbsync $(tail -1 "$work/$prefix.s" | field wall_ms) ms" >&2
  done
}
copy_rounds Bench "$ROUNDS"

# The WAN-like path, checked: each round trip through the proxy beside what was configured.
"$bin/bench/delay_proxy" "$gmail_wan:$GMAIL_IMAP_PORT:$GMAIL_MS" "$outlook_wan:$OUTLOOK_IMAP_PORT:$OUTLOOK_MS" \
  "$dynamo_wan:${DYNAMODB_ENDPOINT##*:}:$DYNAMO_MS" "$pg_wan:$durable_port:$PG_MS" >"$work/proxy.out" &
proxy=$!
until grep -q ready "$work/proxy.out"; do sleep 0.05; done
paths="gmail $(python3 "$root/bench/sync/ping.py" imap "$gmail_wan") $GMAIL_MS"
paths+=" outlook $(python3 "$root/bench/sync/ping.py" imap "$outlook_wan") $OUTLOOK_MS"
paths+=" dynamodb $(python3 "$root/bench/sync/ping.py" http "$dynamo_wan") $DYNAMO_MS"
paths+=" postgres $(python3 "$root/bench/sync/ping.py" pg "$pg_wan") $PG_MS"
printf '%s %s %s\n' $paths | while read -r name rtt one_way; do
  echo "wan path $name: round trip $rtt ms (configured $(awk -v d="$one_way" 'BEGIN { print 2 * d }') ms)" >&2
done
GMAIL_IMAP_PORT=$gmail_wan OUTLOOK_IMAP_PORT=$outlook_wan DYNAMODB_ENDPOINT=http://127.0.0.1:$dynamo_wan \
  MAILSYNC_DATABASE_URL=postgresql://postgres@127.0.0.1:$pg_wan/bench copy_rounds Wan "$WAN_ROUNDS" "$gmail_wan" "$outlook_wan"
kill "$proxy"
proxy=

# Every copy, byte for byte.
python3 - "$source_user" "$OUTLOOK_EMAIL" "$ROUNDS" "$WAN_ROUNDS" >"$work/compare.json" <<'PY'
import json, sys
user, outlook, rounds, wan_rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
# mbsync (S) adds an X-TUID header line to each copy, to find it again after a crash
print(json.dumps([{"gmail_email": user, "outlook_email": outlook, "outlook_target_folder": f"{p}{tool}{r}"}
                  | ({"added_header": "X-TUID"} if tool == "S" else {})
                  for p, n in (("Bench", rounds), ("Wan", wan_rounds)) for r in range(1, n + 1) for tool in "MS"]))
PY
python3 "$root/deploy/local/compare_mail.py" "$work/compare.json" >&2

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
timed() { local start; start=$(date +%s%3N); "$@" >/dev/null; echo $(($(date +%s%3N) - start)); }
m_idle=$(SYNC_ROUTES_JSON=$(routes BenchM1) timed "$bin/admin/mailsync" run-once)
s_idle=$(timed mbsync -q -c "$work/mbsync-BenchS1/rc" bench)
# An idle route's job inside a running worker (tokens cached, connections pooled): the normal
# case every five minutes. Three cycles; the last job's duration from the attempt history.
export SYNC_ROUTES_JSON=$(routes BenchM1)
"$bin/worker/mailsync-worker" --concurrency 1 2>"$work/worker.log" &
worker=$!
attempts() { psql -tA "$MAILSYNC_DATABASE_URL" -c "SELECT count(*) FROM mailsync.job_attempts WHERE route_key LIKE '%BenchM1'"; }
before=$(attempts)
for cycle in 1 2 3; do
  "$bin/admin/mailsync" enqueue --all >/dev/null
  until (($(attempts) >= before + cycle)); do sleep 0.05; done
done
kill -TERM "$worker"
wait "$worker" || true
m_job=$(psql -tA "$MAILSYNC_DATABASE_URL" -c "SELECT round(extract(epoch FROM finished_at - started_at) * 1000, 1) FROM mailsync.job_attempts WHERE route_key LIKE '%BenchM1' ORDER BY started_at DESC LIMIT 1")
unset SYNC_ROUTES_JSON

# Crash recovery: a run frozen (SIGSTOP at the pause point) before its second batch's APPEND, then
# killed with SIGKILL, leaves that batch's claims PENDING with their mark (and the batch prepared
# meanwhile, unmarked); its lease is made to have ended an hour ago, the scheduler rescues the job,
# and the next run reconciles them. Its own log line says how many and how long.
SYNC_ROUTES_JSON=$(routes BenchCrash) MAILSYNC_TEST_PAUSE_AT=before_append:2 "$bin/admin/mailsync" run-once \
  >/dev/null 2>&1 &
crashed=$!
until [[ $(awk '{ print $3 }' "/proc/$crashed/stat" 2>/dev/null) == T ]]; do sleep 0.05; done
kill -KILL "$crashed"
wait "$crashed" 2>/dev/null || true
psql -q "$MAILSYNC_DATABASE_URL" -c "UPDATE mailsync.jobs SET lease_expires_at = now() - interval '1 hour' WHERE state = 'running'"
SYNC_ROUTES_JSON=$(routes BenchCrash) "$bin/scheduler/mailsync-scheduler" --once >/dev/null 2>&1  # the rescue
sleep 1.5  # MAILSYNC_RECONCILE_GRACE_SECONDS=1 below: the attempt is over that long
SYNC_ROUTES_JSON=$(routes BenchCrash) MAILSYNC_RECONCILE_GRACE_SECONDS=1 LOG_LEVEL=info \
  "$bin/admin/mailsync" run-once >"$work/reconcile.log" 2>&1 || tail -3 "$work/reconcile.log" >&2
reconciled=$(sed -n 's/.*"msg":"\(reconciled [0-9]* claims[^"]*\)".*/\1/p' "$work/reconcile.log")
cp "$work/reconcile.log" /tmp/bench-reconcile.log

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
rss=$(SYNC_ROUTES_JSON=$(routes BenchRss) python3 "$root/bench/sync/measure.py" "$bin/admin/mailsync" run-once 2>&1 >/dev/null |
  field peak_rss_kb)

python3 - "$COUNT" "$work" <<'PY'
import re, statistics, sys
count, work = int(sys.argv[1]), sys.argv[2]

def runs(name):  # WAN_ROUNDS=0 leaves no Wan.* logs
    try:
        return [{k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)} for line in open(f"{work}/{name}")]
    except FileNotFoundError:
        return []

def rate(rows):  # median msgs/s, and the spread of the rounds
    rates = sorted(count * 1000 / r["wall_ms"] for r in rows)
    return statistics.median(rates), rates[0], rates[-1]

def per_msg(rows, key):  # median CPU µs per copied message
    return statistics.median(r[key] * 1000 / count for r in rows)

bm, bs, wm, ws = runs("Bench.m"), runs("Bench.s"), runs("Wan.m"), runs("Wan.s")
for label, m, s in (("", bm, bs), ("wan_", wm, ws)):
    if not m or not s:
        continue
    (mr, mlo, mhi), (sr, slo, shi) = rate(m), rate(s)
    print(f"{label}mbsync_msgs_per_s={sr:.0f} (rounds {slo:.0f}-{shi:.0f})")
    print(f"{label}mailsync_msgs_per_s={mr:.0f} (rounds {mlo:.0f}-{mhi:.0f})")
    print(f"{label}ratio={mr / sr:.2f}")
mailsync, mbsync = per_msg(bm, "cpu_ms"), per_msg(bs, "cpu_ms")
print(f"cpu_us_per_msg (loopback) mailsync={mailsync:.0f} postgres={per_msg(bm, 'postgres_cpu_ms'):.0f} "
      f"dynalite={per_msg(bm, 'dynalite_cpu_ms'):.0f} mbsync={mbsync:.0f}; "
      f"mailsync/mbsync={mailsync / mbsync:.1f}")
d = per_msg(bm, "dynalite_cpu_ms")
print(f"dynalite_ceiling_msgs_per_s={1e6 / d:.0f} (dynalite's one core at {d:.0f} µs per message: one conditional claim and a share of a batched DONE)")
PY
echo "reconcile: ${reconciled:-no claims were left PENDING}"
echo "idle_run_ms (whole process) mailsync=$m_idle mbsync=$s_idle"
echo "idle_job_ms (in a running worker) mailsync=$m_job"
echo "mailsync_peak_rss_mb=$((rss / 1024)) (copying $((COUNT + 1)) messages including one of 30 MB)"
