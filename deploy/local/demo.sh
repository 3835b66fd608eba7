#!/usr/bin/env bash
# The whole product on the built-in local stack, in one command:
#   installs what is missing, builds, starts throwaway PostgreSQL + dynalite + two Dovecot servers
#   ("gmail" and "outlook") + the OAuth emulator, seeds three Gmail inboxes with a few hundred
#   varied messages, runs the scheduler once and a worker until the queue is drained, shows what
#   arrived where and the dashboard, runs again to show nothing is copied twice, then lets a
#   long-running worker copy new mail while its JSON log and Prometheus metrics are shown, shows a
#   push route (IDLE) copying new mail within seconds, and stops it all. The status page
#   (mailsync-scheduler --ui-port) is up from the first sync to the end; its URL is printed and a
#   screenshot of it written to /tmp/mailsync-demo-status.png.
#
#   deploy/local/demo.sh            (KEEP_STACK=1 leaves the stack running and prints its env file)
#   MAILSYNC_STACK_PROFILE=providers deploy/local/demo.sh   the servers behave like Gmail and
#                                   Outlook.com (deploy/local/provider_proxy.py)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
say() { printf '\n\033[1m%s\033[0m\n' "$*"; }

say "1. Installing what is missing and building (release)"
deploy/local/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target mailsync mailsync-worker mailsync-scheduler >/dev/null
bin=$root/build/release
export PATH=$bin/admin:$bin/scheduler:$bin/worker:$PATH

say "2. Starting the local stack (PostgreSQL, dynalite, Dovecot x2, OAuth emulator)"
stack=$(deploy/local/up.sh 2>/dev/null)
ui=
if [[ -z ${KEEP_STACK:-} ]]; then trap '[[ -z $ui ]] || kill "$ui" 2>/dev/null; deploy/local/down.sh "$stack" >/dev/null 2>&1' EXIT; fi
. "$stack/env"
export SYNC_ROUTES_FILE=$MAILSYNC_STACK_ROUTES_FILE LOG_LEVEL=warn LOG_FORMAT=text
# As in production: the Outlook refresh token in a file, so its rotations are written back there.
export MS_REFRESH_TOKEN="file:$MAILSYNC_STACK_DIR/secrets/me.refresh_token"
echo "   stack in $stack, profile $MAILSYNC_STACK_PROFILE; routes from $SYNC_ROUTES_FILE:"
mailsync routes | sed 's/^/   /'
mailsync migrate | tail -1 | sed 's/^/   /'
mailsync dynamo create-table | sed 's/^/   /'
mailsync gate | sed 's/^/   /'

say "3. Seeding the Gmail inboxes (varied messages: 8-bit headers, attachments, long lines, no Message-ID, resent IDs)"
python3 deploy/local/seed_mail.py alice@gmail.test 160 --seed 1 | sed 's/^/   /'
python3 deploy/local/seed_mail.py bob@gmail.test 100 --seed 2 | sed 's/^/   /'
python3 deploy/local/seed_mail.py carol@gmail.test 60 --seed 3 | sed 's/^/   /'

say "4. mailsync-scheduler --once, then mailsync-worker --drain"
mailsync-scheduler --once | sed 's/^/   /'
ui_log=$(mktemp /tmp/mailsync-demo-ui.XXXXXX)
LOG_LEVEL=info mailsync-scheduler --ui-port 0 2>"$ui_log" &
ui=$!
until grep -q 'status page on' "$ui_log"; do sleep 0.05; done
url=$(grep -o 'http://127.0.0.1:[0-9]*/' "$ui_log" | head -1)
echo "   the status page (mailsync-scheduler --ui-port, read-only, on 127.0.0.1 unless given a token):"
echo "   open $url while the demo runs: it follows the syncs below, refreshing itself every 5 s"
start=$(date +%s%N)
mailsync-worker --drain --concurrency 3
echo "   worker drained the queue in $(( ($(date +%s%N) - start) / 1000000 )) ms"

say "5. What arrived where (checked byte for byte against the source)"
python3 deploy/local/compare_mail.py "$SYNC_ROUTES_FILE"

say "6. The dashboard (mailsync status and the SQL views)"
mailsync status | sed 's/^/   /'
psql -q "$MAILSYNC_DATABASE_URL" -c "SELECT regexp_replace(route_key, '#DEST.*', '') AS route, fetched, appended, skipped, failed, pg_size_pretty(bytes) AS bytes, round(extract(epoch FROM finished_at - started_at) * 1000) AS ms FROM mailsync.job_attempts ORDER BY started_at" | sed 's/^/   /'

