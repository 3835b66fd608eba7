#!/usr/bin/env python3
"""Delivery latency with push (IDLE) and with the scheduled poll, on the local stack.

ROUTES push routes (fleet users of the stack) held by WORKERS mailsync-worker processes; MESSAGES
messages appended to random routes' Gmail INBOX at random times over SPREAD seconds; a message's
latency is from its APPEND returning at the "gmail" server to its claim being DONE in PostgreSQL
(after Outlook confirmed the APPEND). Run by bench/push/run.sh, which starts the stack.
"""
import argparse
import imaplib
import json
import os
import random
import ssl
import subprocess
import sys
import time
import urllib.request


def env(name):
    value = os.environ.get(name)
    if not value:
        sys.exit(f"{name} is not set: source the stack's env")
    return value


def psql(url, sql):
    return subprocess.run(["psql", url, "-qAtc", sql], check=True, capture_output=True,
                          text=True).stdout.strip()


def mint(user):
    request = urllib.request.Request(env("MAILSYNC_STACK_OAUTH_URL") + "/admin/grant",
                                     json.dumps({"provider": "google", "user": user}).encode(),
                                     {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request))["refresh_token"]


def gmail_connection(user):
    context = ssl.create_default_context(cafile=env("MAILSYNC_TLS_CA_FILE"))
    imap = imaplib.IMAP4_SSL("localhost", int(env("MAILSYNC_STACK_GMAIL_DOVECOT_PORT")),
                             ssl_context=context)
    imap.login(user, env("MAILSYNC_STACK_IMAP_PASSWORD"))
    return imap


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run(args, mode):
    url = os.environ["MAILSYNC_DATABASE_URL"]
    tag = f"{mode}{int(time.time())}"
    users = [f"fleet{i:04d}@gmail.test" for i in range(1, args.routes + 1)]
    routes = [{"gmail_email": u, "outlook_target_folder": f"PushBench/{tag}",
               "gmail_refresh_token": mint(u), "initial_sync": "none", "push": mode == "push"}
              for u in users]
    routes_file = os.path.join(args.work, f"routes-{tag}.json")
    with open(routes_file, "w") as f:
        json.dump(routes, f)
    child_env = dict(os.environ, SYNC_ROUTES_FILE=routes_file, LOG_LEVEL="warn",
                     SYNC_INTERVAL_SECONDS=str(args.poll_interval))
    child_env.pop("SYNC_ROUTES_JSON", None)
    children = [subprocess.Popen([f"{args.bin}/scheduler/mailsync-scheduler", "--tick-seconds", "1"],
                                 env=child_env, stderr=subprocess.DEVNULL)]
    for _ in range(args.workers):
        children.append(subprocess.Popen(
            [f"{args.bin}/worker/mailsync-worker", "--concurrency", "8", "--max-watches",
             str((args.routes + args.workers - 1) // args.workers)],
            env=child_env, stderr=subprocess.DEVNULL))
    try:
        keys = "(" + ",".join("'ROUTE#%s#DEST#%s#FOLDER#PushBench/%s'" % (u, env("OUTLOOK_EMAIL"), tag)
                              for u in users) + ")"
        # Ready: every route's first run has recorded where it starts (and, with push, every
        # route is watched).
        deadline = time.time() + 300
        while time.time() < deadline:
            started = int(psql(url, f"SELECT count(*) FROM mailsync.watermarks WHERE route_key IN {keys}") or 0)
            watching = int(psql(url, f"SELECT count(*) FROM mailsync.routes WHERE route_key IN {keys} "
                                     "AND watch_state = 'watching'") or 0)
            if started == args.routes and (mode == "poll" or watching == args.routes):
                break
            time.sleep(0.5)
        else:
            sys.exit(f"{mode}: routes not ready after 300 s ({started} started, {watching} watching)")

        sent = {}  # message id -> time its APPEND returned
        start = time.time()
        times = sorted(random.uniform(0, args.spread) for _ in range(args.messages))
        for i, at in enumerate(times):
            time.sleep(max(0.0, start + at - time.time()))
            user = random.choice(users)
            message_id = f"<{tag}-{i}@bench>"
            body = (f"Message-ID: {message_id}\r\nFrom: bench@example.com\r\nTo: {user}\r\n"
                    f"Subject: push bench {i}\r\n\r\nbody {i}\r\n").encode()
            imap = gmail_connection(user)
            imap.append("INBOX", None, None, body)
            sent[message_id] = time.time()
            imap.logout()
        deadline = time.time() + args.poll_interval + 120
        done = {}
        while time.time() < deadline and len(done) < len(sent):
            rows = psql(url, "SELECT message_id, extract(epoch FROM done_at) FROM mailsync.uid_claims "
                             f"WHERE state = 'DONE' AND message_id LIKE '<{tag}-%'")
            for line in rows.splitlines():
                message_id, at = line.split("|")
                done[message_id] = float(at)
            time.sleep(0.2)
        latencies = [done[m] - sent[m] for m in sent if m in done]
        missing = len(sent) - len(latencies)
        duplicates = psql(url, "SELECT count(*) - count(DISTINCT message_id) FROM mailsync.uid_claims "
                               f"WHERE message_id LIKE '<{tag}-%'")
        return {"mode": mode, "routes": args.routes, "workers": args.workers, "messages": len(sent),
                "missing": missing, "duplicate_claims": int(duplicates),
                "p50_s": round(percentile(latencies, 50), 2) if latencies else None,
                "p99_s": round(percentile(latencies, 99), 2) if latencies else None,
                "max_s": round(max(latencies), 2) if latencies else None}
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=40)
            except subprocess.TimeoutExpired:
                child.kill()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--routes", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--spread", type=float, default=60)
    parser.add_argument("--poll-interval", type=int, default=300)
    parser.add_argument("--modes", default="push,poll")
    args = parser.parse_args()
    results = [run(args, mode) for mode in args.modes.split(",")]
    for r in results:
        print(json.dumps(r))
    bad = [r for r in results if r["missing"] or r["duplicate_claims"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
