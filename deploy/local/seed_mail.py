#!/usr/bin/env python3
"""Seeds a mailbox of the local stack's "gmail" server with varied messages (test and demo tooling).

  seed_mail.py USER COUNT [--folder INBOX] [--seed N] [--hours 12]

Logs in with the stack's passwd-file password (MAILSYNC_STACK_IMAP_PASSWORD), over IMAPS verified
with MAILSYNC_TLS_CA_FILE, and APPENDs COUNT messages dated within the last --hours: plain text,
8-bit and encoded-word headers, long folded headers, long lines, base64 attachments, HTML,
messages without a Message-ID, and now and then a resend of an earlier Message-ID with new bytes.
Prints a JSON summary (count, bytes)."""
import argparse
import base64
import imaplib
import json
import os
import random
import ssl
import time

SUBJECTS = ["Quarterly numbers", "Re: lunch?", "Grüße aus Köln", "=?utf-8?B?5pel5pys6Kqe44Gu5Lu25ZCN?=",
            "Invoice #{n}", "Fwd: the photos", "Meeting notes", "café ☕ tomorrow", "[list] digest {n}"]


def message(rng, n, user, reuse_id):
    kind = n % 7
    headers = [
        "From: Sender %d <sender%d@example.org>" % (n % 13, n % 13),
        "To: %s" % user,
        "Subject: %s" % rng.choice(SUBJECTS).format(n=n),
        "Date: %s" % time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(time.time() - n * 60)),
    ]
    if kind != 5:  # some messages have no Message-ID at all
        headers.append("Message-ID: %s" % (reuse_id or "<seed-%d-%d@example.org>" % (n, rng.randrange(1 << 30))))
    if kind == 3:
        headers.append("References: " + "\r\n ".join("<ref-%d@example.org>" % i for i in range(60)))
    if kind == 1:
        headers.append("X-Raw-8bit: Gr\xfc\xdfe".encode("latin-1").decode("latin-1"))
    body_lines = ["Message %d for %s." % (n, user), ""]
    if kind == 2:
        body_lines.append("x" * rng.randrange(2000, 20000))  # a long line
    if kind == 4:
        blob = base64.b64encode(bytes(rng.randrange(256) for _ in range(rng.randrange(2000, 60000)))).decode()
        boundary = "b%d" % n
        headers += ["MIME-Version: 1.0", "Content-Type: multipart/mixed; boundary=%s" % boundary]
        body_lines = ["--" + boundary, "Content-Type: text/plain; charset=utf-8", "", "See attached.",
                      "--" + boundary, "Content-Type: application/octet-stream; name=\"data-%d.bin\"" % n,
                      "Content-Transfer-Encoding: base64", ""]
        body_lines += [blob[i:i + 76] for i in range(0, len(blob), 76)]
        body_lines += ["--" + boundary + "--"]
    elif kind == 6:
        headers += ["MIME-Version: 1.0", "Content-Type: text/html; charset=utf-8"]
        body_lines = ["<html><body><p>Hallo <b>%d</b> — Grüße</p></body></html>" % n]
    else:
        body_lines += ["Lorem ipsum dolor sit amet %d." % i for i in range(rng.randrange(3, 60))]
    text = "\r\n".join(headers) + "\r\n\r\n" + "\r\n".join(body_lines) + "\r\n"
    return text.encode("utf-8")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("user")
    parser.add_argument("count", type=int)
    parser.add_argument("--folder", default="INBOX")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hours", type=float, default=12)
    parser.add_argument("--host", default=os.environ.get("GMAIL_IMAP_HOST", "localhost"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GMAIL_IMAP_PORT", "993")))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    context = ssl.create_default_context(cafile=os.environ["MAILSYNC_TLS_CA_FILE"])
    imap = imaplib.IMAP4_SSL(args.host, args.port, ssl_context=context)
    imap.login(args.user, os.environ["MAILSYNC_STACK_IMAP_PASSWORD"])
    total = 0
    ids = []
    for n in range(args.count):
        reuse = rng.choice(ids) if ids and n % 23 == 22 else None  # same Message-ID, different bytes
        data = message(rng, n, args.user, reuse)
        date = imaplib.Time2Internaldate(time.time() - rng.random() * args.hours * 3600)
        status, _ = imap.append(args.folder, None, date, data)
        if status != "OK":
            raise SystemExit("APPEND failed for message %d" % n)
        total += len(data)
        ids.append("<seed-%d@example.org>" % n)
    imap.logout()
    print(json.dumps({"user": args.user, "count": args.count, "bytes": total}))


if __name__ == "__main__":
    main()
