"""An OAuth 2.0 token introspection server (RFC 7662) for the oauth2_introspection tests.

    idp = IntrospectionIdp(client_id="gateway", client_secret="s3cret")  # 127.0.0.1, free port
    idp.url                                 # http://127.0.0.1:PORT/introspect
    idp.set_token("tok-1", {"active": True, "sub": "alice", "scope": "read", "exp": now + 60})
    idp.set_token("tok-2", b"raw body")     # bytes: served as they are (status 200, JSON type)
    idp.remove_token("tok-1")               # unknown again: {"active": false}
    idp.set_mode("status500") / ("garbage") / ("slow", delay=3) / ("normal")
    idp.count("tok-1")                      # POST /introspect requests naming that token
    idp.count()                             # every request to any path
    idp.requests                            # list of Introspection records, in arrival order
    idp.stop(); idp.start()                 # down (connection refused), then up ON THE SAME PORT
    idp.close()                             # stops for good (also after `lifetime` seconds)

Protocol, as RFC 7662 §2 describes it:
  * POST /introspect, Content-Type application/x-www-form-urlencoded, body `token=...` and maybe
    `token_type_hint=...`; anything else at that path -> 400 {"error": "invalid_request"}
    (a GET -> 405; another path -> 404).
  * The client authenticates with HTTP Basic (client_id:client_secret, each form-urlencoded first
    as RFC 6749 §2.3.1 says); missing or wrong -> 401 {"error": "invalid_client"} with
    `WWW-Authenticate: Basic realm="idp"`. Requests with wrong credentials are counted too.
  * A known token -> 200 and the JSON set for it; an unknown one -> 200 {"active": false}.

Every response carries "Connection: close" (the connection is closed after it), so a stopped IdP
really is unreachable: no kept-alive connection survives stop(). stop() also cuts connections
that are still being answered (a slow answer in progress is abandoned, not finished).
"""
import base64
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import util
from .restartable import RestartableServer

INTROSPECT_PATH = "/introspect"

MODES = {
    "normal": "answer from the token table",
    "status500": "HTTP 500 with a small JSON body (after checking nothing)",
    "garbage": "200, Content-Type application/json, a body that is not JSON",
    "slow": "sleep `delay` seconds, then answer normally",
}


