#!/usr/bin/env python3
"""Runs a command and prints on stderr what it cost: wall time, its own CPU (user + system, from
wait4's rusage, children included), its peak RSS, and the CPU that other running processes (with
their children, e.g. PostgreSQL's backends) used meanwhile.

  measure.py [--watch NAME=PID ...] -- COMMAND ...
  -> wall_ms=812 cpu_ms=640 peak_rss_kb=41234 NAME_cpu_ms=210 ...

A watched process's CPU is its own plus its children's: live ones from /proc, ended ones from the
parent's cutime/cstime (a PostgreSQL backend that exits is counted once it is reaped)."""
import os
import subprocess
import sys
import time

TICK_MS = 1000.0 / os.sysconf("SC_CLK_TCK")


def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # after "pid (comm)": state ppid ... utime(14) stime(15) cutime(16) cstime(17), 1-based overall
    return int(fields[1]), [int(v) for v in fields[11:15]]


def tree_ticks(root):
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid, (utime, stime, cutime, cstime) = stat(int(entry))
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if int(entry) == root:
            total += utime + stime + cutime + cstime
        elif ppid == root:
            total += utime + stime
    return total


def main():
    args = sys.argv[1:]
    watched = {}
    while args and args[0] == "--watch":
        name, pid = args[1].split("=", 1)
        watched[name] = int(pid)
        args = args[2:]
    if args and args[0] == "--":
        args = args[1:]

    before = {name: tree_ticks(pid) for name, pid in watched.items()}
    start = time.monotonic()
    process = subprocess.Popen(args)
    _, status, usage = os.wait4(process.pid, 0)
    wall_ms = (time.monotonic() - start) * 1000
    parts = [f"wall_ms={wall_ms:.0f}", f"cpu_ms={(usage.ru_utime + usage.ru_stime) * 1000:.0f}",
             f"peak_rss_kb={usage.ru_maxrss}"]
    parts += [f"{name}_cpu_ms={(tree_ticks(pid) - before[name]) * TICK_MS:.0f}" for name, pid in watched.items()]
    sys.stderr.write(" ".join(parts) + "\n")
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
