#!/usr/bin/env python3
"""Runs a command and prints its peak resident set size in KiB (from wait4's rusage) on stderr."""
import os
import subprocess
import sys

process = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(process.pid, 0)
sys.stderr.write("peak_rss_kb=%d\n" % usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