class Introspection:
    """One request as the IdP received it."""

    def __init__(self, when, method, target, headers, body, mode):
        self.time = when
        self.method = method
        self.target = target              # as sent, query included
        self.path = target.split("?", 1)[0]
        self.headers = headers            # list of (name, value)
        self.body = body                  # raw bytes
        self.mode = mode                  # the IdP's mode when it arrived
        self.form = {}                    # name -> list of values
        try:
            self.form = urllib.parse.parse_qs(body.decode("ascii"), keep_blank_values=True,
                                              strict_parsing=False)
        except (UnicodeDecodeError, ValueError):
            pass
        self.client = None                # (client_id, client_secret) from HTTP Basic, or None
        auth = self.header("Authorization") or ""
        scheme, _, rest = auth.partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(rest.strip(), validate=True).decode("utf-8")
                cid, sep, secret = decoded.partition(":")
                if sep:
                    self.client = (urllib.parse.unquote_plus(cid),
                                   urllib.parse.unquote_plus(secret))
            except (ValueError, UnicodeDecodeError):
                pass
        self.authorized = False           # set by the server: the client credentials matched
        self.status = None                # the status answered (None: abandoned)

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    @property
    def token(self):
        vals = self.form.get("token")
        return vals[0] if vals else None

    @property
    def token_type_hint(self):
        vals = self.form.get("token_type_hint")
        return vals[0] if vals else None

    def __repr__(self):
        return (f"<Introspection {self.method} {self.path} client={self.client!r} "
                f"form={self.form!r} status={self.status}>")


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False

    def __init__(self, idp, address):
        self.idp = idp
        super().__init__(address, _Handler)

    def process_request(self, request, client_address):
        with self.idp._lock:
            self.idp._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.idp._lock:
            self.idp._open.discard(request)
        super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "test-introspection"
    sys_version = ""
    timeout = 30

    def log_message(self, fmt, *args):  # quiet
        pass

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > 1 << 20:
            raise ValueError("body too large")
        data = b""
        while len(data) < n:
            piece = self.rfile.read(n - len(data))
            if not piece:
                break
            data += piece
        return data

    def _handle(self):
        idp = self.server.idp
        self.close_connection = True
        try:
            body = self._read_body()
        except (ValueError, OSError):
            return
        rec = Introspection(time.monotonic(), self.command, self.path, list(self.headers.items()),
                            body, None)
        path = rec.path
        mode, delay = idp._record(rec)
        if path != INTROSPECT_PATH:
            self._send(rec, 404, {"error": "not_found"})
            return
        if self.command != "POST":
            self._send(rec, 405, {"error": "invalid_request"}, extra=[("Allow", "POST")])
            return
        if mode == "slow":
            if idp._stopping.wait(delay):
                return  # stopped while sleeping: abandon the answer
        if mode == "status500":
            self._send(rec, 500, {"error": "server_error"})
            return
        if rec.client != (idp.client_id, idp.client_secret):
            self._send(rec, 401, {"error": "invalid_client"},
                       extra=[("WWW-Authenticate", 'Basic realm="idp"')])
            return
        rec.authorized = True
        ctype = (rec.header("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded" or rec.token is None:
            self._send(rec, 400, {"error": "invalid_request"})
            return
        if mode == "garbage":
            self._send(rec, 200, b"<html>this is {not json")
            return
        self._send(rec, 200, idp._answer(rec.token))

    do_POST = _handle  # noqa: N815 - http.server naming
    do_GET = _handle  # noqa: N815

    def _send(self, rec, status, payload, extra=()):
        body = payload if isinstance(payload, (bytes, bytearray)) else json.dumps(payload).encode()
        rec.status = status
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for k, v in extra:
                self.send_header(k, v)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass


class IntrospectionIdp(RestartableServer):
    thread_name = "introspection-idp"
    def __init__(self, client_id="gateway", client_secret="s3cret", tokens=None, port=None,
                 lifetime=180.0):
        self.client_id = client_id
        self.client_secret = client_secret
        self._lock = threading.Lock()
        self._tokens = dict(tokens or {})
        self._mode = "normal"
        self._delay = 0.0
        self.requests = []  # Introspection records, in arrival order
        self._open = set()
        self._server = None
        self._thread = None
        self._stopping = threading.Event()
        self._closed = False
        self.port = port or util.free_port()
        self._deadline_timer = threading.Timer(lifetime, self.close)
        self._deadline_timer.daemon = True
        self._deadline_timer.start()
        self.start()

    # ----- configuration ----------------------------------------------------------------------
    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}{INTROSPECT_PATH}"

    def set_token(self, token, response):
        """What the IdP answers for `token`: a dict (sent as JSON) or raw bytes."""
        with self._lock:
            self._tokens[token] = response

    def remove_token(self, token):
        with self._lock:
            self._tokens.pop(token, None)

    def set_mode(self, mode, delay=None):
        if mode not in MODES:
            raise ValueError(f"unknown IdP mode {mode!r}; one of {sorted(MODES)}")
        with self._lock:
            self._mode = mode
            if delay is not None:
                self._delay = float(delay)
            elif mode == "slow" and not self._delay:
                self._delay = 5.0

    def _record(self, rec):
        with self._lock:
            rec.mode = self._mode
            self.requests.append(rec)
            return self._mode, self._delay

    def _answer(self, token):
        with self._lock:
            resp = self._tokens.get(token)
        if resp is None:
            return {"active": False}
        return resp

    # ----- inspection -------------------------------------------------------------------------
    def snapshot(self):
        with self._lock:
            return list(self.requests)

    def count(self, token=None):
        """Requests that named `token` in their form body (all requests when token is None)."""
        reqs = self.snapshot()
        if token is None:
            return len(reqs)
        return sum(1 for r in reqs if r.token == token)

    def last(self, token=None):
        reqs = [r for r in self.snapshot() if token is None or r.token == token]
        return reqs[-1] if reqs else None

    def wait_for_requests(self, n, token=None, timeout=5.0):
        return util.wait_until(lambda: self.count(token) >= n, timeout,
                               message=f"{n} introspection requests"
                               + (f" for {token!r}" if token else ""))

    def _new_server(self):
        return _Server(self, ("127.0.0.1", self.port))
