#!/usr/bin/env bash
# A first import of a large mailbox (initial_sync: all) as a deployment runs it: mailsync-scheduler
# and one mailsync-worker, on the local stack with a durable PostgreSQL and the DynamoDB mirror.
# The source holds COUNT messages of 5-50 KB and BIG of 1-2 MB among them; the worker is killed
# with SIGKILL when a third and when two thirds are copied, and started again at once (the job is
# rescued once its lease, LEASE seconds, has expired). Prints the total time, messages/s, the
# workers' peak RSS, the time lost to the kills, how far `mailsync status`'s progress and ETA were
# from the truth at 25/50/75 %, and checks that every message is in the destination exactly once
# and byte for byte.
#
#   bench/sync/import.sh          COUNT=100000 BIG=20 LEASE=6 CHECK_BYTES=1
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
COUNT=${COUNT:-100000} BIG=${BIG:-20} LEASE=${LEASE:-6} CHECK_BYTES=${CHECK_BYTES:-1}
total=$((COUNT + BIG))
scheduler= worker=
trap '[[ -z $worker ]] || kill -KILL "$worker" 2>/dev/null; [[ -z $scheduler ]] || kill "$scheduler" 2>/dev/null; bench_down' EXIT
bench_up 0

chunk=5000
started=$(date +%s)
for ((first = 0; first < COUNT; first += chunk)); do
  seed_source $((COUNT - first < chunk ? COUNT - first : chunk)) 5000-50000 "$first"
  if ((first == COUNT / 2 / chunk * chunk)); then seed_source "$BIG" 1000000-2000000 "$COUNT"; fi
done
echo "source: $COUNT messages of 5-50 KB and $BIG of 1-2 MB in $source_user's INBOX (seeded in $(($(date +%s) - started)) s)" >&2

export SYNC_ROUTES_JSON=$(routes Import) SYNC_INTERVAL_SECONDS=3600 MAILSYNC_RECONCILE_GRACE_SECONDS=2
route_key="ROUTE#$source_user#DEST#$OUTLOOK_EMAIL#FOLDER#Import"
sql() { psql -tA "$MAILSYNC_DATABASE_URL" -c "$1"; }
start_worker() {
  "$bin/worker/mailsync-worker" --concurrency 1 --lease-seconds "$LEASE" 2>>"$work/worker.log" &
  worker=$!
}
"$bin/scheduler/mailsync-scheduler" --tick-seconds 1 2>>"$work/scheduler.log" &
scheduler=$!
now_ms() { date +%s%3N; }
t0=$(now_ms)
start_worker

# Every 0.5 s: the truth (DONE claims), what status says, the worker's peak RSS.
kills=0 peak_kb=0 next_check=25 resume_from=-1
declare -A seen_at
# Each kill's outage, from the SIGKILL until the rescued run copies again: no ETA can foresee a
# crash, so the time left an ETA promised is also compared with the copying time alone.
kill_at=() outage=()
while :; do
  done_now=$(sql "SELECT count(*) FROM mailsync.uid_claims WHERE route_key = '$route_key' AND state = 'DONE'")
  ((done_now < total)) || break
  t=$(now_ms)
  hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$worker/status" 2>/dev/null || echo 0)
  ((hwm > peak_kb)) && peak_kb=$hwm
  if ((resume_from >= 0 && done_now > resume_from)); then
    outage+=($((t - ${kill_at[-1]})))
    resume_from=-1
  fi
  if ((next_check <= 75 && done_now * 100 >= next_check * total)); then
    status=$(sql "SELECT coalesce(progress_messages_done::text, '-') || ' ' || coalesce(progress_messages_total::text, '-') || ' ' || coalesce(progress_eta_seconds::text, '-') FROM mailsync.route_status WHERE route_key = '$route_key'")
    seen_at[$next_check]="$t $done_now $status"
    next_check=$((next_check + 25))
  fi
  if ((kills < 2 && done_now * 3 >= (kills + 1) * total)); then
    kill -KILL "$worker"
    wait "$worker" 2>/dev/null || true
    kills=$((kills + 1))
    echo "SIGKILL $kills at $done_now of $total copied ($(((t - t0) / 1000)) s)" >&2
    kill_at+=("$t")
    resume_from=$done_now
    start_worker
  fi
  (($(now_ms) - t0 < 1800000)) || { echo "import: not done after 30 minutes" >&2; exit 1; }
  sleep 0.5
