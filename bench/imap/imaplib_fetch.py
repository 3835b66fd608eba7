#!/usr/bin/env python3
"""Python imaplib's side of bench/imap: the same UID FETCH of a whole folder over IMAPS with
XOAUTH2, hashing every body (SHA-256) as mailsync does. Prints {"messages", "bytes", "seconds"}."""
import hashlib
import imaplib
import json
import os
import ssl
import sys
import time

folder = sys.argv[1]
start = time.perf_counter()
context = ssl.create_default_context(cafile=os.environ["MAILSYNC_TLS_CA_FILE"])
imap = imaplib.IMAP4_SSL(os.environ["BENCH_IMAP_HOST"], int(os.environ["BENCH_IMAP_PORT"]), ssl_context=context)
auth = "user=%s\x01auth=Bearer %s\x01\x01" % (os.environ["BENCH_USER"], os.environ["BENCH_ACCESS_TOKEN"])
imap.authenticate("XOAUTH2", lambda _: auth.encode())
imap.select('"%s"' % folder, readonly=True)
status, data = imap.uid("FETCH", "1:*", "(UID RFC822.SIZE INTERNALDATE BODY.PEEK[])")
messages = total = 0
for item in data:
    if isinstance(item, tuple):
        hashlib.sha256(item[1]).hexdigest()
        messages += 1
        total += len(item[1])
seconds = time.perf_counter() - start
imap.logout()
print(json.dumps({"messages": messages, "bytes": total, "seconds": round(seconds, 4)}))
