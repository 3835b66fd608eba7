#!/usr/bin/env bash
# Starts the throwaway local stack on free loopback ports, all files in one directory:
#   PostgreSQL 15 (throwaway cluster, fsync off: for tests only)
#   PgBouncer 1.18 in front of it, transaction pooling, 2 server connections (tests of pooled use)
#   OAuth emulator (Google + Microsoft token endpoints, token introspection for Dovecot)
#   Dovecot "gmail" and Dovecot "outlook": IMAPS with a certificate from a throwaway CA, users from
#     a passwd file, XOAUTH2 / OAUTHBEARER validated through the emulator's introspection
#   dynalite (DynamoDB API)
# and writes DIR/env, which configures the executables for the stack (DESIGN.md section 4 names).
#
# Two profiles. "dovecot" (the default): mailsync talks to the two Dovecots directly. "providers":
# mailsync talks to deploy/local/provider_proxy.py, which sits in front of each Dovecot and makes
# the "gmail" server behave like imap.gmail.com and the "outlook" one like outlook.office365.com
# (capabilities, refusal and throttling texts, X-GM-MSGID, connection limits; rules per test on
# its control port). Either way the Dovecots stay reachable on MAILSYNC_STACK_*_DOVECOT_PORT.
#
#   stack=$(deploy/local/up.sh)     # prints the stack directory on stdout
#   stack=$(deploy/local/up.sh --profile providers)   # or MAILSYNC_STACK_PROFILE=providers
#   . "$stack/env"
#   deploy/local/down.sh "$stack"   # stops everything it started
#
# MAILSYNC_STACK_DIR=DIR puts the stack there (created; must not hold a running stack).
# MAILSYNC_STACK_OUTLOOK_IMAP_CAPABILITY="..." replaces the "outlook" Dovecot's capability list
# after login (bench/sync/run.sh's WAN path: Outlook.com's list, so no MULTIAPPEND, at Dovecot's
# own speed rather than through the providers profile's Python proxy).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

"$here/install-deps.sh"

stack=${MAILSYNC_STACK_DIR:-$(mktemp -d /tmp/mailsync-stack.XXXXXX)}
mkdir -p "$stack"
stack=$(cd "$stack" && pwd)
profile=${MAILSYNC_STACK_PROFILE:-dovecot}
while (($#)); do
  case $1 in
    --profile) profile=${2:?--profile dovecot|providers}; shift 2 ;;
    --profile=*) profile=${1#*=}; shift ;;
    *) die "unknown option $1 (usage: up.sh [--profile dovecot|providers])" ;;
  esac
done
[[ $profile == dovecot || $profile == providers ]] || die "unknown profile '$profile' (dovecot or providers)"
[[ ! -e $stack/pids ]] || die "$stack already holds a stack; run deploy/local/down.sh $stack first"
chmod 755 "$stack"  # postgres, dovecot and vmail must traverse it
: >"$stack/pids"

# On any failure below, stop what was started so no listener is left behind.
trap 'status=$?; if ((status != 0)); then log "start failed; stopping what started"; "$here/down.sh" "$stack" >&2 || true; fi' EXIT

read -r pg_port oauth_port gmail_port outlook_port dynamo_port starttls_port bouncer_port \
  gmail_proxy_port outlook_proxy_port control_port < <(free_ports 10)

# ---- users and secrets -----------------------------------------------------------------------
gmail_users=(alice@gmail.test bob@gmail.test carol@gmail.test)
# Mailboxes the integration tests claim one each (tests/support/stack.cpp), so they can run in parallel.
# One stack serves both builds' tests under a profile: ~2 x the tests that claim one, with room.
test_users=()
for i in $(seq -w 1 200); do test_users+=("sync$i@gmail.test"); done
# 2,000 empty accounts for the many-routes test (one worker, 2,000 routes: fds and RSS bounded).
fleet_size=2000
fleet_users=()
for i in $(seq -w 1 "$fleet_size"); do fleet_users+=("fleet$i@gmail.test"); done
outlook_user=me@outlook.test
# Outlook mailboxes of their own for tests whose provider rules would disturb others on the shared
# one (throttling a mailbox throttles every route into it).
outlook_test_users=()
for i in $(seq -w 1 60); do outlook_test_users+=("out$i@outlook.test"); done
random() { python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }
imap_password=$(random)
google_client_id="emu-google-client.apps.googleusercontent.test"
google_client_secret=$(random)
ms_client_id="00000000-emu0-4000-8000-$(python3 -c 'import secrets; print(secrets.token_hex(6))')"
ms_client_secret=$(random)

