#!/usr/bin/env python3
"""Local OAuth2 emulator for the mailsync test stack (loopback only, test tooling).

Plays Google's and Microsoft's token endpoints and answers Dovecot's token introspection for the
access tokens it issued, so that the two local Dovecot servers accept XOAUTH2 / OAUTHBEARER exactly
when the real providers would.

  POST /google/token                                 Google-shaped refresh_token / authorization_code grant
  POST /microsoft/<tenant>/oauth2/v2.0/token         Microsoft-shaped; a refresh grant rotates the refresh token
  GET  /google/authorize, /microsoft/<tenant>/oauth2/v2.0/authorize
                                                     consents at once and redirects to redirect_uri with code+state
                                                     (PKCE S256 checked at the token endpoint)
  POST /introspect/google, /introspect/microsoft     Dovecot passdb oauth2, introspection_mode = post
  POST /admin/revoke   {"refresh_token"|"access_token"|"user": ...}  revoke while tests run
  POST /admin/grant    {"provider", "user"} -> {"refresh_token"}      mint a refresh token
  POST /admin/config   {"expires_in", "fail_next", "delay_ms", "revoke_rotated"[, "user"]}
                       with "user", the knobs apply to that user's refresh grants only, so tests
                       running in parallel do not disturb each other
  GET  /admin/stats    counts of grants and introspections per user (no token values)
  GET  /admin/issued?user=U  the access tokens issued to U (tests scan their output for them)
  GET  /healthz

AWS, for mailsync's credential chain (dynalite accepts any keys, so these only prove the flow):
  POST /admin/aws-identity {"role_arn"} -> {"token"}  mint a web identity token (also valid as a
                                                     container authorization token)
  POST /sts                AssumeRoleWithWebIdentity (form, STS XML answer; InvalidIdentityToken
                           for an unknown token)
  GET  /container-credentials   the ECS / EKS Pod Identity endpoint (Authorization: the token)
  Counts in /admin/stats: sts_calls, container_calls.

AWS Secrets Manager (AWS_ENDPOINT_URL_SECRETSMANAGER=http://127.0.0.1:PORT/): POST / with
X-Amz-Target secretsmanager.GetSecretValue | PutSecretValue | UpdateSecretVersionStage, JSON 1.1.
Unlike dynalite, every request's SigV4 signature is checked as AWS checks it (the canonical request
rebuilt from the signed headers and the body's SHA-256, the key derived from the secret access
key of the stack's keys in the seed or of credentials this emulator issued through STS or the
container endpoint; the session token must match): UnrecognizedClientException for an unknown key,
InvalidSignatureException for a wrong signature. Versions and staging labels as the API reference
describes them: PutSecretValue without VersionStages moves AWSCURRENT (and AWSPREVIOUS), with them
it does not; UpdateSecretVersionStage fails with InvalidParameterException when the label is on
another version than RemoveFromVersionId (API_UpdateSecretVersionStage).
  POST /admin/secret {"name", "string"?, "denied"?, "get_delay_ms"?, "get_barrier"?}  create or set
                     a secret (a new AWSCURRENT version), refuse access to it (AccessDeniedException),
                     delay every GetSecretValue of it, or hold the next N GetSecretValue calls until
                     all N have arrived (at most 5 s): writers that race for certain
  GET  /admin/secret?name=N  {"string", "versions", "arn"}
  Counts in /admin/stats: sm_calls {operation: n}, sm_refused (signature, key, access),
  sm_stage_conflicts.

Errors follow RFC 6749 section 5.2: HTTP 400 {"error": "invalid_grant"} for an unknown, revoked or
expired refresh token, 401 {"error": "invalid_client"} for a wrong client secret.

State is seeded from a JSON file (see up.sh): {"google": {"clients": {id: secret},
"refresh_tokens": {token: user}}, "microsoft": {...}}. Token values never reach the log.
"""

