#!/usr/bin/env bash
# UID FETCH of COUNT x SIZE messages over IMAPS from the local Dovecot: mailsync's client beside
# Python's imaplib, alternating, in one run on one throwaway stack. Both log in with XOAUTH2,
# fetch the whole folder in one command and SHA-256 every body.
#
#   bench/imap/run.sh                      COUNT=5000 SIZE=5120 ROUNDS=5
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
COUNT=${COUNT:-5000} SIZE=${SIZE:-5120} ROUNDS=${ROUNDS:-5}

cmake --preset release >/dev/null
cmake --build --preset release --target imap_bench >/dev/null
bench=$root/build/release/bench/imap_bench

stack=$("$root/deploy/local/up.sh")
trap '"$root/deploy/local/down.sh" "$stack"' EXIT
. "$stack/env"
export BENCH_IMAP_HOST=$OUTLOOK_IMAP_HOST BENCH_IMAP_PORT=$OUTLOOK_IMAP_PORT BENCH_USER=$OUTLOOK_EMAIL
BENCH_ACCESS_TOKEN=$(curl -s --data-urlencode grant_type=refresh_token --data-urlencode "client_id=$MS_CLIENT_ID" \
  --data-urlencode "client_secret=$MS_CLIENT_SECRET" --data-urlencode "refresh_token=$MS_REFRESH_TOKEN" "$MS_TOKEN_URL" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
export BENCH_ACCESS_TOKEN

echo "seeding $COUNT x $SIZE bytes: $("$bench" seed Bench "$COUNT" "$SIZE")" >&2
field() { python3 -c "import json, sys; d = json.loads(sys.argv[1]); print(d['$2'])" "$1"; }
m_times=() p_times=()
for round in $(seq "$ROUNDS"); do
  m=$("$bench" fetch Bench)
  p=$(python3 "$root/bench/imap/imaplib_fetch.py" Bench)
  [[ $(field "$m" messages) == "$COUNT" && $(field "$p" messages) == "$COUNT" ]] || { echo "short fetch: $m / $p" >&2; exit 1; }
  echo "round $round: mailsync $(field "$m" seconds) s, imaplib $(field "$p" seconds) s" >&2
  m_times+=("$(field "$m" seconds)")
  p_times+=("$(field "$p" seconds)")
  bytes=$(field "$m" bytes)
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
m=$(median "${m_times[@]}")
p=$(median "${p_times[@]}")
awk -v m="$m" -v p="$p" -v n="$COUNT" -v b="$bytes" 'BEGIN {
  printf "mailsync_msgs_per_s=%.0f mailsync_MB_per_s=%.1f\n", n / m, b / m / 1e6
  printf "imaplib_msgs_per_s=%.0f imaplib_MB_per_s=%.1f\n", n / p, b / p / 1e6
  printf "ratio=%.2f\n", p / m }'