mkdir -p "$stack/secrets"
chmod 700 "$stack/secrets"
declare -A refresh_token
for user in "${gmail_users[@]}"; do refresh_token[$user]="1//emu-$(random)"; done
refresh_token[$outlook_user]="M.emu-$(random)"
for user in "${!refresh_token[@]}"; do
  (umask 077 && printf '%s' "${refresh_token[$user]}" >"$stack/secrets/${user%%@*}.refresh_token")
done

# ---- TLS: a throwaway CA and a server certificate for localhost / 127.0.0.1 -------------------
mkdir -p "$stack/tls"
(
  cd "$stack/tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=mailsync local test CA" \
    -keyout ca.key -out ca.pem -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
    -extfile server.ext -out server.pem 2>/dev/null
  chmod 644 ca.pem server.pem
  chmod 600 ca.key
  chmod 640 server.key
  rm -f server.csr server.ext
)

# ---- PostgreSQL 15 ---------------------------------------------------------------------------
log "postgres on 127.0.0.1:$pg_port"
start_postgres "$stack/pg" "$pg_port" fast
echo "postgres $(head -1 "$stack/pg/data/postmaster.pid")" >>"$stack/pids"
psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -c "CREATE DATABASE mailsync"

# ---- PgBouncer: transaction pooling, as a managed Postgres pooler is usually run -------------
# Two server connections for any number of clients, so consecutive transactions of one client
# land on different server connections: session state (a SET, a named prepared statement) is
# lost or leaks between clients, and the tests that use MAILSYNC_STACK_PGBOUNCER_URL see it.
log "pgbouncer on 127.0.0.1:$bouncer_port (transaction pooling)"
mkdir -p "$stack/pgbouncer"
printf '"postgres" ""\n' >"$stack/pgbouncer/users.txt"
cat >"$stack/pgbouncer/pgbouncer.ini" <<CONF
[databases]
* = host=127.0.0.1 port=$pg_port user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
unix_socket_dir =
auth_type = trust
auth_file = $stack/pgbouncer/users.txt
pool_mode = transaction
default_pool_size = 2
max_client_conn = 500
logfile = $stack/pgbouncer/pgbouncer.log
pidfile = $stack/pgbouncer/pgbouncer.pid
CONF
chown -R postgres: "$stack/pgbouncer" 2>/dev/null || true
as_user postgres pgbouncer -d -q "$stack/pgbouncer/pgbouncer.ini" ||
  die "pgbouncer did not start: $(tail -5 "$stack/pgbouncer/pgbouncer.log" 2>/dev/null)"
wait_listening "$bouncer_port" pgbouncer
echo "pgbouncer $(cat "$stack/pgbouncer/pgbouncer.pid")" >>"$stack/pids"

# ---- OAuth emulator --------------------------------------------------------------------------
log "oauth emulator on 127.0.0.1:$oauth_port"
mkdir -p "$stack/oauth"
aws_key_id="local-$(random)"
aws_secret_key="$(random)"
python3 - "$stack/oauth/seed.json" <<PY
import json, sys
seed = {
  "aws": {"keys": {"$aws_key_id": "$aws_secret_key"}},
  "google": {"clients": {"$google_client_id": "$google_client_secret"},
             "refresh_tokens": {$(for u in "${gmail_users[@]}"; do printf '"%s": "%s", ' "${refresh_token[$u]}" "$u"; done)}},
  "microsoft": {"clients": {"$ms_client_id": "$ms_client_secret"},
                "refresh_tokens": {"${refresh_token[$outlook_user]}": "$outlook_user"}},
}
with open(sys.argv[1], "w") as f:
    json.dump(seed, f, indent=1)
PY
chmod 600 "$stack/oauth/seed.json"
nohup python3 "$here/oauth_emulator.py" --port "$oauth_port" --seed "$stack/oauth/seed.json" \
  >"$stack/oauth/emulator.log" 2>&1 </dev/null &
