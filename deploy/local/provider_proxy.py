#!/usr/bin/env python3
"""The local stack's Gmail and Outlook.com behaviour layer (test tooling, loopback only).

In the "providers" profile (deploy/local/up.sh --profile providers) mailsync does not talk to the
two Dovecot servers directly but to this proxy, one listener per server. It speaks IMAPS with the
stack's certificate, passes commands to its Dovecot (over TLS, checked against the stack's CA)
and rewrites or injects answers so that the "gmail" server behaves like imap.gmail.com and the
"outlook" server like outlook.office365.com wherever mailsync can tell the difference. It is a test
double of two servers, not a second product: everything it does is listed here, with its source.

Always on (the providers' documented behaviour):

  both     greeting and CAPABILITY (untagged and [CAPABILITY] codes) as the provider sends them;
           a command the provider lacks is refused as it refuses it
  gmail    capabilities of imap.gmail.com (X-GM-EXT-1, LITERAL-, no LITERAL+, no MULTIAPPEND);
           X-GM-MSGID in FETCH and in UID SEARCH: Dovecot's message GUID (kept by COPY and MOVE,
           so an archived message moved back to the INBOX has a new UID and the same id);
           a refused XOAUTH2 gets the 400 challenge, then NO [AUTHENTICATIONFAILED] Invalid
           credentials (Failure); at most 15 connections per account, the 16th is answered with
           the challenge and NO [ALERT] Too many simultaneous connections. (Failure)
           (imapsync FAQ.Gmail; Google's "IMAP usage limits"; email-oauth2-proxy issues)
  outlook  capabilities of outlook.office365.com (LITERAL+, no MULTIAPPEND, no APPENDLIMIT);
           an APPEND over the size limit: NO Maximum size of appendable message has been
           exceeded; a command line over 10,240 bytes: BAD Command Error. 10; an APPEND naming
           several messages (MULTIAPPEND): BAD Command Argument Error. 11; CREATE of a name that
           exists in another case: NO Mailbox already exists (names are case-insensitive)
           (imapsync FAQ.Office365; imapflow and MailKit issues)

Per test, by rules (POST /rules/<user> on the control port, a JSON list; "*" for every user). A
rule fires on a command of that user ("on": "APPEND", "FETCH", "AUTHENTICATE", "NAMESPACE", ...,
or "*"), after "after" earlier matches (counted over all the user's connections), at most
"times" times (default: always), optionally only on the user's "login"-th connection, only as the
connection's first command after login ("first": true) or for a FETCH whose UIDs include "uid":

  {"action": "respond", "status": "NO"|"BAD", "text": "...", "bye": "..."}
        answers the command itself (it never reaches Dovecot), in order after the commands before
        it; with "bye", sends "* BYE <bye>" and closes (Outlook: "BAD Request is throttled.
        Suggested Backoff Time: 89117 milliseconds" then "* BYE Connection closed. 14")
  {"action": "drop"}                  closes the connection without a word
  {"action": "fetch_fail", "uid": U}  the FETCH is served without U and ends with Gmail's
                                      "NO Some messages could not be FETCHed (Failure)"
  {"action": "nil_body", "uid": U}    U's BODY[] is served as NIL
  {"action": "duplicate", "uid": U}   U's FETCH response is sent twice
  {"action": "regenerate"}            bodies served back with a header added and RFC822.SIZE off
                                      by that much (Outlook serves MIME regenerated from its store)
  {"action": "bye_after_bytes", "bytes": B, "text": "Session expired, please login again"}
                                      after B bytes of answers on the connection: * BYE and close
  {"action": "no_appenduid"}          APPEND's OK without [APPENDUID ...] (whether Outlook.com sends
                                      it is not settled: both must work)
  {"action": "idle_drop", "seconds": T}
                                      a connection silent for T seconds is closed without a BYE

GET /stats/<user> returns what the proxy saw of a user: logins, live and peak connections,
commands by name, rules fired. GET /healthz. Nothing secret is logged or returned.
"""

import argparse
import asyncio
import base64
import json
import re
import socket
import ssl
import sys
import time

CRLF = b"\r\n"
LITERAL_AT_END = re.compile(rb"\{(\d+)(\+)?\}\r\n$")
GMAIL_400 = base64.b64encode(
    b'{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}').decode()