done
t_end=$(now_ms)
hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$worker/status" 2>/dev/null || echo 0)
((hwm > peak_kb)) && peak_kb=$hwm
seconds=$(awk -v ms=$((t_end - t0)) 'BEGIN { printf "%.1f", ms / 1000 }')

# Exactly once: PostgreSQL's DONE claims, the destination's own count, and (CHECK_BYTES=1) every
# message's bytes against the source's.
dest_uids=$(sql "SELECT count(DISTINCT dest_uid) FROM mailsync.uid_claims WHERE route_key = '$route_key' AND state = 'DONE'")
in_folder=$(python3 - "$OUTLOOK_EMAIL" <<'PY'
import imaplib, os, ssl, sys
m = imaplib.IMAP4_SSL(os.environ["OUTLOOK_IMAP_HOST"], int(os.environ["OUTLOOK_IMAP_PORT"]),
                      ssl_context=ssl.create_default_context(cafile=os.environ["MAILSYNC_TLS_CA_FILE"]))
m.login(sys.argv[1], os.environ["MAILSYNC_STACK_IMAP_PASSWORD"])
print(m.status("Import", "(MESSAGES)")[1][0].decode().split("MESSAGES ")[1].rstrip(")"))
PY
)
echo "destination: $in_folder messages in the folder, $dest_uids distinct destination UIDs DONE, $total in the source" >&2
((in_folder == total && dest_uids == total)) || { echo "import: NOT exactly once" >&2; exit 1; }
if ((CHECK_BYTES)); then
  printf '[{"gmail_email": "%s", "outlook_email": "%s", "outlook_target_folder": "Import"}]' \
    "$source_user" "$OUTLOOK_EMAIL" >"$work/compare.json"
  python3 "$root/deploy/local/compare_mail.py" "$work/compare.json" >&2
fi

echo "import_seconds=$seconds (SIGKILL twice, lease $LEASE s)"
awk -v n="$total" -v s="$seconds" 'BEGIN { printf "import_msgs_per_s=%.0f\n", n / s }'
echo "worker_peak_rss_mb=$((peak_kb / 1024))"
for pct in 25 50 75; do
  [[ -n ${seen_at[$pct]:-} ]] || { echo "eta_at_${pct}=not seen"; continue; }
  read -r t done_then p_done p_total eta <<<"${seen_at[$pct]}"
  actual=$(((t_end - t) / 1000))
  lost=0
  for i in "${!outage[@]}"; do ((kill_at[i] > t)) && lost=$((lost + outage[i])); done
  copying=$(((t_end - t - lost) / 1000))
  if [[ $eta == - ]]; then
    echo "eta_at_${pct}=none shown (progress $p_done/$p_total; the run had just started)"
  else
    awk -v eta="$eta" -v actual="$actual" -v pct="$pct" -v pd="$p_done" -v pt="$p_total" -v d="$done_then" -v n="$total" \
      -v copying="$copying" 'BEGIN { printf "eta_at_%d=%d s, took %d s (%+.0f%%), %d s of it copying (%+.0f%%; the rest a later SIGKILL until the rescued run copied again); progress %d of %d in this run, truth %d of %d\n", pct, eta, actual, (eta - actual) * 100 / (actual > 0 ? actual : 1), copying, (eta - copying) * 100 / (copying > 0 ? copying : 1), pd, pt, d, n }'
  fi
done