say "6b. The status page (up since step 4): $url"
curl -s "$url" | python3 -c 'import html, re, sys; page = sys.stdin.read()
print("   " + html.unescape(re.search(r"<section id=\"summary\"><p>(.*?)</p>", page).group(1)))'
shot=/tmp/mailsync-demo-status.png
if chromium --headless=new --no-sandbox --disable-gpu --window-size=1280,900 --screenshot="$shot" "$url" \
  >/dev/null 2>&1; then
  echo "   a screenshot of it: $shot"
fi

say "7. Running again: new cycle, nothing new to copy"
mailsync enqueue --all | sed 's/^/   /'
mailsync-worker --drain --concurrency 3
psql -q "$MAILSYNC_DATABASE_URL" -c "SELECT regexp_replace(route_key, '#DEST.*', '') AS route, attempt, fetched, appended, skipped, outcome FROM mailsync.job_attempts ORDER BY started_at DESC LIMIT 3" | sed 's/^/   /'
python3 deploy/local/compare_mail.py "$SYNC_ROUTES_FILE"

say "8. Watching it: new mail, a long-running worker with JSON logs and Prometheus metrics"
python3 deploy/local/seed_mail.py alice@gmail.test 25 --seed 4 | sed 's/^/   /'
worker_log=$(mktemp /tmp/mailsync-demo-worker.XXXXXX)
LOG_FORMAT=json LOG_LEVEL=info mailsync-worker --concurrency 3 --metrics-port 0 --metrics-address 127.0.0.1 \
  2>"$worker_log" &
worker=$!
until grep -q 'on port' "$worker_log"; do sleep 0.05; done
port=$(sed -n 's/.*on port \([0-9]*\).*/\1/p' "$worker_log" | head -1)
mailsync enqueue --all >/dev/null
until curl -s "127.0.0.1:$port/metrics" | grep -q '^mailsync_jobs_succeeded_total{kind="route_sync"} 3'; do sleep 0.05; done
echo "   GET /readyz: $(curl -s "127.0.0.1:$port/readyz")"
echo "   GET /metrics (some of it):"
curl -s "127.0.0.1:$port/metrics" | grep -E '^mailsync_(messages_appended_total|bytes_appended_total|jobs_succeeded_total|token_refreshes_total|gate_failures_total)(\{[^}]*\})? ' |
  sed 's/^/     /'
echo "   the job summary line of alice's route, as a log shipper sees it:"
grep '"route_sync done' "$worker_log" | grep alice | head -1 | sed 's/^/     /'
kill -TERM "$worker"
wait "$worker" || true
rm -f "$worker_log"
python3 deploy/local/compare_mail.py "$SYNC_ROUTES_FILE"

say "9. Push: alice's route with \"push\": true copies new mail in seconds, not at the next 5-minute run"
push_routes=$(mktemp /tmp/mailsync-demo-routes.XXXXXX)
python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); r[0]["push"] = True; json.dump(r, open(sys.argv[2], "w"))' \
  "$SYNC_ROUTES_FILE" "$push_routes"
SYNC_ROUTES_FILE=$push_routes mailsync-scheduler --tick-seconds 1 2>/dev/null &
scheduler=$!
SYNC_ROUTES_FILE=$push_routes mailsync-worker --concurrency 3 2>/dev/null &
worker=$!
alice_done="SELECT count(*) FROM mailsync.uid_claims WHERE state = 'DONE' AND route_key LIKE 'ROUTE#alice@%'"
until [[ $(psql -qAt "$MAILSYNC_DATABASE_URL" -c "SELECT watch_state FROM mailsync.routes WHERE route_key LIKE 'ROUTE#alice@%'") == watching ]]; do
  sleep 0.1
done
before=$(psql -qAt "$MAILSYNC_DATABASE_URL" -c "$alice_done")
start=$(date +%s%N)
python3 deploy/local/seed_mail.py alice@gmail.test 1 --seed 5 | sed 's/^/   /'
until (($(psql -qAt "$MAILSYNC_DATABASE_URL" -c "$alice_done") > before)); do sleep 0.05; done
echo "   the IDLE watch saw it and the copy was in Outlook $(( ($(date +%s%N) - start) / 1000000 )) ms after it arrived"
SYNC_ROUTES_FILE=$push_routes mailsync status | sed 's/^/   /'
kill -TERM "$worker" "$scheduler"
wait "$worker" "$scheduler" || true
rm -f "$push_routes"
python3 deploy/local/compare_mail.py "$SYNC_ROUTES_FILE"

kill -TERM "$ui"
wait "$ui" || true
ui=
rm -f "$ui_log"

if [[ -n ${KEEP_STACK:-} ]]; then
  say "The stack keeps running: . $stack/env   (stop it with deploy/local/down.sh $stack)"
else
  say "Done; stopping the stack."
fi
