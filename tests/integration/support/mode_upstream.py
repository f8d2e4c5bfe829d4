"""A real HTTP/1.1 upstream whose behaviour is switched at run time, for resilience tests.

    u = ModeUpstream("a", health_path="/healthz")
    u.set_mode("ok")              # 200, JSON {"upstream", "seq", "method", "path", "body_len", ...}
    u.set_mode("status", 503)     # that status, body "a status 503 seq N\n"
    u.set_mode("reset")           # read the whole request, then close with RST (no answer)
    u.set_mode("close")           # read the whole request, then close with FIN (no answer)
    u.set_mode("hang")            # read the whole request, never answer (until the peer closes)
    u.set_mode("slow", 0.5)       # wait 0.5 s, then answer as "ok"
    u.set_health(200 | 500 | 204) # the status of requests to the health path
    u.set_health("hang" | "reset" | "close")
    u.keepalive = False           # every answer carries Connection: close and ends the connection
    u.refuse(); u.listen_again()  # close the listener (connects are refused), reopen the same port

Every request is recorded as an Arrival when its head is complete (time.monotonic()), with its
method, target, headers, body length and SHA-256 (the first 64 KiB kept), the mode it was
answered with and whether it was for the health path. `client()` and `health()` split them, so
counts of client requests are exact whatever the health checker does.

Listens on 127.0.0.1 only, one thread per connection, a connection lives at most `max_life`
seconds, and stop() ends everything.
"""
import hashlib
import json
import socket
import threading
import time

KEEP_BODY = 64 * 1024


class Arrival:
    def __init__(self, seq, conn_id, method, target, version, headers, health):
        self.seq = seq
        self.conn_id = conn_id
        self.time = time.monotonic()
        self.method = method
        self.target = target
        self.version = version
        self.path, _, self.query = target.partition("?")
        self.headers = headers          # [(name, value)] as received
        self.health = health            # a request for the health path
        self.mode = None                # what it was answered with, e.g. ("status", 503)
        self.body = b""                 # the first 64 KiB
        self.body_len = 0
        self.body_sha256 = hashlib.sha256(b"").hexdigest()
        self.complete = False           # the whole body was read

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def __repr__(self):
        return (f"<Arrival #{self.seq} t={self.time:.3f} {self.method} {self.target}"
                f" health={self.health} mode={self.mode} body_len={self.body_len}>")


class _Closed(Exception):
    pass


