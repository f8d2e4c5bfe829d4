"""A tiny identity provider for the jwks_url tests: serves a mutable JWKS at /jwks.json.

    idp = Idp(keys=[rsa.jwk("k1")])      # started on 127.0.0.1 and a free port
    idp.url                              # http://127.0.0.1:PORT/jwks.json
    idp.set_keys([rsa.jwk("k1"), rsa2.jwk("k2")])
    idp.set_mode("status500") / ("garbage") / ("empty") / ("unusable") / ("slow", delay=5)
    idp.count()                          # requests for /jwks.json so far (counted on arrival)
    idp.stop(); idp.start()              # down, then up again ON THE SAME PORT
    idp.close()                          # stops for good (also after `lifetime` seconds)

Every response carries "Connection: close" (the connection is closed after it), so a stopped IdP
really is unreachable: no kept-alive connection survives stop(). stop() also cuts connections that are
still being answered (a slow answer in progress is abandoned, not finished).
"""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import util
from .restartable import RestartableServer

JWKS_PATH = "/jwks.json"

MODES = {
    "normal": "the current key set, 200",
    "status500": "HTTP 500 with a small JSON body",
    "garbage": "200, Content-Type application/json, a body that is not JSON",
    "notjwks": "200, valid JSON that is not a JWKS ({\"hello\": \"world\"})",
    "empty": "200, {\"keys\": []}",
    "unusable": "200, a JWKS whose only key has an unsupported kty",
    "slow": "sleep `delay` seconds, then the current key set, 200",
}


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
    server_version = "test-idp"
    sys_version = ""
    timeout = 30

    def log_message(self, fmt, *args):  # quiet
        pass

    def do_GET(self):  # noqa: N802 - http.server naming
        idp = self.server.idp
        path = self.path.split("?", 1)[0]
        mode, delay, body = idp._record(path, self.headers)
        self.close_connection = True
        if path != JWKS_PATH:
            self._send(404, b'{"error":"not found"}')
            return
        if mode == "slow":
            if idp._stopping.wait(delay):
                self.close_connection = True
                return  # stopped while sleeping: abandon the answer
        if mode == "status500":
            self._send(500, b'{"error":"internal"}')
        elif mode == "garbage":
            self._send(200, b"<html>this is {not json")
        elif mode == "notjwks":
            self._send(200, b'{"hello": "world"}')
        elif mode == "empty":
            self._send(200, b'{"keys": []}')
        elif mode == "unusable":
            self._send(200, json.dumps({"keys": [{"kty": "DSA", "kid": "dsa1", "y": "AQAB"}]})
                       .encode())
        else:
            self._send(200, body)

    def _send(self, status, body):
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass


class Idp(RestartableServer):
    thread_name = "idp"
    def __init__(self, keys=None, port=None, lifetime=180.0):
        self._lock = threading.Lock()
        self._keys = list(keys or [])
        self._mode = "normal"
        self._delay = 0.0
        self._counts = {}
        self.log = []  # (monotonic time, path, mode) of every request, in arrival order
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
        return f"http://127.0.0.1:{self.port}{JWKS_PATH}"

    def set_keys(self, keys):
        """Replaces the served key set (a list of JWK dicts) for every later request."""
        with self._lock:
            self._keys = list(keys)

    def set_mode(self, mode, delay=None):
        if mode not in MODES:
            raise ValueError(f"unknown IdP mode {mode!r}; one of {sorted(MODES)}")
        with self._lock:
            self._mode = mode
            if delay is not None:
                self._delay = float(delay)
            elif mode == "slow" and not self._delay:
                self._delay = 5.0

    def _record(self, path, headers):
        with self._lock:
            self._counts[path] = self._counts.get(path, 0) + 1
            self.log.append((time.monotonic(), path, self._mode))
            body = json.dumps({"keys": self._keys}).encode()
            return self._mode, self._delay, body

    # ----- inspection -------------------------------------------------------------------------
    def count(self, path=JWKS_PATH):
        with self._lock:
            return self._counts.get(path, 0)

    def counts(self):
        with self._lock:
            return dict(self._counts)

    def requests_since(self, t, path=JWKS_PATH):
        """How many requests for path arrived at or after monotonic time t."""
        with self._lock:
            return sum(1 for when, p, _ in self.log if p == path and when >= t)

    def wait_for_requests(self, n, timeout=5.0, path=JWKS_PATH):
        return util.wait_until(lambda: self.count(path) >= n, timeout,
                               message=f"{n} requests for {path} at the IdP")

    def _new_server(self):
        return _Server(self, ("127.0.0.1", self.port))
