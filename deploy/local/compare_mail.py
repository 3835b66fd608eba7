#!/usr/bin/env python3
"""Compares each route's Gmail INBOX with its Outlook folder on the local stack (demo and bench
tooling): message counts, bytes, and whether the destination holds exactly the source's bytes
(multisets of SHA-256). Prints one line per route; exits 1 when any route differs.

  compare_mail.py ROUTES_JSON"""
import hashlib
import imaplib
import json
import os
import ssl
import sys

context = ssl.create_default_context(cafile=os.environ["MAILSYNC_TLS_CA_FILE"])
password = os.environ["MAILSYNC_STACK_IMAP_PASSWORD"]


def folder(host, port, user, name):
    imap = imaplib.IMAP4_SSL(host, int(port), ssl_context=context)
    imap.login(user, password)
    status, _ = imap.select('"%s"' % name, readonly=True)
    digests = []
    if status == "OK":
        _, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[])")
        digests = sorted((hashlib.sha256(item[1]).hexdigest(), len(item[1])) for item in data if isinstance(item, tuple))
    imap.logout()
    return digests


different = False
for route in json.load(open(sys.argv[1])):
    source = folder(os.environ["GMAIL_IMAP_HOST"], os.environ["GMAIL_IMAP_PORT"], route["gmail_email"], "INBOX")
    dest = folder(os.environ["OUTLOOK_IMAP_HOST"], os.environ["OUTLOOK_IMAP_PORT"], route["outlook_email"],
                  route["outlook_target_folder"])
    exact = source == dest
    different |= not exact
    print("  %-18s -> %-13s %4d messages %9d bytes   in INBOX: %4d messages %9d bytes   byte-exact: %s" % (
        route["gmail_email"], route["outlook_target_folder"], len(dest), sum(s for _, s in dest),
        len(source), sum(s for _, s in source), "yes" if exact else "NO"))
sys.exit(1 if different else 0)