import argparse
import base64
import calendar
import hashlib
import hmac
import json
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROVIDERS = ("google", "microsoft")
SCOPES = {
    "google": "https://mail.google.com/",
    "microsoft": "https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
}


class State:
    def __init__(self, seed):
        self.lock = threading.Lock()
        self.clients = {p: dict(seed.get(p, {}).get("clients", {})) for p in PROVIDERS}
        # refresh token -> {"provider", "user", "client_id", "revoked"}
        self.refresh = {}
        for provider in PROVIDERS:
            for token, user in seed.get(provider, {}).get("refresh_tokens", {}).items():
                self.refresh[token] = {"provider": provider, "user": user, "revoked": False}
        self.access = {}  # access token -> {"provider", "user", "expires_at", "revoked"}
        self.issued = {}  # user -> access tokens issued, for tests that scan output for secrets
        self.codes = {}   # authorization code -> {"provider", "user", "client_id", "redirect_uri", "challenge"}
        self.knobs = {None: {"expires_in": 3599, "fail_next": 0, "delay_ms": 0, "revoke_rotated": False}}
        self.stats = {"token_requests": 0, "token_errors": 0, "introspections": 0,
                      "introspections_active": 0, "grants_by_user": {}, "sts_calls": 0,
                      "container_calls": 0}
        self.aws_identities = {}  # web identity token -> role arn
        # access key id -> {"secret", "session_token"}: the stack's keys and those issued here
        self.aws_keys = {k: {"secret": v, "session_token": None}
                         for k, v in seed.get("aws", {}).get("keys", {}).items()}
        self.secrets = {}  # name -> {"arn", "versions": {id: {"string", "stages"}}, "denied", "get_delay_ms"}
        self.stats.update({"sm_calls": {}, "sm_refused": 0, "sm_stage_conflicts": 0})