class ModeUpstream:
    def __init__(self, name="up", health_path="/healthz", max_life=60.0):
        self.name = name
        self.health_path = health_path
        self.max_life = max_life
        self.keepalive = True
        self.lock = threading.Lock()
        self.arrivals = []
        self.connections = 0
        self._seq = 0
        self._mode = ("ok",)
        self._health = 200
        self.stopping = threading.Event()
        self._socks = set()
        self._threads = []
        self.listener = None
        self._accept_thread = None
        self.port = None
        self._listen(0)
        self.address = f"127.0.0.1:{self.port}"

    # ----- modes --------------------------------------------------------------------------------
    def set_mode(self, mode, arg=None):
        assert mode in ("ok", "status", "reset", "close", "hang", "slow"), mode
        if mode == "status":
            assert isinstance(arg, int), arg
        if mode == "slow":
            assert isinstance(arg, (int, float)), arg
        with self.lock:
            self._mode = (mode,) if arg is None else (mode, arg)

    def set_health(self, what):
        assert isinstance(what, int) or what in ("hang", "reset", "close"), what
        with self.lock:
            self._health = what

    # ----- inspection ---------------------------------------------------------------------------
    def all(self):
        with self.lock:
            return list(self.arrivals)

    def client(self):
        """The arrivals that were not for the health path, in order."""
        with self.lock:
            return [a for a in self.arrivals if not a.health]

    def health(self):
        with self.lock:
            return [a for a in self.arrivals if a.health]

    def count(self):
        return len(self.client())

    def health_count(self):
        return len(self.health())

    def client_since(self, n):
        return self.client()[n:]

    def health_since(self, n):
        return self.health()[n:]

    def last_client_time(self):
        c = self.client()
        return c[-1].time if c else None

    # ----- listening ----------------------------------------------------------------------------
    def _listen(self, port):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(256)
        s.settimeout(0.1)
        self.port = s.getsockname()[1]
        self.listener = s
        t = threading.Thread(target=self._accept_loop, args=(s,), daemon=True,
                             name=f"mode-upstream-{self.name}")
        self._accept_thread = t
        t.start()

    def refuse(self):
        """Closes the listener: new connections are refused (open ones go on)."""
        s, t = self.listener, self._accept_thread
        self.listener = None
        if s is not None:
            try:
                s.close()
            except OSError:
                pass
        if t is not None:
            t.join(2)

    def listen_again(self):
        assert self.listener is None, "already listening"
        self._listen(self.port)

    def drop_connections(self):
        """Closes every open connection (the next request needs a new one)."""
        with self.lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self):
        self.stopping.set()
        self.refuse()
        self.drop_connections()
        with self.lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.close()
            except OSError:
                pass
        for t in list(self._threads):
            t.join(2)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def _accept_loop(self, listener):
        while not self.stopping.is_set():
            try:
                sock, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                conn_id = self.connections
                self._socks.add(sock)
                self._threads = [t for t in self._threads if t.is_alive()]
            t = threading.Thread(target=self._serve, args=(sock, conn_id), daemon=True)
            self._threads.append(t)
            t.start()

    # ----- one connection -----------------------------------------------------------------------
    def _serve(self, sock, conn_id):
        deadline = time.monotonic() + self.max_life
        try:
            sock.settimeout(0.1)
        except OSError:  # stop() closed it before this thread began
            return
        buf = bytearray()

        def fill():
            while True:
                if self.stopping.is_set() or time.monotonic() > deadline:
                    raise _Closed()
                try:
                    data = sock.recv(256 * 1024)
                except socket.timeout:
                    continue
                except OSError:
                    data = b""
                if not data:
                    raise _Closed()
                buf.extend(data)
                return

        def line():
            while b"\r\n" not in buf:
                fill()
            end = buf.index(b"\r\n")
            out = bytes(buf[:end])
            del buf[:end + 2]
            return out

        def wait_for_close(limit=None):
            end = deadline if limit is None else min(deadline, time.monotonic() + limit)
            while time.monotonic() < end and not self.stopping.is_set():
                try:
                    data = sock.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return True
                if not data:
                    return True
            return False

        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    if len(buf) > 1 << 20:
                        raise _Closed()
                    fill()
                end = buf.index(b"\r\n\r\n")
                lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
                del buf[:end + 4]
                method, target, version = lines[0].split(" ", 2)
                headers = []
                for ln in lines[1:]:
                    k, _, v = ln.partition(":")
                    headers.append((k.strip(), v.strip(" \t")))
                with self.lock:
                    self._seq += 1
                    health = target.partition("?")[0] == self.health_path
                    a = Arrival(self._seq, conn_id, method, target, version, headers, health)
                    mode = ("health", self._health) if health else self._mode
                    a.mode = mode
                    self.arrivals.append(a)

                # the body
                h = hashlib.sha256()
                kept = bytearray()
                total = 0

                def take(data):
                    nonlocal total
                    h.update(data)
                    if len(kept) < KEEP_BODY:
                        kept.extend(data[:KEEP_BODY - len(kept)])
                    total += len(data)
                    a.body_len = total

                te = (a.header("transfer-encoding") or "").lower()
                if "chunked" in te:
                    while True:
                        size = int(line().split(b";")[0].strip(), 16)
                        if size == 0:
                            while line():
                                pass
                            break
                        while size:
                            if not buf:
                                fill()
                            n = min(size, len(buf))
                            take(bytes(buf[:n]))
                            del buf[:n]
                            size -= n
                        line()
                else:
                    left = int(a.header("content-length") or "0")
                    while left:
                        if not buf:
                            fill()
                        n = min(left, len(buf))
                        take(bytes(buf[:n]))
                        del buf[:n]
                        left -= n
                a.body = bytes(kept)
                a.body_len = total
                a.body_sha256 = h.hexdigest()
                a.complete = True

                if not self._answer(sock, a, mode, wait_for_close):
                    return
        except (_Closed, OSError, ValueError):
            return
        finally:
            with self.lock:
                self._socks.discard(sock)
            try:
                sock.close()
            except OSError:
                pass

    def _answer(self, sock, a, mode, wait_for_close):
        """Answers one request; False ends the connection."""
        kind = mode[0]
        if kind == "health":
            what = mode[1]
            if isinstance(what, int):
                return self._send(sock, what, f"{self.name} health {what}\n".encode(), a,
                                  keep=False)
            kind = what
        if kind == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return False
        if kind == "close":
            return False
        if kind == "hang":
            wait_for_close()
            return False
        if kind == "slow":
            if self.stopping.wait(mode[1]):
                return False
            kind = "ok"
        if kind == "ok":
            body = json.dumps({"upstream": self.name, "seq": a.seq, "method": a.method,
                               "path": a.path, "target": a.target, "body_len": a.body_len,
                               "body_sha256": a.body_sha256}).encode()
            return self._send(sock, 200, body, a, ctype="application/json")
        if kind == "status":
            code = mode[1]
            return self._send(sock, code, f"{self.name} status {code} seq {a.seq}\n".encode(), a)
        raise ValueError(f"unknown mode {mode!r}")

    def _send(self, sock, code, body, a, ctype="text/plain", keep=None):
        if keep is None:
            keep = self.keepalive and a.version == "HTTP/1.1" and \
                "close" not in (a.header("connection") or "").lower()
        head = (f"HTTP/1.1 {code} Mode\r\nContent-Type: {ctype}\r\n"
                f"X-Upstream-Name: {self.name}\r\nX-Seq: {a.seq}\r\n")
        no_body = code in (204, 304) or a.method == "HEAD"
        if code not in (204, 304):
            head += f"Content-Length: {len(body)}\r\n"
        if not keep:
            head += "Connection: close\r\n"
        sock.sendall(head.encode() + b"\r\n" + (b"" if no_body else body))
        return keep