PROFILES = {
    "gmail": {
        "greeting": "* OK Gimap ready for requests from 127.0.0.1 mailsync-local",
        "caps_pre": "IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN X-GM-EXT-1 XYZZY "
                    "SASL-IR AUTH=XOAUTH2 AUTH=PLAIN AUTH=PLAIN-CLIENTTOKEN AUTH=OAUTHBEARER",
        "caps_post": "IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN X-GM-EXT-1 UIDPLUS "
                     "COMPRESS=DEFLATE ENABLE MOVE CONDSTORE ESEARCH UTF8=ACCEPT LIST-EXTENDED "
                     "LIST-STATUS LITERAL- SPECIAL-USE APPENDLIMIT=35651584",
        "max_connections": 15,
        "literal_minus": True,
    },
    "outlook": {
        "greeting": "* OK The Microsoft Exchange IMAP4 service is ready. "
                    "[TQBXADIAUABSADAAMQBDAEEAMAAwADAAMgAuAGUAdQByAHAAcgBkADAAMQAuAHAAcgBvAGQA]",
        "caps_pre": "IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS ID UNSELECT CHILDREN "
                    "IDLE NAMESPACE LITERAL+",
        "caps_post": "IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT "
                     "CLIENTACCESSRULES CLIENTNETWORKPRESENCELOCATION BACKENDAUTHENTICATE CHILDREN "
                     "IDLE NAMESPACE LITERAL+",
        "max_connections": None,  # ~16-20 in reality; the stack's tests share one mailbox
        "max_line": 10240,
    },
}

GUID_ITEM = re.compile(rb"X-GUID ([0-9a-fA-F]{16,32})")
CAPS_CODE = re.compile(rb"\[CAPABILITY [^\]]*\]")
UID_ITEM = re.compile(rb"\bUID (\d+)")
SIZE_ITEM = re.compile(rb"RFC822\.SIZE (\d+)")
BODY_LITERAL = re.compile(rb"BODY\[\] \{(\d+)\}\r\n$")


def msgid_of(guid: bytes) -> int:
    """X-GM-MSGID: 63 bits of Dovecot's message GUID, which COPY and MOVE keep."""
    return int(guid[:16], 16) & 0x7FFF_FFFF_FFFF_FFFF


def uid_set_contains(text: str, uid: int) -> bool:
    for part in text.split(","):
        if ":" in part:
            a, b = part.split(":", 1)
            lo = int(a) if a != "*" else 2**32
            hi = int(b) if b != "*" else 2**32
            if min(lo, hi) <= uid <= max(lo, hi):
                return True
        elif part.isdigit() and int(part) == uid:
            return True
    return False


class Command:
    """One client command: its lines (CRLF included) and the literals between them."""

    def __init__(self, first_line: bytes):
        self.lines = [first_line]
        self.literals = []
        words = first_line.split(b" ", 3)
        self.tag = words[0].decode("latin-1")
        name = words[1].decode("latin-1").upper() if len(words) > 1 else ""
        name = name.rstrip("\r\n")
        self.uid = name == "UID"
        if self.uid and len(words) > 2:
            name = words[2].decode("latin-1").upper().rstrip("\r\n")
        self.name = name
        rest = first_line.split(b" ", 3 if self.uid else 2)
        self.args = rest[-1].rstrip(CRLF).decode("latin-1") if len(rest) > (3 if self.uid else 2) else ""

    def wire(self) -> bytes:
        """The command for Dovecot: every literal non-synchronizing (Dovecot has LITERAL+)."""
        out = []
        for i, line in enumerate(self.lines):
            if i < len(self.literals):
                line = LITERAL_AT_END.sub(lambda m: b"{" + m.group(1) + b"+}\r\n", line)
                out.append(line)
                out.append(self.literals[i])
            else:
                out.append(line)
        return b"".join(out)

    def line_text(self) -> bytes:
        return b"".join(self.lines)


