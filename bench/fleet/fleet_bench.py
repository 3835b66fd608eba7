#!/usr/bin/env python3
"""Many routes, mostly idle: ROUTES routes over the stack's 2,000 fleet mailboxes (a mailbox feeds up
to three routes, each into its own folder), one scheduler and WORKERS workers. Measures the
scheduler's cycle (`mailsync-scheduler --once`: routes upserted, one job per route enqueued), how
long the workers take to run a cycle's jobs when 1 % of the routes have a new message, the workers'
CPU per job, their open fds and peak RSS, PostgreSQL's CPU per job, and checks that each new
message was copied once per route. Run by bench/fleet/run.sh, which starts the stack.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "push"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sync"))
from push_bench import env, gmail_connection, mint, psql  # noqa: E402
from measure import TICK_MS, stat, tree_ticks  # noqa: E402


def cpu_ms(pid, with_children=False):
    """The process's CPU so far; with its children's (ended and live ones), if asked."""
    ticks = tree_ticks(pid) if with_children else sum(stat(pid)[1][:2])
    return ticks * TICK_MS


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--postgres-pid", type=int, required=True)
    parser.add_argument("--routes", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--with-mail", type=float, default=1.0, help="percent of routes")
    args = parser.parse_args()
    url = os.environ["MAILSYNC_DATABASE_URL"]
    fleet = int(env("MAILSYNC_STACK_FLEET_SIZE"))
    users = [f"fleet{i:04d}@gmail.test" for i in range(1, fleet + 1)]
    tokens = {u: mint(u) for u in users[:min(fleet, args.routes)]}
    routes = [{"gmail_email": users[i % fleet], "outlook_target_folder": f"Fleet/{i // fleet}",
               "gmail_refresh_token": tokens[users[i % fleet]], "initial_sync": "none"}
              for i in range(args.routes)]
    routes_file = os.path.join(args.work, "routes.json")
    with open(routes_file, "w") as f:
        json.dump(routes, f)
    child_env = dict(os.environ, SYNC_ROUTES_FILE=routes_file, LOG_LEVEL="warn",
                     SYNC_INTERVAL_SECONDS="3600")
    child_env.pop("SYNC_ROUTES_JSON", None)

    def cycle():
        start = time.monotonic()
        subprocess.run([f"{args.bin}/scheduler/mailsync-scheduler", "--once"], env=child_env,
                       check=True, stderr=subprocess.DEVNULL)
        return (time.monotonic() - start) * 1000

    def attempts():
        return int(psql(url, "SELECT count(*) FROM mailsync.job_attempts"))

    def drain(before, expected, workers):
        """Waits until `expected` more attempts are recorded; the workers' max fds and RSS meanwhile."""
        fds = rss = 0
        start = last_report = time.monotonic()
        while (done := attempts() - before) < expected:
            now = time.monotonic()
            if now - start > 900:
                sys.exit(f"fleet: {done} of a cycle's {expected} jobs finished within 15 minutes")
            if now - last_report >= 10:
                print(f"  ... {done}/{expected} jobs in {now - start:.0f} s", file=sys.stderr, flush=True)
                last_report = now
            for w in workers:
                fds = max(fds, len(os.listdir(f"/proc/{w.pid}/fd")))
                rss = max(rss, status_kb(w.pid, "VmHWM"))
            time.sleep(1)  # each poll is a psql process: its CPU is on the same two cores
        return time.monotonic() - start, fds, rss

    first_cycle_ms = cycle()  # routes inserted, a job each
    workers = [subprocess.Popen([f"{args.bin}/worker/mailsync-worker", "--concurrency",
                                 str(args.concurrency)], env=child_env, stderr=subprocess.DEVNULL)
               for _ in range(args.workers)]
    try:
        first_s, _, _ = drain(0, args.routes, workers)  # each route records where it starts

        # A steady cycle: new mail in about `with_mail` % of the routes (a mailbox feeds up to three).
        wanted = int(args.routes * args.with_mail / 100)
        per_user = [sum(1 for i in range(args.routes) if i % fleet == u) for u in range(fleet)]
        chosen, with_mail = [], 0
        for u in range(fleet):
            if with_mail >= wanted:
                break
            chosen.append(u)
            with_mail += per_user[u]
        tag = f"fleet{int(time.time())}"
        for n, u in enumerate(chosen):
            imap = gmail_connection(users[u])
            imap.append("INBOX", None, None, (f"Message-ID: <{tag}-{n}@bench>\r\nSubject: fleet {n}\r\n"
                                              f"\r\nnew mail for {users[u]}\r\n").encode())
            imap.logout()
        cpu_before = [cpu_ms(w.pid) for w in workers]
        pg_before = cpu_ms(args.postgres_pid, with_children=True)
        before = attempts()
        xacts = "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        xacts_before = int(psql(url, xacts))
        steady_cycle_ms = cycle()
        steady_s, fds, rss = drain(before, args.routes, workers)
        worker_cpu = sum(cpu_ms(w.pid) - b for w, b in zip(workers, cpu_before))
        pg_cpu = cpu_ms(args.postgres_pid, with_children=True) - pg_before
        transactions = int(psql(url, xacts)) - xacts_before
        copied = int(psql(url, f"SELECT count(*) FROM mailsync.uid_claims WHERE state = 'DONE' "
                               f"AND message_id LIKE '<{tag}-%'"))
        twice = int(psql(url, "SELECT count(*) FROM (SELECT route_key, message_id FROM mailsync.uid_claims "
                              f"WHERE message_id LIKE '<{tag}-%' GROUP BY 1, 2 HAVING count(*) > 1) d"))
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=60)
    per_job_ms = worker_cpu / args.routes
    pg_per_job_ms = pg_cpu / args.routes
    print(f"routes={args.routes} (over {min(fleet, args.routes)} mailboxes) workers={args.workers} x "
          f"concurrency {args.concurrency}")
    print(f"scheduler_cycle_ms first={first_cycle_ms:.0f} (routes inserted) steady={steady_cycle_ms:.0f}")
    print(f"first_cycle_s={first_s:.1f} ({args.routes / first_s:.0f} jobs/s; each route logs in once)")
    print(f"steady_cycle_s={steady_s:.1f} ({args.routes / steady_s:.0f} jobs/s) with new mail in "
          f"{with_mail} routes: {copied} copies, {twice} twice")
    print(f"worker_cpu_ms_per_job={per_job_ms:.2f} postgres_cpu_ms_per_job={pg_per_job_ms:.2f}")
    print(f"postgres_transactions_per_job={transactions / args.routes:.1f} (the bench's own polling included)")
    print(f"worker_max_fds={fds} worker_peak_rss_mb={rss // 1024}")
    jobs = 1_000_000 / 300
    print(f"one_million_routes: {jobs:.0f} jobs/s would need about {jobs * per_job_ms / 1000:.1f} "
          f"worker cores and {jobs * pg_per_job_ms / 1000:.1f} PostgreSQL cores at these costs")
    return 0 if copied == with_mail and twice == 0 else 1


if __name__ == "__main__":
    # SIGTERM (run.sh's trap, a CI timeout) as an exception, so main's `finally` stops the workers
    # instead of leaving them running against a stack that is being torn down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