echo "oauth $!" >>"$stack/pids"
wait_listening "$oauth_port" "oauth emulator"

# ---- Dovecot × 2 -----------------------------------------------------------------------------
if [[ $(id -u) == 0 ]] && ! id vmail >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin vmail
fi
vmail_uid=$(id -u vmail 2>/dev/null || id -u)
vmail_gid=$(id -g vmail 2>/dev/null || id -g)

start_dovecot() {  # NAME PORT STARTTLS_PORT(0: none) PROVIDER EXTRA_CONF USERS...
  local name=$1 port=$2 plain_port=$3 provider=$4 extra_conf=$5
  shift 5
  local dir="$stack/dovecot-$name"
  mkdir -p "$dir/run" "$dir/state" "$dir/mail"
  chown "$vmail_uid:$vmail_gid" "$dir/mail"
  : >"$dir/passwd"
  local user
  for user in "$@"; do echo "$user:{PLAIN}$imap_password::::::" >>"$dir/passwd"; done
  chmod 640 "$dir/passwd"
  chgrp dovecot "$dir/passwd" 2>/dev/null || true
  cat >"$dir/oauth2.conf" <<CONF
introspection_mode = post
introspection_url = http://127.0.0.1:$oauth_port/introspect/$provider
username_attribute = username
active_attribute = active
active_value = true
force_introspection = yes
CONF
  cat >"$dir/dovecot.conf" <<CONF
# Generated by deploy/local/up.sh for the throwaway "$name" server.
instance_name = mailsync-$name
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
info_log_path = $dir/dovecot.log
log_timestamp = "%Y-%m-%dT%H:%M:%S "
auth_verbose = yes
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <$stack/tls/server.pem
ssl_key = <$stack/tls/server.key
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain login xoauth2 oauthbearer
auth_failure_delay = 0
# Tokens through the emulator's introspection; passwords (PLAIN / LOGIN) from the passwd file.
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $dir/oauth2.conf
}
passdb {
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u $dir/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%u $dir/passwd
  default_fields = uid=$vmail_uid gid=$vmail_gid home=$dir/mail/%u
}
first_valid_uid = $vmail_uid
mail_location = sdbox:~/sdbox
mail_fsync = never
namespace inbox {
  inbox = yes
  separator = /
}
protocol imap {
  mail_max_userip_connections = 100
}
# Dovecot's default of 100 processes per service drops connections past 100 IMAPS clients (each
# TLS login process lives as long as its connection): push holds one IDLE connection per route,
# and bench/push holds 200 beside the syncs' own.
default_process_limit = 1000
default_client_limit = 4000
# An IDLE session learns of new mail through inotify, limited to 128 instances per user (all
# mailboxes here are one Unix user, vmail); past that Dovecot polls every 30 s. Gmail tells an
# IDLE client at once: check every second where inotify is gone.
mailbox_idle_check_interval = 1 secs
# Dovecot's "high-performance mode" (doc.dovecot.org, Login processes): a login process serves many
# connections (TLS included) instead of one fork per connection; 5,000 routes logging in every cycle
# (bench/fleet) otherwise spend much of the machine in Dovecot's process start-up, a cost Gmail and
# Outlook.com bear on their own machines. Reusing imap processes too (service imap's service_count)
# was tried and rejected: concurrent first logins of one user then panicked in Dovecot 2.3.19
# ("fcntl(dovecot.list.index.log, write-lock) locking failed: Resource deadlock avoided").
service imap-login {
  service_count = 0
  process_min_avail = 2
  # Plaintext port for STARTTLS only: ssl = required refuses any login before TLS.
  inet_listener imap {
    port = $plain_port
  }
  inet_listener imaps {
    port = $port
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = 0
  }
}
service lmtp {
  unix_listener lmtp {
    mode = 0
  }
}
# After a failed login dovecot delays later ones from the same IP (2, 4, 8, 15 s);
# auth_failure_delay = 0 alone does not stop it.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
$extra_conf
CONF
  log "dovecot $name on 127.0.0.1:$port"
  dovecot -c "$dir/dovecot.conf" || die "dovecot $name did not start: $(tail -5 "$dir/dovecot.log" 2>/dev/null)"
  wait_listening "$port" "dovecot $name"
  if [[ $plain_port != 0 ]]; then wait_listening "$plain_port" "dovecot $name (STARTTLS)"; fi
  echo "dovecot-$name $(cat "$dir/run/master.pid")" >>"$stack/pids"
}
start_dovecot gmail "$gmail_port" "$starttls_port" google "" "${gmail_users[@]}" "${test_users[@]}" \
  "${fleet_users[@]}"