class Handler(BaseHTTPRequestHandler):
    server_version = "mailsync-oauth-emulator/1"
    protocol_version = "HTTP/1.1"

    # --- plumbing -------------------------------------------------------------------------------

    def log_message(self, fmt, *args):  # request lines only; paths carry no token values
        sys.stderr.write("%s %s\n" % (time.strftime("%H:%M:%S"), fmt % args))

    @property
    def state(self):
        return self.server.state

    def reply(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype == "application/json":
            try:
                return json.loads(raw or b"{}")
            except ValueError:
                return {}
        return {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode(), keep_blank_values=True).items()}

    def oauth_error(self, status, error, description):
        with self.state.lock:
            self.state.stats["token_errors"] += 1
        self.reply(status, {"error": error, "error_description": description})

    # --- routing --------------------------------------------------------------------------------

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        if url.path == "/healthz":
            return self.reply(200, {"ok": True})
        if url.path == "/admin/stats":
            with self.state.lock:
                return self.reply(200, self.state.stats)
        if url.path == "/container-credentials":
            return self.container_credentials()
        if url.path == "/admin/secret":
            with self.state.lock:
                secret = self.state.secrets.get(query.get("name", ""))
                if secret is None:
                    return self.reply(404, {"error": "no such secret"})
                current = self.current_version(secret)
                return self.reply(200, {"string": secret["versions"][current]["string"],
                                        "versions": len(secret["versions"]), "arn": secret["arn"],
                                        "stages": {v: sorted(d["stages"]) for v, d in secret["versions"].items()}})
        if url.path == "/admin/issued":
            with self.state.lock:
                return self.reply(200, {"access_tokens": self.state.issued.get(query.get("user", ""), [])})
        provider = self.provider_of(parts, "authorize")
        if provider:
            return self.authorize(provider, query)
        self.reply(404, {"error": "not_found"})

    def do_POST(self):
        parts = [p for p in urllib.parse.urlsplit(self.path).path.split("/") if p]
        target = self.headers.get("X-Amz-Target") or ""
        if not parts and target.startswith("secretsmanager."):
            length = int(self.headers.get("Content-Length") or 0)
            return self.secretsmanager(target[len("secretsmanager."):], self.rfile.read(length) if length else b"")
        body = self.read_body()
        if parts == ["admin", "secret"]:
            return self.admin_secret(body)
        if parts == ["sts"]:
            return self.sts(body)
        if parts == ["admin", "aws-identity"]:
            token = "emu-web-identity." + secrets.token_urlsafe(24)
            with self.state.lock:
                self.state.aws_identities[token] = body.get("role_arn", "arn:aws:iam::000000000000:role/mailsync")
            return self.reply(200, {"token": token})
        if len(parts) == 2 and parts[0] == "introspect" and parts[1] in PROVIDERS:
            return self.introspect(parts[1], body)
        if len(parts) == 2 and parts[0] == "admin":
            handler = {"revoke": self.admin_revoke, "grant": self.admin_grant,
                       "config": self.admin_config}.get(parts[1])
            if handler:
                return handler(body)
        provider = self.provider_of(parts, "token")
        if provider:
            return self.token(provider, body)
        self.reply(404, {"error": "not_found"})

    # --- AWS credentials ------------------------------------------------------------------------

    def aws_credentials(self):
        expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        key, secret, token = ("ASIAEMU" + secrets.token_hex(6).upper(), secrets.token_urlsafe(30),
                              "emu-session." + secrets.token_urlsafe(40))
        with self.state.lock:  # Secrets Manager accepts what STS and the container endpoint issued
            self.state.aws_keys[key] = {"secret": secret, "session_token": token}
        return key, secret, token, expiration

    def sts(self, body):
        with self.state.lock:
            self.state.stats["sts_calls"] += 1
            role = self.state.aws_identities.get(body.get("WebIdentityToken", ""))
        if body.get("Action") != "AssumeRoleWithWebIdentity" or role is None or role != body.get("RoleArn"):
            data = ("<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>"
                    "<Message>Couldn't retrieve verification key from your identity provider</Message>"
                    "</Error></ErrorResponse>").encode()
            status = 400
        else:
            key, secret, token, expiration = self.aws_credentials()
            data = ("<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
                    f"<SessionToken>{token}</SessionToken><SecretAccessKey>{secret}</SecretAccessKey>"
                    f"<Expiration>{expiration}</Expiration><AccessKeyId>{key}</AccessKeyId>"
                    "</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>").encode()
            status = 200
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def container_credentials(self):
        with self.state.lock:
            self.state.stats["container_calls"] += 1
            known = self.headers.get("Authorization", "") in self.state.aws_identities
        if not known:
            return self.reply(401, {"code": "AccessDenied", "message": "unknown authorization token"})
        key, secret, token, expiration = self.aws_credentials()
        self.reply(200, {"AccessKeyId": key, "SecretAccessKey": secret, "Token": token,
                         "Expiration": expiration})

    # --- AWS Secrets Manager ---------------------------------------------------------------------

    def sm_error(self, status, aws_type, message):
        data = json.dumps({"__type": aws_type, "Message": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def sm_reply(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def check_sigv4(self, raw):
        """None when the request is signed by a known key, else (type, message) as AWS answers."""
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return "MissingAuthenticationTokenException", "Missing Authentication Token"
        fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(",")
                      if "=" in part)
        try:
            key_id, date, region, service, terminal = fields["Credential"].split("/")
            signed = fields["SignedHeaders"].split(";")
            signature = fields["Signature"]
        except (KeyError, ValueError):
            return "IncompleteSignatureException", "Authorization header requires Credential, SignedHeaders, Signature"
        with self.state.lock:
            known = self.state.aws_keys.get(key_id)
        if known is None:
            return "UnrecognizedClientException", "The security token included in the request is invalid."
        if known["session_token"] is not None and self.headers.get("X-Amz-Security-Token") != known["session_token"]:
            return "UnrecognizedClientException", "The security token included in the request is invalid."
        if service != "secretsmanager" or terminal != "aws4_request" or "host" not in signed:
            return "IncompleteSignatureException", "Credential should be scoped to secretsmanager/aws4_request"
        amz_date = self.headers.get("X-Amz-Date") or ""
        if not amz_date.startswith(date):
            return "InvalidSignatureException", "Date in Credential scope does not match YYYYMMDD from X-Amz-Date"
        try:
            skew = abs(time.time() - calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ")))
        except ValueError:
            skew = 1e9
        if skew > 15 * 60:
            return "InvalidSignatureException", "Signature expired: the request time is too far from now"
        canonical_headers = "".join(
            "%s:%s\n" % (name, " ".join((self.headers.get(name) or "").split())) for name in signed)
        canonical = "\n".join(["POST", urllib.parse.urlsplit(self.path).path or "/", "", canonical_headers,
                               ";".join(signed), hashlib.sha256(raw).hexdigest()])
        scope = "/".join([date, region, service, terminal])
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        k = ("AWS4" + known["secret"]).encode()
        for part in (date, region, service, terminal):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest(), signature):
            return ("InvalidSignatureException",
                    "The request signature we calculated does not match the signature you provided. "
                    "Check your AWS Secret Access Key and signing method.")
        return None

    @staticmethod
    def current_version(secret):
        return next(v for v, d in secret["versions"].items() if "AWSCURRENT" in d["stages"])

    @staticmethod
    def move_stage(secret, stage, to_version):
        for data in secret["versions"].values():
            data["stages"].discard(stage)
        secret["versions"][to_version]["stages"].add(stage)

    def new_version(self, secret, version_id, string, stages):
        secret["versions"][version_id] = {"string": string, "stages": set()}
        if "AWSCURRENT" in stages and secret["versions"].keys() - {version_id}:
            self.move_stage(secret, "AWSPREVIOUS", self.current_version(secret))
        for stage in stages:
            self.move_stage(secret, stage, version_id)
        self.prune(secret)

    @staticmethod
    def prune(secret):
        # A version without labels is "deprecated"; Secrets Manager deletes such versions only when
        # a secret has more than about 100 versions (Secrets Manager quotas), oldest first.
        unlabeled = [v for v, d in secret["versions"].items() if not d["stages"]]
        while len(secret["versions"]) > 100 and unlabeled:
            del secret["versions"][unlabeled.pop(0)]

    def find_secret(self, secret_id):
        for name, secret in self.state.secrets.items():
            if secret_id in (name, secret["arn"]) or secret["arn"].startswith(secret_id + "-") and secret_id.startswith("arn:"):
                return secret
        return None

    def secretsmanager(self, operation, raw):
        refused = self.check_sigv4(raw)
        if refused:
            with self.state.lock:
                self.state.stats["sm_refused"] += 1
            return self.sm_error(400, *refused)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self.sm_error(400, "SerializationException", "the body is not JSON")
        secret_id = body.get("SecretId", "")
        with self.state.lock:
            calls = self.state.stats["sm_calls"]
            calls[operation] = calls.get(operation, 0) + 1
            secret = self.find_secret(secret_id)
            delay = secret["get_delay_ms"] if secret and operation == "GetSecretValue" else 0
            barrier = secret.get("barrier") if secret and operation == "GetSecretValue" else None
        if operation not in ("GetSecretValue", "PutSecretValue", "UpdateSecretVersionStage"):
            return self.sm_error(400, "UnknownOperationException", "")
        if secret is None:
            return self.sm_error(400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
        if secret["denied"]:
            with self.state.lock:
                self.state.stats["sm_refused"] += 1
            return self.sm_error(400, "AccessDeniedException",
                                 "User: arn:aws:sts::000000000000:assumed-role/mailsync/worker is not authorized to "
                                 "perform: secretsmanager:%s on resource: %s because no identity-based policy allows "
                                 "the secretsmanager:%s action" % (operation, secret_id, operation))
        if delay:
            time.sleep(delay / 1000)
        if barrier is not None:
            try:
                barrier.wait(timeout=5)
            except threading.BrokenBarrierError:
                pass
            with self.state.lock:
                if secret.get("barrier") is barrier:
                    secret["barrier"] = None  # once: a reader that comes later is not held
        with self.state.lock:
            if operation == "GetSecretValue":
                version = body.get("VersionId")
                if version is None:
                    stage = body.get("VersionStage", "AWSCURRENT")
                    version = next((v for v, d in secret["versions"].items() if stage in d["stages"]), None)
                data = secret["versions"].get(version)
                if data is None:
                    return self.sm_error(400, "ResourceNotFoundException",
                                         "Secrets Manager can't find the specified secret value for staging label or version.")
                return self.sm_reply({"ARN": secret["arn"], "Name": secret["name"], "VersionId": version,
                                      "SecretString": data["string"], "VersionStages": sorted(data["stages"]),
                                      "CreatedDate": time.time()})
            if operation == "PutSecretValue":
                token = body.get("ClientRequestToken") or secrets.token_hex(16)
                string = body.get("SecretString")
                if not isinstance(string, str) or not 32 <= len(token) <= 64:
                    return self.sm_error(400, "InvalidParameterException",
                                         "SecretString and a ClientRequestToken of 32 to 64 characters are required")
                if token in secret["versions"]:
                    if secret["versions"][token]["string"] != string:
                        return self.sm_error(400, "ResourceExistsException",
                                             "A resource with the ID you requested already exists.")
                else:
                    self.new_version(secret, token, string, body.get("VersionStages") or ["AWSCURRENT"])
                return self.sm_reply({"ARN": secret["arn"], "Name": secret["name"], "VersionId": token,
                                      "VersionStages": sorted(secret["versions"].get(token, {}).get("stages", []))})
            # UpdateSecretVersionStage
            stage, move_to, remove_from = body.get("VersionStage"), body.get("MoveToVersionId"), body.get("RemoveFromVersionId")
            holder = next((v for v, d in secret["versions"].items() if stage in d["stages"]), None)
            if move_to not in secret["versions"]:
                return self.sm_error(400, "InvalidParameterException", "MoveToVersionId names no version of this secret")
            if holder is not None and holder != move_to and holder != remove_from:
                self.state.stats["sm_stage_conflicts"] += 1
                return self.sm_error(400, "InvalidParameterException",
                                     "The staging label %s is currently attached to version %s, so you must explicitly "
                                     "reference that version in RemoveFromVersionId." % (stage, holder))
            if stage == "AWSCURRENT" and holder is not None and holder != move_to:
                self.move_stage(secret, "AWSPREVIOUS", holder)
            self.move_stage(secret, stage, move_to)
            self.prune(secret)
            return self.sm_reply({"ARN": secret["arn"], "Name": secret["name"]})

    def admin_secret(self, body):
        name = body.get("name", "")
        with self.state.lock:
            secret = self.state.secrets.setdefault(name, {
                "name": name, "versions": {}, "denied": False, "get_delay_ms": 0,
                "arn": "arn:aws:secretsmanager:us-east-1:000000000000:secret:%s-%s" % (name, secrets.token_hex(3))})
            if "string" in body:
                self.new_version(secret, secrets.token_hex(16), body["string"], ["AWSCURRENT"])
            for knob in ("denied", "get_delay_ms"):
                if knob in body:
                    secret[knob] = body[knob]
            if body.get("get_barrier"):
                secret["barrier"] = threading.Barrier(int(body["get_barrier"]))
            return self.reply(200, {"arn": secret["arn"]})

    @staticmethod
    def provider_of(parts, endpoint):
        """/google/<endpoint> or /microsoft/<tenant>/oauth2/v2.0/<endpoint>."""
        if parts == ["google", endpoint]:
            return "google"
        if len(parts) == 5 and parts[0] == "microsoft" and parts[2:] == ["oauth2", "v2.0", endpoint]:
            return "microsoft"
        return None

    # --- token endpoint -------------------------------------------------------------------------

    def knobs_for(self, user):
        """The user's own knobs if a test set any, else the global ones (caller holds the lock)."""
        return self.state.knobs.get(user, self.state.knobs[None])

    def token(self, provider, body):
        st = self.state
        with st.lock:
            st.stats["token_requests"] += 1
            entry = st.refresh.get(body.get("refresh_token", ""))
            knobs = self.knobs_for(entry["user"] if entry else None)
            delay, fail = knobs["delay_ms"], knobs["fail_next"] > 0
            if fail:
                knobs["fail_next"] -= 1
        if delay:
            time.sleep(delay / 1000.0)
        if fail:
            return self.oauth_error(503, "temporarily_unavailable", "emulated outage")

        client_id = body.get("client_id", "")
        secret = body.get("client_secret")
        with st.lock:
            known_secret = st.clients[provider].get(client_id)
        if known_secret is None or (secret is not None and secret != known_secret):
            return self.oauth_error(401, "invalid_client", "unknown client or wrong client secret")

        grant = body.get("grant_type")
        if grant == "refresh_token":
            return self.refresh_grant(provider, client_id, body)
        if grant == "authorization_code":
            return self.code_grant(provider, client_id, body)
        return self.oauth_error(400, "unsupported_grant_type", "grant_type must be refresh_token or authorization_code")

    def issue(self, provider, user, rotate_from=None):
        st = self.state
        access = "ya29.emu-" + secrets.token_urlsafe(24) if provider == "google" else "EwB.emu-" + secrets.token_urlsafe(32)
        expires_in = self.knobs_for(user)["expires_in"]
        st.access[access] = {"provider": provider, "user": user,
                             "expires_at": time.time() + expires_in, "revoked": False}
        grants = st.stats["grants_by_user"]
        grants[user] = grants.get(user, 0) + 1
        st.issued.setdefault(user, []).append(access)
        response = {"access_token": access, "expires_in": expires_in, "token_type": "Bearer",
                    "scope": SCOPES[provider]}
        if provider == "microsoft":
            response["ext_expires_in"] = expires_in
            new_refresh = "M.emu-" + secrets.token_urlsafe(32)
            st.refresh[new_refresh] = {"provider": provider, "user": user, "revoked": False}
            if rotate_from is not None and self.knobs_for(user)["revoke_rotated"]:
                st.refresh[rotate_from]["revoked"] = True
            response["refresh_token"] = new_refresh
        return response

    def refresh_grant(self, provider, client_id, body):
        st = self.state
        token = body.get("refresh_token", "")
        with st.lock:
            entry = st.refresh.get(token)
            if entry is None or entry["provider"] != provider or entry["revoked"]:
                bad = True
            else:
                bad = False
                response = self.issue(provider, entry["user"], rotate_from=token)
        if bad:
            return self.oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        self.reply(200, response)

    def code_grant(self, provider, client_id, body):
        st = self.state
        with st.lock:
            entry = st.codes.pop(body.get("code", ""), None)
        if entry is None or entry["provider"] != provider or entry["client_id"] != client_id:
            return self.oauth_error(400, "invalid_grant", "unknown or used authorization code")
        if body.get("redirect_uri") != entry["redirect_uri"]:
            return self.oauth_error(400, "invalid_grant", "redirect_uri does not match the authorization request")
        verifier = body.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if entry["challenge"] and digest != entry["challenge"]:
            return self.oauth_error(400, "invalid_grant", "PKCE verification failed")
        with st.lock:
            response = self.issue(provider, entry["user"])
            if provider == "google":  # Google returns a refresh token on the code exchange
                refresh = "1//emu-" + secrets.token_urlsafe(32)
                st.refresh[refresh] = {"provider": provider, "user": entry["user"], "revoked": False}
                response["refresh_token"] = refresh
        self.reply(200, response)

    def authorize(self, provider, query):
        redirect = query.get("redirect_uri", "")
        if not redirect.startswith("http://127.0.0.1:") and not redirect.startswith("http://localhost:"):
            return self.reply(400, {"error": "invalid_request", "error_description": "redirect_uri must be loopback"})
        if query.get("code_challenge") and query.get("code_challenge_method") != "S256":
            return self.reply(400, {"error": "invalid_request", "error_description": "only S256 PKCE"})
        with self.state.lock:
            if query.get("client_id") not in self.state.clients[provider]:
                return self.reply(400, {"error": "unauthorized_client"})
            code = secrets.token_urlsafe(16)
            self.state.codes[code] = {"provider": provider, "client_id": query["client_id"],
                                      "user": query.get("login_hint") or self.server.default_user[provider],
                                      "redirect_uri": redirect, "challenge": query.get("code_challenge", "")}
        location = redirect + ("&" if "?" in redirect else "?") + urllib.parse.urlencode(
            {"code": code, "state": query.get("state", "")})
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    # --- introspection (Dovecot) ----------------------------------------------------------------

    def introspect(self, provider, body):
        token = body.get("token", "")
        if not token:
            auth = self.headers.get("Authorization", "")
            token = auth[7:] if auth.startswith("Bearer ") else ""
        st = self.state
        with st.lock:
            st.stats["introspections"] += 1
            entry = st.access.get(token)
            active = (entry is not None and entry["provider"] == provider and not entry["revoked"]
                      and entry["expires_at"] > time.time())
            if active:
                st.stats["introspections_active"] += 1
        if not active:
            return self.reply(200, {"active": False})
        self.reply(200, {"active": True, "username": entry["user"], "scope": SCOPES[provider],
                         "exp": int(entry["expires_at"])})

    # --- admin ----------------------------------------------------------------------------------

    def admin_revoke(self, body):
        st = self.state
        revoked = 0
        with st.lock:
            if "refresh_token" in body and body["refresh_token"] in st.refresh:
                st.refresh[body["refresh_token"]]["revoked"] = True
                revoked += 1
            if "access_token" in body and body["access_token"] in st.access:
                st.access[body["access_token"]]["revoked"] = True
                revoked += 1
            if "user" in body:
                for table in (st.refresh, st.access):
                    for entry in table.values():
                        if entry["user"] == body["user"] and not entry["revoked"]:
                            entry["revoked"] = True
                            revoked += 1
        self.reply(200, {"revoked": revoked})

    def admin_grant(self, body):
        provider, user = body.get("provider"), body.get("user")
        if provider not in PROVIDERS or not user:
            return self.reply(400, {"error": "provider (google|microsoft) and user are required"})
        token = ("1//emu-" if provider == "google" else "M.emu-") + secrets.token_urlsafe(32)
        with self.state.lock:
            self.state.refresh[token] = {"provider": provider, "user": user, "revoked": False}
        self.reply(200, {"refresh_token": token})

    def admin_config(self, body):
        st = self.state
        with st.lock:
            user = body.get("user")
            knobs = st.knobs.setdefault(user, dict(st.knobs[None]))
            for key in ("expires_in", "fail_next", "delay_ms"):
                if key in body:
                    knobs[key] = int(body[key])
            if "revoke_rotated" in body:
                knobs["revoke_rotated"] = bool(body["revoke_rotated"])
            current = dict(knobs)
        self.reply(200, current)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seed", required=True, help="JSON file with clients and refresh tokens")
    args = parser.parse_args()
    with open(args.seed) as f:
        seed = json.load(f)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.state = State(seed)
    server.default_user = {p: next(iter(seed.get(p, {}).get("refresh_tokens", {}).values()), "")
                           for p in PROVIDERS}
    sys.stderr.write("oauth emulator listening on 127.0.0.1:%d\n" % args.port)
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
