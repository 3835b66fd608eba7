#!/usr/bin/env python3
"""Checks a delayed path: the median of 9 round trips on one open connection, in ms.

  ping.py imap PORT      IMAPS (the stack's CA), NOOP after the greeting
  ping.py http PORT      HTTP/1.1 keep-alive requests (any answer will do)
  ping.py pg PORT        SELECT 1 on a PostgreSQL session (trust authentication)"""
import os
import socket
import ssl
import statistics
import struct
import sys
import time


def timed(once):
    once()  # warm-up: connection set up, caches filled
    samples = []
    for _ in range(9):
        start = time.perf_counter()
        once()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def connect(port):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def imap(port):
    context = ssl.create_default_context(cafile=os.environ["MAILSYNC_TLS_CA_FILE"])
    sock = context.wrap_socket(connect(port), server_hostname="localhost").makefile("rwb")
    sock.readline()  # greeting
    tags = iter(range(1, 100))

    def noop():
        tag = b"p%d" % next(tags)
        sock.write(tag + b" NOOP\r\n")
        sock.flush()
        while not sock.readline().startswith(tag):
            pass
    return timed(noop)


def http(port):
    sock = connect(port).makefile("rwb")

    def get():
        sock.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n")
        sock.flush()
        length = 0
        while (line := sock.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        sock.read(length)
    return timed(get)


def pg(port):
    sock = connect(port)
    f = sock.makefile("rb")

    def until_ready():
        while True:
            kind, size = struct.unpack("!cI", f.read(5))
            f.read(size - 4)
            if kind == b"Z":
                return
    params = b"user\0postgres\0database\0postgres\0\0"
    sock.sendall(struct.pack("!II", 8 + len(params), 196608) + params)
    until_ready()

    def select():
        query = b"SELECT 1\0"
        sock.sendall(b"Q" + struct.pack("!I", 4 + len(query)) + query)
        until_ready()
    return timed(select)


kind, port = sys.argv[1], int(sys.argv[2])
print("%.1f" % {"imap": imap, "http": http, "pg": pg}[kind](port))