# Outlook.com refuses messages over its size limit; so does this one, with NO [LIMIT] (quota
# plugin), and it says so in its capabilities (APPENDLIMIT, RFC 7889).
outlook_limit=$((40 * 1024 * 1024))
start_dovecot outlook "$outlook_port" 0 microsoft "mail_plugins = \$mail_plugins quota
imap_capability = ${MAILSYNC_STACK_OUTLOOK_IMAP_CAPABILITY:-+APPENDLIMIT=$outlook_limit}
plugin {
  quota = count:User quota
  quota_vsizes = yes
  quota_max_mail_size = $outlook_limit
}" "$outlook_user" "${outlook_test_users[@]}"

# ---- the providers' behaviour layer ----------------------------------------------------------
gmail_imap_port=$gmail_port
outlook_imap_port=$outlook_port
control_url=
if [[ $profile == providers ]]; then
  log "provider proxy: gmail on 127.0.0.1:$gmail_proxy_port, outlook on 127.0.0.1:$outlook_proxy_port"
  mkdir -p "$stack/providers"
  nohup python3 "$here/provider_proxy.py" --gmail "$gmail_proxy_port" "$gmail_port" \
    --outlook "$outlook_proxy_port" "$outlook_port" --control "$control_port" \
    --cert "$stack/tls/server.pem" --key "$stack/tls/server.key" --ca "$stack/tls/ca.pem" \
    --outlook-append-limit "$outlook_limit" >"$stack/providers/proxy.log" 2>&1 </dev/null &
  echo "provider-proxy $!" >>"$stack/pids"
  wait_listening "$gmail_proxy_port" "provider proxy (gmail)"
  wait_listening "$outlook_proxy_port" "provider proxy (outlook)"
  wait_listening "$control_port" "provider proxy (control)"
  gmail_imap_port=$gmail_proxy_port
  outlook_imap_port=$outlook_proxy_port
  control_url="http://127.0.0.1:$control_port"
fi

# ---- dynalite --------------------------------------------------------------------------------
log "dynalite on 127.0.0.1:$dynamo_port"
mkdir -p "$stack/dynalite"
nohup node "$(npm_cache_dir)/node_modules/dynalite/cli.js" --host 127.0.0.1 --port "$dynamo_port" \
  --createTableMs 0 --deleteTableMs 0 --updateTableMs 0 >"$stack/dynalite/dynalite.log" 2>&1 </dev/null &
echo "dynalite $!" >>"$stack/pids"
wait_listening "$dynamo_port" dynalite

# ---- routes file and env ---------------------------------------------------------------------
python3 - "$stack/routes.json" "$stack/secrets" "$google_client_id" "$outlook_user" "${gmail_users[@]}" <<'PY'
import json, sys
out, secrets_dir, client_id, outlook = sys.argv[1:5]
routes = [{"gmail_email": u, "outlook_email": outlook, "outlook_target_folder": "Gmail/" + u.split("@")[0],
           "gmail_client_id": client_id, "gmail_client_secret": "env:GMAIL_CLIENT_SECRET",
           "gmail_refresh_token": "file:%s/%s.refresh_token" % (secrets_dir, u.split("@")[0])}
          for u in sys.argv[5:]]
with open(out, "w") as f:
    json.dump(routes, f, indent=2)
PY