class ModeUpstreams:
    """A factory that stops every upstream it made: `with ModeUpstreams() as make: make("a")`."""

    def __init__(self):
        self.made = []

    def __call__(self, name="up", **kw):
        u = ModeUpstream(name, **kw)
        self.made.append(u)
        return u

    def close(self):
        for u in self.made:
            u.stop()
        self.made = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ----- gateway-side helpers shared by the resilience suites ----------------------------------------
# (kept here so that test_retries, test_circuit_breaker and test_health_checks read the same way)
def _rawhttp():
    from . import rawhttp
    return rawhttp


class Client:
    """One keep-alive connection to the gateway (raw bytes, so nothing reconnects behind our back).
    `request()` returns a support.rawhttp.Response; `closed()` tells whether the gateway has
    closed the connection."""

    def __init__(self, g, timeout=10.0):
        self.conn = _rawhttp().RawConn(g.port, timeout)

    def request(self, method, path, body=b"", headers=None, chunked=False, timeout=None):
        rh = _rawhttp()
        hdrs = list(headers or [])
        if chunked:
            hdrs.append(("Transfer-Encoding", "chunked"))
            pieces = [body[i:i + 1000] for i in range(0, len(body), 1000)]
            data = rh.request_bytes(method, path, headers=hdrs) + rh.chunked(pieces)
        elif body or method in ("POST", "PUT", "PATCH"):
            hdrs.append(("Content-Length", str(len(body))))
            data = rh.request_bytes(method, path, headers=hdrs) + body
        else:
            data = rh.request_bytes(method, path, headers=hdrs)
        self.conn.send(data)
        return self.conn.read_response(method, timeout=timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def closed(self, wait=0.05):
        """True if the gateway closed the connection (waits up to `wait` for a FIN)."""
        if self.conn.eof:
            return True
        return self.conn.wait_closed(wait)

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def once(g, method, path, body=b"", headers=None, timeout=10.0, chunked=False):
    """One request on a connection of its own."""
    with Client(g, timeout) as c:
        return c.request(method, path, body=body, headers=headers, chunked=chunked)


def upstream_info(g, name):
    """The /admin/upstreams entry of one upstream."""
    status, body = g.admin("GET", "/admin/upstreams")
    assert status == 200, (status, body)
    assert name in body, body
    return body[name]


def endpoint_info(g, name, address):
    info = upstream_info(g, name)
    assert address in info["endpoints"], info
    return info["endpoints"][address]


def metric(g, name, **labels):
    """The value of one exact series on /metrics (0 when it is not there yet)."""
    from . import metrics
    v = metrics.scrape_parsed(g).value(name, **labels)
    return 0 if v is None else v


class Stream:
    """Sends GET requests back to back on one keep-alive connection (a new one when the gateway
    closes it) on a thread, `gap` seconds apart, recording (time sent, status, X-Upstream-Name,
    body head) for each, until stop()."""

    def __init__(self, g, path, gap=0.01, timeout=10.0):
        self.g = g
        self.path = path
        self.gap = gap
        self.timeout = timeout
        self.results = []
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        c = None
        i = 0
        while not self._stop.is_set():
            try:
                if c is None or c.conn.eof:
                    if c is not None:
                        c.close()
                    c = Client(self.g, self.timeout)
                t = time.monotonic()
                r = c.get(f"{self.path}/{i}")
                self.results.append((t, r.status, r.header("X-Upstream-Name"), r.body[:200]))
                if (r.header("Connection") or "").lower() == "close":
                    c.close()
                    c = None
            except Exception as e:  # noqa: BLE001 - recorded, the test asserts on it
                self.errors.append((time.monotonic(), repr(e)))
                if c is not None:
                    c.close()
                c = None
            i += 1
            self._stop.wait(self.gap)
        if c is not None:
            c.close()

    def stop(self):
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive(), "the request stream did not end"
        return self.results