class Rules:
    def __init__(self):
        self.by_user = {}  # user -> [rule]
        self.matched = {}  # (user, index) -> matches so far
        self.fired = {}  # user -> count

    def set(self, user, rules):
        self.by_user[user] = rules
        for key in [k for k in self.matched if k[0] == user]:
            del self.matched[key]
        self.fired[user] = 0

    def of(self, user):
        return [(user, i, r) for i, r in enumerate(self.by_user.get(user, []))] + \
               [("*", i, r) for i, r in enumerate(self.by_user.get("*", []))]

    def setting(self, user, action):
        for _, _, r in self.of(user):
            if r.get("action") == action:
                return r
        return None

    def match(self, session, cmd, actions):
        """The first rule of `actions` that fires for this command, counted."""
        user = session.user or session.login_user(cmd)
        if not user:
            return None
        for owner, i, r in self.of(user):
            if r.get("action") not in actions:
                continue
            on = r.get("on", "*").upper()
            if on != "*" and on != cmd.name:
                continue
            if "login" in r and session.login_number != r["login"]:
                continue
            if r.get("first") and session.commands_after_login != 0:
                continue
            if "uid" in r and r.get("action") in ("respond", "drop"):
                if cmd.name != "FETCH" or not uid_set_contains(cmd.args.split(" ")[0], r["uid"]):
                    continue
            key = (owner, i) if owner == "*" else (user, i)
            seen = self.matched.get(key, 0)
            self.matched[key] = seen + 1
            if seen < r.get("after", 0):
                continue
            if "times" in r and seen - r.get("after", 0) >= r["times"]:
                continue
            self.fired[user] = self.fired.get(user, 0) + 1
            return r
        return None


class Stats:
    def __init__(self):
        self.users = {}

    def of(self, user):
        return self.users.setdefault(user, {"logins": 0, "connections": 0, "peak_connections": 0,
                                            "commands": {}, "refused_connections": 0})


class Proxy:
    def __init__(self, kind, backend_port, ca_file, rules, stats, log):
        self.kind = kind
        self.profile = PROFILES[kind]
        self.backend_port = backend_port
        self.backend_ctx = ssl.create_default_context(cafile=ca_file)
        self.rules = rules
        self.stats = stats
        self.log = log
        self.guids = {}  # X-GM-MSGID -> GUID, learned from FETCH answers (gmail)

    async def serve(self, reader, writer):
        session = Session(self, reader, writer)
        try:
            await session.run()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError):
            pass
        except Exception as e:  # a bug here must not look like a server behaviour silently
            self.log(f"{self.kind}: session error: {type(e).__name__}: {e}")
        finally:
            session.close()


