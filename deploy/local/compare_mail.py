#!/usr/bin/env python3
"""Compares each route's Gmail INBOX with its Outlook folder on the local stack (demo and bench
tooling): message counts, bytes, and whether the destination holds exactly the source's bytes
(multisets of SHA-256). Prints one line per route; exits 1 when any route differs.

  compare_mail.py ROUTES_JSON

A route may say "added_header": "X-TUID" for a copier that inserts one header line of its own
into every copy (mbsync's X-TUID, which it uses to find its copies again): that line is taken out
of the destination's bytes before they are compared, and nothing else is."""
import hashlib
import imaplib
import json
import re
import os
import ssl
import sys

context = ssl.create_default_context(cafile=os.environ["MAILSYNC_TLS_CA_FILE"])
password = os.environ["MAILSYNC_STACK_IMAP_PASSWORD"]


def folder(host, port, user, name, added_header=None):
    imap = imaplib.IMAP4_SSL(host, int(port), ssl_context=context)
    imap.login(user, password)
    status, _ = imap.select('"%s"' % name, readonly=True)
    digests = []
    if status == "OK":
        _, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[])")
        bodies = [item[1] for item in data if isinstance(item, tuple)]
        if added_header:  # one such line taken out of the header section
            line = re.compile(rb"(?im)^" + re.escape(added_header.encode()) + rb": [^\r\n]*\r\n")

            def without(body):
                head, blank, rest = body.partition(b"\r\n\r\n")
                return line.sub(b"", head + b"\r\n", count=1)[:-2] + blank + rest
            bodies = [without(body) for body in bodies]
        digests = sorted((hashlib.sha256(body).hexdigest(), len(body)) for body in bodies)
    imap.logout()
    return digests


different = False
for route in json.load(open(sys.argv[1])):
    source = folder(os.environ["GMAIL_IMAP_HOST"], os.environ["GMAIL_IMAP_PORT"], route["gmail_email"], "INBOX")
    dest = folder(os.environ["OUTLOOK_IMAP_HOST"], os.environ["OUTLOOK_IMAP_PORT"], route["outlook_email"],
                  route["outlook_target_folder"], route.get("added_header"))
    exact = source == dest
    different |= not exact
    print("  %-18s -> %-13s %4d messages %9d bytes   in INBOX: %4d messages %9d bytes   byte-exact: %s" % (
        route["gmail_email"], route["outlook_target_folder"], len(dest), sum(s for _, s in dest),
        len(source), sum(s for _, s in source), "yes" if exact else "NO"))
sys.exit(1 if different else 0)