(
  umask 077
  cat >"$stack/env" <<ENV
# Written by deploy/local/up.sh; source it to point mailsync at this throwaway stack.
export MAILSYNC_DATABASE_URL='postgresql://postgres@127.0.0.1:$pg_port/mailsync'
export GMAIL_EMAIL='${gmail_users[0]}'
export GMAIL_CLIENT_ID='$google_client_id'
export GMAIL_CLIENT_SECRET='$google_client_secret'
export GMAIL_REFRESH_TOKEN='${refresh_token[${gmail_users[0]}]}'
export OUTLOOK_TARGET_FOLDER='Gmail/${gmail_users[0]%%@*}'
export OUTLOOK_EMAIL='$outlook_user'
export MS_CLIENT_ID='$ms_client_id'
export MS_CLIENT_SECRET='$ms_client_secret'
export MS_TENANT='consumers'
export MS_REFRESH_TOKEN='${refresh_token[$outlook_user]}'
export AWS_REGION='us-east-1'
export DYNAMODB_TABLE='mailsync-local'
export DYNAMODB_ENDPOINT='http://127.0.0.1:$dynamo_port'
export AWS_ACCESS_KEY_ID='$aws_key_id'
export AWS_SECRET_ACCESS_KEY='$aws_secret_key'
# AWS Secrets Manager, played by the OAuth emulator (signatures checked).
export AWS_ENDPOINT_URL_SECRETSMANAGER='http://127.0.0.1:$oauth_port/'
export SYNC_INTERVAL_SECONDS='300'
export GMAIL_IMAP_HOST='localhost'
export GMAIL_IMAP_PORT='$gmail_imap_port'
export OUTLOOK_IMAP_HOST='localhost'
export OUTLOOK_IMAP_PORT='$outlook_imap_port'
export GOOGLE_TOKEN_URL='http://127.0.0.1:$oauth_port/google/token'
export MS_TOKEN_URL='http://127.0.0.1:$oauth_port/microsoft/consumers/oauth2/v2.0/token'
export MAILSYNC_TLS_CA_FILE='$stack/tls/ca.pem'
# Stack internals for tests, the demo and benchmarks (not read by mailsync itself).
export MAILSYNC_STACK_DIR='$stack'
export MAILSYNC_STACK_PROFILE='$profile'
# The Dovecots themselves (the same as *_IMAP_PORT under "dovecot"; behind the proxy under
# "providers"): what a test reads to see what the server really stored.
export MAILSYNC_STACK_GMAIL_DOVECOT_PORT='$gmail_port'
export MAILSYNC_STACK_OUTLOOK_DOVECOT_PORT='$outlook_port'
export MAILSYNC_STACK_PROVIDER_CONTROL_URL='$control_url'
export MAILSYNC_STACK_PG_PORT='$pg_port'
export MAILSYNC_STACK_PGBOUNCER_URL='postgresql://postgres@127.0.0.1:$bouncer_port/mailsync'
export MAILSYNC_STACK_PGBOUNCER_PORT='$bouncer_port'
export MAILSYNC_STACK_PG_ADMIN_URL='postgresql://postgres@127.0.0.1:$pg_port/postgres'
export MAILSYNC_STACK_OAUTH_URL='http://127.0.0.1:$oauth_port'
export MAILSYNC_STACK_GMAIL_USERS='${gmail_users[*]}'
export MAILSYNC_STACK_TEST_USERS='${test_users[*]}'
export MAILSYNC_STACK_OUTLOOK_TEST_USERS='${outlook_test_users[*]}'
export MAILSYNC_STACK_FLEET_SIZE='$fleet_size'  # users fleet0001@gmail.test ... fleet2000@gmail.test
export MAILSYNC_STACK_OUTLOOK_APPEND_LIMIT='$outlook_limit'
export MAILSYNC_STACK_IMAP_PASSWORD='$imap_password'
export MAILSYNC_STACK_ROUTES_FILE='$stack/routes.json'
export MAILSYNC_STACK_GMAIL_STARTTLS_PORT='$starttls_port'
export MAILSYNC_STACK_GMAIL_DOVECOT_CONF='$stack/dovecot-gmail/dovecot.conf'
export MAILSYNC_STACK_OUTLOOK_DOVECOT_CONF='$stack/dovecot-outlook/dovecot.conf'
export MAILSYNC_STACK_GMAIL_LOG='$stack/dovecot-gmail/dovecot.log'
export MAILSYNC_STACK_OUTLOOK_LOG='$stack/dovecot-outlook/dovecot.log'
ENV
)
log "ready: . $stack/env"
echo "$stack"