class Session:
    def __init__(self, proxy, reader, writer):
        self.proxy = proxy
        self.kind = proxy.kind
        self.profile = proxy.profile
        self.creader, self.cwriter = reader, writer
        self.breader = self.bwriter = None
        self.user = None
        self.login_number = 0
        self.commands_after_login = 0
        self.authenticated = False
        self.outstanding = {}  # tag -> Command (forwarded, not yet answered)
        self.idle = asyncio.Event()
        self.idle.set()
        self.write_lock = asyncio.Lock()
        self.closed = False
        self.sent_bytes = 0
        self.fetch_effects = []  # rules of outstanding FETCHes: (action, uid)

    # ---- plumbing -------------------------------------------------------------------------
    async def to_client(self, data: bytes):
        async with self.write_lock:
            self.cwriter.write(data)
            self.sent_bytes += len(data)
            await self.cwriter.drain()

    def close(self):
        if self.closed:
            return
        self.closed = True
        if self.authenticated and self.user:
            self.proxy.stats.of(self.user)["connections"] -= 1
        for w in (self.cwriter, self.bwriter):
            if w is not None:
                try:
                    w.close()
                except Exception:
                    pass

    def login_user(self, cmd):
        """The user an AUTHENTICATE or LOGIN command names (none for others)."""
        try:
            if cmd.name == "LOGIN":
                return cmd.args.split(" ")[0].strip('"')
            if cmd.name == "AUTHENTICATE":
                parts = cmd.args.split(" ")
                if len(parts) < 2:
                    return None
                raw = base64.b64decode(parts[1])
                if parts[0].upper() == "XOAUTH2":
                    return raw.split(b"\x01")[0].removeprefix(b"user=").decode()
                if parts[0].upper() == "PLAIN":
                    return raw.split(b"\x00")[1].decode()
                if parts[0].upper() == "OAUTHBEARER":
                    m = re.search(rb"a=([^,]*)", raw)
                    return m.group(1).decode() if m else None
        except Exception:
            return None
        return None

    def capabilities(self):
        return self.profile["caps_post" if self.authenticated else "caps_pre"]

    async def run(self):
        self.breader, self.bwriter = await asyncio.open_connection(
            "127.0.0.1", self.proxy.backend_port, ssl=self.proxy.backend_ctx,
            server_hostname="localhost", limit=1 << 20)
        await self.breader.readline()  # Dovecot's greeting
        await self.to_client(self.profile["greeting"].encode() + CRLF)
        backend = asyncio.ensure_future(self.from_backend())
        client = asyncio.ensure_future(self.from_client())
        done, pending = await asyncio.wait({backend, client}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in done:
            if task.exception() and not isinstance(
                    task.exception(), (ConnectionError, asyncio.IncompleteReadError, OSError)):
                raise task.exception()

    # ---- client -> server -------------------------------------------------------------------
    async def read_client_line(self):
        """The client's next line; b"" once an idle_drop rule (set now or later) says so."""
        started = time.monotonic()
        reading = asyncio.ensure_future(self.creader.readline())
        while True:
            done, _ = await asyncio.wait({reading}, timeout=0.2)
            if done:
                return reading.result()
            idle = self.proxy.rules.setting(self.user, "idle_drop") if self.user else None
            if idle and time.monotonic() - started >= idle["seconds"] and not self.outstanding:
                reading.cancel()
                self.proxy.log(f"{self.kind}: {self.user}: idle {idle['seconds']} s, dropped")
                return b""

    async def from_client(self):
        while True:
            line = await self.read_client_line()
            if not line:
                return
            if not line.endswith(CRLF):
                return
            words = line.split(b" ", 2)
            if len(words) < 2:  # a SASL response or IDLE's DONE: passed through as it is
                self.bwriter.write(line)
                await self.bwriter.drain()
                continue
            cmd = Command(line)
            too_long = False
            while True:
                m = LITERAL_AT_END.search(cmd.lines[-1])
                if not m:
                    break
                size, kind = int(m.group(1)), m.group(2)
                if kind is None:
                    await self.to_client(b"+ Ready for additional command text." + CRLF)
                elif kind == b"+" and self.profile.get("literal_minus") and size > 4096:
                    # RFC 7888: a LITERAL- server refuses a non-synchronizing literal over 4096.
                    await self.to_client(f"{cmd.tag} BAD [TOOBIG] Literal too big\r\n".encode())
                    return
                cmd.literals.append(await self.creader.readexactly(size))
                nxt = await self.creader.readline()
                if not nxt.endswith(CRLF):
                    return
                cmd.lines.append(nxt)
            if self.profile.get("max_line") and any(len(x) > self.profile["max_line"] for x in cmd.lines):
                too_long = True
            if not await self.handle(cmd, too_long):
                return

    async def answer(self, cmd, status, text, bye=None, untagged=()):
        """Answers a command in the proxy, in order after every command before it."""
        await self.idle.wait()
        for line in untagged:
            await self.to_client(line.encode() + CRLF)
        await self.to_client(f"{cmd.tag} {status} {text}".encode() + CRLF)
        if bye:
            await self.to_client(f"* BYE {bye}".encode() + CRLF)
            await self.hang_up()
            return False
        return True

    async def hang_up(self):
        """Closes as a server that stops reading does: what it wrote is delivered (FIN), what the
        client still sends is not read, and the connection is then reset, so a client still
        writing a pipeline sees its write fail with the answers waiting in its receive buffer."""
        transport = self.cwriter.transport
        transport.pause_reading()
        for _ in range(100):
            if transport.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.01)
        sock = transport.get_extra_info("socket")
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        await asyncio.sleep(0.5)
        transport.abort()

    async def handle(self, cmd, too_long):
        stats = self.proxy.stats.of(self.user) if self.user else None
        if stats:
            stats["commands"][cmd.name] = stats["commands"].get(cmd.name, 0) + 1
        rules = self.proxy.rules
        rule = rules.match(self, cmd, ("respond", "drop"))
        if self.authenticated:
            self.commands_after_login += 1
        if rule:
            self.proxy.log(f"{self.kind}: {self.user or '-'}: {cmd.name}: rule {rule}")
            if rule["action"] == "drop":
                await self.idle.wait()
                return False
            return await self.answer(cmd, rule.get("status", "NO"), rule.get("text", ""), rule.get("bye"))

        # Built-in refusals.
        if too_long:
            return await self.answer(cmd, "BAD", "Command Error. 10")
        if cmd.name == "CAPABILITY":
            return await self.answer(cmd, "OK", "CAPABILITY completed.",
                                     untagged=["* CAPABILITY " + self.capabilities()])
        if cmd.name == "COMPRESS":
            return await self.answer(cmd, "NO", "COMPRESS is not offered by this test double")
        if self.kind == "outlook" and cmd.name == "APPEND":
            if len(cmd.literals) > 1:
                return await self.answer(cmd, "BAD", "Command Argument Error. 11")
            if cmd.literals and len(cmd.literals[0]) > self.proxy.append_limit:
                return await self.answer(cmd, "NO", "Maximum size of appendable message has been exceeded.")
        if self.kind == "outlook" and cmd.name == "CREATE" and self.authenticated:
            if await self.exists_in_other_case(cmd):
                return await self.answer(cmd, "NO", "Mailbox already exists.")
        if cmd.name in ("AUTHENTICATE", "LOGIN"):
            user = self.login_user(cmd)
            limit = self.profile.get("max_connections")
            if user and limit and self.proxy.stats.of(user)["connections"] >= limit:
                self.proxy.stats.of(user)["refused_connections"] += 1
                if cmd.name == "AUTHENTICATE":
                    await self.to_client(f"+ {GMAIL_400}".encode() + CRLF)
                    await self.creader.readline()  # the client's empty response
                return await self.answer(cmd, "NO", "[ALERT] Too many simultaneous connections. (Failure)")
            cmd.login_user = user

        # Passed on, rewritten where the provider's syntax differs from Dovecot's.
        if self.kind == "gmail":
            if cmd.name == "FETCH":
                cmd.lines[0] = re.sub(rb"X-GM-MSGID", b"X-GUID", cmd.lines[0], flags=re.I)
                cmd.lines[0] = re.sub(rb" X-GM-(THRID|LABELS)", b"", cmd.lines[0], flags=re.I)
            elif cmd.name == "SEARCH":
                def to_guid(m):
                    guid = self.proxy.guids.get(int(m.group(1)))
                    return b"X-GUID " + guid if guid else b"NOT ALL"
                cmd.lines[0] = re.sub(rb"X-GM-MSGID (\d+)", to_guid, cmd.lines[0], flags=re.I)
        if cmd.name == "FETCH":
            uidset = cmd.args.split(" ")[0]
            cmd.effects = []
            body = b"BODY" in cmd.lines[0].upper()  # rules concern bodies, not RFC822.SIZE alone
            for action in ("fetch_fail", "nil_body", "duplicate", "regenerate"):
                for _, _, r in rules.of(self.user or ""):
                    if r.get("action") != action or not body:
                        continue
                    if "uid" in r and not (cmd.uid and uid_set_contains(uidset, r["uid"])):
                        continue
                    cmd.effects.append(r)
            cmd.failed = False
        self.outstanding[cmd.tag] = cmd
        self.idle.clear()
        self.bwriter.write(cmd.wire())
        await self.bwriter.drain()
        if cmd.name == "AUTHENTICATE" or cmd.name == "IDLE":
            pass  # continuation lines follow; passed through by from_client
        return True

    async def exists_in_other_case(self, cmd):
        """Outlook's folder names are case-insensitive; Dovecot's are not: asks Dovecot's LIST."""
        name = cmd.args.strip()
        if name.startswith('"') and name.endswith('"'):
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        await self.idle.wait()
        tag = "PXY" + cmd.tag
        probe = Command(f'{tag} LIST "" "*"\r\n'.encode())
        probe.internal = []
        self.outstanding[tag] = probe
        self.idle.clear()
        self.bwriter.write(probe.wire())
        await self.bwriter.drain()
        await self.idle.wait()
        for listed in probe.internal:
            m = re.match(rb'\* LIST \([^)]*\) (?:"[^"]*"|NIL) (.*)\r\n$', listed)
            if not m:
                continue
            found = m.group(1).decode("latin-1").strip('"')
            if found != name and found.lower() == name.lower():
                return True
        return False

    # ---- server -> client -------------------------------------------------------------------
    async def read_response(self):
        """One response from Dovecot: its lines and literals, as a list of byte strings."""
        line = await self.breader.readline()
        if not line:
            raise ConnectionError("backend closed")
        parts = [line]
        while True:
            m = LITERAL_AT_END.search(parts[-1])
            if not m or parts[0].startswith(b"+"):
                return parts
            parts.append(await self.breader.readexactly(int(m.group(1))))
            parts.append(await self.breader.readline())

    async def from_backend(self):
        while True:
            parts = await self.read_response()
            first = parts[0]
            if first.startswith(b"* "):
                out = self.untagged(parts)
                if out is None:
                    continue
                if out is False:
                    return
                for piece in out:
                    await self.to_client(piece)
                await self.after_bytes()
                continue
            if first.startswith(b"+"):
                await self.continuation(first)
                continue
            tag = first.split(b" ", 1)[0].decode("latin-1")
            cmd = self.outstanding.pop(tag, None)
            if not self.outstanding:
                self.idle.set()
            if cmd is not None and hasattr(cmd, "internal"):
                continue  # the proxy's own probe
            await self.to_client(self.tagged(cmd, first))
            await self.after_bytes()

    async def after_bytes(self):
        rule = self.proxy.rules.setting(self.user, "bye_after_bytes") if self.user else None
        if rule and self.sent_bytes >= rule["bytes"]:
            await self.to_client(f"* BYE {rule.get('text', 'Session expired, please login again')}".encode() + CRLF)
            raise ConnectionError("bye after bytes")

    async def continuation(self, line):
        auth = next((c for c in self.outstanding.values() if c.name == "AUTHENTICATE"), None)
        if auth is not None and self.kind == "gmail" and line.strip() != b"+":
            line = f"+ {GMAIL_400}".encode() + CRLF  # Gmail's XOAUTH2 error challenge
        await self.to_client(line)

    def current_fetch(self):
        return next((c for c in self.outstanding.values() if c.name == "FETCH"), None)

    def untagged(self, parts):
        first = parts[0]
        if first.startswith(b"* CAPABILITY"):
            return [f"* CAPABILITY {self.capabilities()}".encode() + CRLF]
        for cmd in self.outstanding.values():
            if hasattr(cmd, "internal") and first.startswith(b"* LIST"):
                cmd.internal.append(first)
                return None
        if b" FETCH (" not in first[:40]:
            return [self.rewrite_codes(p) if i % 2 == 0 else p for i, p in enumerate(parts)]
        cmd = self.current_fetch()
        uid = None
        lines = [p for i, p in enumerate(parts) if i % 2 == 0]
        for text in lines:
            m = UID_ITEM.search(text)
            if m:
                uid = int(m.group(1))
                break
        if self.kind == "gmail":
            for i in range(0, len(parts), 2):
                parts[i] = GUID_ITEM.sub(lambda m: self.gm_msgid(m.group(1)), parts[i])
        times = 1
        for rule in getattr(cmd, "effects", []) if cmd else []:
            applies = "uid" not in rule or rule["uid"] == uid
            if not applies:
                continue
            action = rule["action"]
            if action == "fetch_fail":
                cmd.failed = True
                return None
            if action == "nil_body":
                parts = self.nil_body(parts)
            elif action == "duplicate":
                times = 2
            elif action == "regenerate":
                parts = self.regenerate(parts)
        return parts * times

    def gm_msgid(self, guid):
        msgid = msgid_of(guid)
        self.proxy.guids[msgid] = guid
        return b"X-GM-MSGID %d" % msgid

    @staticmethod
    def nil_body(parts):
        """BODY[] {n} + its literal -> BODY[] NIL; parts stay lines and literals in turn."""
        for i in range(0, len(parts) - 2, 2):
            if BODY_LITERAL.search(parts[i]):
                merged = BODY_LITERAL.sub(b"BODY[] NIL", parts[i]).removesuffix(CRLF) + parts[i + 2]
                return parts[:i] + [merged] + parts[i + 3:]
        return parts

    @staticmethod
    def regenerate(parts):
        added = b"X-MS-Exchange-Organization-Regenerated: mailsync-local\r\n"
        out = list(parts)
        for i in range(0, len(out) - 1, 2):
            if BODY_LITERAL.search(out[i]):
                body = added + out[i + 1]
                out[i] = BODY_LITERAL.sub(b"BODY[] {%d}\r\n" % len(body), out[i])
                out[i + 1] = body
        for i in range(0, len(out), 2):
            out[i] = SIZE_ITEM.sub(lambda m: b"RFC822.SIZE %d" % (int(m.group(1)) + len(added)), out[i])
        return out

    def rewrite_codes(self, line):
        return CAPS_CODE.sub(f"[CAPABILITY {self.capabilities()}]".encode(), line)

    def tagged(self, cmd, line):
        tag, status, rest = (line.rstrip(CRLF).split(b" ", 2) + [b"", b""])[:3]
        status = status.upper()
        if cmd is not None and cmd.name in ("AUTHENTICATE", "LOGIN"):
            user = getattr(cmd, "login_user", None)
            if status == b"OK" and user:
                self.user = user
                self.authenticated = True
                s = self.proxy.stats.of(user)
                s["logins"] += 1
                s["connections"] += 1
                s["peak_connections"] = max(s["peak_connections"], s["connections"])
                self.login_number = s["logins"]
                self.commands_after_login = 0
            elif status == b"NO" and self.kind == "gmail":
                return tag + b" NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)" + CRLF
        if (cmd is not None and cmd.name == "APPEND" and status == b"OK" and self.user
                and self.proxy.rules.setting(self.user, "no_appenduid")):
            return re.sub(rb" \[APPENDUID [^\]]*\]", b"", line)
        if cmd is not None and cmd.name == "FETCH" and getattr(cmd, "failed", False) and status == b"OK":
            return tag + b" NO Some messages could not be FETCHed (Failure)" + CRLF
        return self.rewrite_codes(line)


class Control:
    """GET /healthz, POST (or PUT) /rules/<user>, DELETE /rules/<user>, GET /stats/<user>."""

    def __init__(self, rules, stats):
        self.rules, self.stats = rules, stats

    async def serve(self, reader, writer):
        try:
            request = await reader.readline()
            method, path, _ = request.decode("latin-1").split(" ", 2)
            length = 0
            while True:
                header = await reader.readline()
                if header in (b"\r\n", b"\n", b""):
                    break
                name, _, value = header.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            body = await reader.readexactly(length) if length else b""
            code, answer = self.route(method, path, body)
        except Exception as e:
            code, answer = 400, {"error": str(e)}
        data = json.dumps(answer).encode()
        writer.write(b"HTTP/1.0 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                     % (code, len(data)) + data)
        await writer.drain()
        writer.close()

    def route(self, method, path, body):
        if path == "/healthz":
            return 200, {"ok": True}
        if path.startswith("/rules/"):
            user = path[len("/rules/"):]
            if method in ("PUT", "POST"):
                rules = json.loads(body or b"[]")
                if not isinstance(rules, list):
                    raise ValueError("rules must be a JSON list")
                self.rules.set(user, rules)
                return 200, {"user": user, "rules": len(rules)}
            if method == "DELETE":
                self.rules.set(user, [])
                return 200, {"user": user, "rules": 0}
        if path.startswith("/stats/") and method == "GET":
            user = path[len("/stats/"):]
            return 200, dict(self.stats.of(user), rules_fired=self.rules.fired.get(user, 0))
        return 404, {"error": "no such endpoint"}


async def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gmail", nargs=2, type=int, metavar=("LISTEN", "BACKEND"), required=True)
    p.add_argument("--outlook", nargs=2, type=int, metavar=("LISTEN", "BACKEND"), required=True)
    p.add_argument("--control", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--outlook-append-limit", type=int, default=40 << 20)
    a = p.parse_args()

    def log(text):
        print(time.strftime("%Y-%m-%dT%H:%M:%S ") + text, file=sys.stderr, flush=True)

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    server_ctx.load_cert_chain(a.cert, a.key)
    rules, stats = Rules(), Stats()
    servers = []
    for kind, (listen, backend) in (("gmail", a.gmail), ("outlook", a.outlook)):
        proxy = Proxy(kind, backend, a.ca, rules, stats, log)
        proxy.append_limit = a.outlook_append_limit
        servers.append(await asyncio.start_server(proxy.serve, "127.0.0.1", listen, ssl=server_ctx,
                                                  limit=1 << 20, backlog=512))
        log(f"{kind} on 127.0.0.1:{listen} -> dovecot 127.0.0.1:{backend}")
    control = Control(rules, stats)
    servers.append(await asyncio.start_server(control.serve, "127.0.0.1", a.control))
    log(f"control on 127.0.0.1:{a.control}")
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
