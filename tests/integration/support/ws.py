"""WebSocket upstreams for the WebSocket proxying tests.

WsUpstream is a real WebSocket server (Python's `websockets` 10.4, the asyncio server API) run in
a background thread with its own event loop, on 127.0.0.1 and a free port. It records every
handshake request it sees (path and headers), every connection's closing code and reason, and
the messages it received. What it does is chosen by the path: the first segment below that it
recognises decides (so /ws/close/4002 and /close/4002 behave the same).

  .../reject         answer the handshake with HTTP 403 and the body "rejected\\n" (no upgrade)
  .../status/CODE    answer the handshake with HTTP CODE (an http.HTTPStatus) and the body
                     "status CODE\\n"
  .../close/CODE     accept, then close at once with CODE and the reason "closing CODE"
  .../silent         accept and never send anything (until the peer closes or the server stops)
  .../drop           accept, then close the TCP connection at once without a closing handshake
  .../tick/MS        accept, then send "tick N" every MS milliseconds (reading nothing)
  .../ping           accept, ping the client, and once the pong is back send the text "pong ok"
  .../hello          accept, send the text "hello" first, then echo
  anything else      echo: every text and binary message is sent back as it was received

Server-initiated keepalive pings are off (they would be traffic on an otherwise idle tunnel).
The subprotocol SUBPROTOCOL is selected when a client offers it.

RawUpgradeUpstream is a raw-socket fake for what the library cannot express: it reads a request
head, records it and the bytes that came after it, answers 101 Switching Protocols (with the
right Sec-WebSocket-Accept), then echoes every byte it receives, recording them too.
"""
import asyncio
import base64
import hashlib
import http
import socket
import threading
import time

import websockets
import websockets.exceptions
import websockets.server

from . import util

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUBPROTOCOL = "portico.test.v1"


def accept_key(key):
    """The Sec-WebSocket-Accept value for a Sec-WebSocket-Key (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode("ascii")).digest()).decode()


class Handshake:
    """One handshake request as the upstream received it."""

    def __init__(self, path, headers, accepted):
        self.path = path.partition("?")[0]
        self.target = path
        self.headers = headers          # list of (name, value) in the order received
        self.accepted = accepted        # False for /reject and /status/CODE
        self.time = time.monotonic()
        # Filled in when the connection ends (accepted handshakes only):
        self.closed = False
        self.close_code = None
        self.close_reason = None
        self.received = []              # messages received (str or bytes), in order

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def __repr__(self):
        return (f"<Handshake {self.target} accepted={self.accepted} closed={self.closed} "
                f"code={self.close_code} headers={self.headers!r}>")


def _behaviour(path):
    """(name, argument) for a request path, from the first segment that names a behaviour."""
    segs = [s for s in path.partition("?")[0].split("/") if s]
    for i, s in enumerate(segs):
        if s in ("close", "status", "tick") and i + 1 < len(segs) and segs[i + 1].isdigit():
            return s, int(segs[i + 1])
        if s in ("reject", "silent", "drop", "ping", "hello"):
            return s, None
    return "echo", None


class WsUpstream:
    def __init__(self, name="ws", max_size=16 * 1024 * 1024, lifetime=600.0,
                 compression="deflate"):
        self.name = name
        self.max_size = max_size
        self.lifetime = lifetime
        self.compression = compression
        self.lock = threading.Lock()
        self.handshakes = []      # every handshake request that reached process_request
        self.errors = []          # exceptions raised by a handler (a test bug or a protocol error)
        self.port = None
        self.address = None
        self._loop = None
        self._server = None
        self._stop_event = None   # an asyncio.Event, on the server's loop
        self._ready = threading.Event()
        self._start_error = None
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"ws-upstream-{name}")
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("WebSocket upstream did not start")
        if self._start_error:
            raise self._start_error

    # ----- inspection -------------------------------------------------------------------------
    def count(self):
        with self.lock:
            return len(self.handshakes)

    def snapshot(self):
        with self.lock:
            return list(self.handshakes)

    def last(self):
        with self.lock:
            return self.handshakes[-1] if self.handshakes else None

    def find(self, path):
        """The handshakes whose path (without the query) is exactly `path`."""
        with self.lock:
            return [h for h in self.handshakes if h.path == path]

    def wait_for(self, path, timeout=5.0, closed=False):
        """Waits for a handshake on `path` (and, with closed=True, for its connection's end)."""
        def got():
            hs = self.find(path)
            if hs and (not closed or hs[-1].closed):
                return hs[-1]
            return None
        return util.wait_until(got, timeout, message=f"a handshake on {path}"
                               + (" and its close" if closed else ""))

    def open_connections(self):
        with self.lock:
            return sum(1 for h in self.handshakes if h.accepted and not h.closed)

    # ----- lifecycle --------------------------------------------------------------------------
    def stop(self):
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._stop_event.set)
            except RuntimeError:
                pass
        self._thread.join(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def _run(self):
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as e:  # noqa: BLE001 - reported to the constructor
            if not self._ready.is_set():
                self._start_error = e
                self._ready.set()
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _main(self):
        self._stop_event = asyncio.Event()
        last_err = None
        for _attempt in range(5):
            port = util.free_port()
            try:
                self._server = await websockets.server.serve(
                    self._handler, "127.0.0.1", port,
                    process_request=self._process_request,
                    max_size=self.max_size, ping_interval=None, close_timeout=2,
                    compression=self.compression, max_queue=64,
                    subprotocols=[SUBPROTOCOL])
                break
            except OSError as e:
                last_err = e
        else:
            raise last_err
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self._ready.set()
        try:
            await asyncio.wait_for(self._stop_event.wait(), self.lifetime)
        except asyncio.TimeoutError:
            pass
        self._server.close()
        try:
            await asyncio.wait_for(self._server.wait_closed(), 10)
        except asyncio.TimeoutError:
            pass

    # ----- the handshake and the connection ---------------------------------------------------
    async def _process_request(self, path, request_headers):
        kind, arg = _behaviour(path)
        refused = kind in ("reject", "status")
        hs = Handshake(path, list(request_headers.raw_items()), accepted=not refused)
        with self.lock:
            self.handshakes.append(hs)
        if kind == "reject":
            return http.HTTPStatus(403), self._plain_headers(), b"rejected\n"
        if kind == "status":
            return http.HTTPStatus(arg), self._plain_headers(), f"status {arg}\n".encode()
        return None

    def _plain_headers(self):
        return [("Content-Type", "text/plain"), ("X-Upstream-Name", self.name)]

    def _record_of(self, ws):
        with self.lock:
            for h in reversed(self.handshakes):
                if h.target == ws.path and h.accepted and not getattr(h, "_taken", False):
                    h._taken = True
                    return h
        return Handshake(ws.path, list(ws.request_headers.raw_items()), True)  # not expected

    async def _handler(self, ws):
        rec = self._record_of(ws)
        kind, arg = _behaviour(ws.path)
        try:
            if kind == "close":
                await ws.close(arg, f"closing {arg}")
            elif kind == "tick":
                i = 0
                while True:
                    await ws.send(f"tick {i}")
                    i += 1
                    await asyncio.sleep(arg / 1000.0)
            elif kind == "drop":
                ws.transport.close()
            elif kind == "silent":
                await asyncio.wait_for(ws.wait_closed(), self.lifetime)
            elif kind == "ping":
                pong = await ws.ping(b"server-ping")
                await asyncio.wait_for(pong, 30)
                await ws.send("pong ok")
                await self._echo(ws, rec)
            else:
                if kind == "hello":
                    await ws.send("hello")
                await self._echo(ws, rec)
        except websockets.exceptions.ConnectionClosed:
            pass
        except Exception as e:  # noqa: BLE001 - recorded for the test to see
            with self.lock:
                self.errors.append(repr(e))
        finally:
            try:
                await asyncio.wait_for(ws.wait_closed(), 5)
            except asyncio.TimeoutError:
                pass
            with self.lock:
                rec.close_code = ws.close_code
                rec.close_reason = ws.close_reason
                rec.closed = True

    async def _echo(self, ws, rec):
        async for msg in ws:
            with self.lock:
                rec.received.append(msg if len(msg) <= 4096 else
                                    ("<%d bytes sha256 %s>" % (len(msg), _sha(msg))))
            await ws.send(msg)


def _sha(msg):
    data = msg.encode("utf-8") if isinstance(msg, str) else msg
    return hashlib.sha256(data).hexdigest()


class RawUpgradeUpstream:
    """Answers any request head with 101 Switching Protocols, then echoes raw bytes.

    For each connection it records the request head (as text), the bytes that arrived in the
    same reads after the head (`early`), everything received after the head (`data`), and
    whether the peer closed. Two paths do something else after the 101, for backpressure tests:

      .../hold/MS    read nothing for MS milliseconds, then read (without echoing) until EOF;
                     only the count and SHA-256 of what was received are kept
      .../flood/N    send N bytes of util.pattern_chunks as fast as the peer takes them
                     (`sent` counts them as they go), then wait for the peer to close;
                     .../flood/N/close closes right after the last byte instead
    """

    class Conn:
        def __init__(self):
            self.head = None
            self.headers = []
            self.early = b""
            self.data = bytearray()
            self.closed_by_peer = False
            self.received = 0           # bytes after the head (all modes)
            self.sha = hashlib.sha256() # of the bytes after the head (hold mode)
            self.reading = False        # hold mode: the pause is over
            self.sent = 0               # flood mode: bytes sent so far
            self.done = False           # the connection handler has finished

        def header(self, name, default=None):
            name = name.lower()
            for k, v in self.headers:
                if k.lower() == name:
                    return v
            return default

    def __init__(self, lifetime=120.0):
        self.lock = threading.Lock()
        self.conns = []
        self.stopping = threading.Event()
        self.lifetime = lifetime
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._socks = set()
        self._threads = []
        self._t0 = time.monotonic()
        self._accept = threading.Thread(target=self._accept_loop, daemon=True, name="raw-upgrade")
        self._accept.start()

    def count(self):
        with self.lock:
            return len(self.conns)

    def last(self):
        with self.lock:
            return self.conns[-1] if self.conns else None

    def stop(self):
        self.stopping.set()
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._accept.join(timeout=5)
        for t in self._threads:
            t.join(timeout=5)

    def _accept_loop(self):
        while not self.stopping.is_set() and time.monotonic() - self._t0 < self.lifetime:
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self._socks.add(sock)
            t = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(t)
            t.start()
        try:
            self.listener.close()
        except OSError:
            pass

    def _serve(self, sock):
        c = self.Conn()
        with self.lock:
            self.conns.append(c)
        sock.settimeout(0.5)
        buf = b""
        deadline = time.monotonic() + self.lifetime
        try:
            while b"\r\n\r\n" not in buf:
                if self.stopping.is_set() or time.monotonic() > deadline:
                    return
                try:
                    d = sock.recv(65536)
                except socket.timeout:
                    continue
                if not d:
                    c.closed_by_peer = True
                    return
                buf += d
            head, _, rest = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = []
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers.append((k, v.strip()))
            with self.lock:
                c.head, c.headers, c.early = lines[0], headers, rest
                c.data += rest
            key = c.header("Sec-WebSocket-Key", "")
            sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\n"
                          f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n").encode())
            segs = lines[0].split(" ")[1].partition("?")[0].split("/") if " " in lines[0] else []
            for i, seg in enumerate(segs[:-1]):
                if seg in ("hold", "flood") and segs[i + 1].isdigit():
                    if seg == "hold":
                        return self._hold(sock, c, rest, int(segs[i + 1]) / 1000.0, deadline)
                    close = i + 2 < len(segs) and segs[i + 2] == "close"
                    return self._flood(sock, c, int(segs[i + 1]), deadline, close)
            c.received += len(rest)
            if rest:
                sock.sendall(rest)
            while not self.stopping.is_set() and time.monotonic() < deadline:
                try:
                    d = sock.recv(65536)
                except socket.timeout:
                    continue
                if not d:
                    c.closed_by_peer = True
                    return
                with self.lock:
                    c.data += d
                    c.received += len(d)
                sock.sendall(d)
        except OSError:
            return
        finally:
            with self.lock:
                self._socks.discard(sock)
                c.done = True
            try:
                sock.close()
            except OSError:
                pass

    def _hold(self, sock, c, rest, pause, deadline):
        c.sha.update(rest)
        c.received += len(rest)
        if self.stopping.wait(pause):
            return
        c.reading = True
        while not self.stopping.is_set() and time.monotonic() < deadline:
            try:
                d = sock.recv(1 << 20)
            except socket.timeout:
                continue
            if not d:
                c.closed_by_peer = True
                return
            with self.lock:
                c.sha.update(d)
                c.received += len(d)

    def _flood(self, sock, c, n, deadline, close):
        sock.settimeout(60)
        for piece in util.pattern_chunks(n, 256 * 1024):
            if self.stopping.is_set():
                return
            sock.sendall(piece)
            with self.lock:
                c.sent += len(piece)
        if close:
            return
        sock.settimeout(0.5)
        while not self.stopping.is_set() and time.monotonic() < deadline:
            try:
                d = sock.recv(65536)
            except socket.timeout:
                continue
            if not d:
                c.closed_by_peer = True
                return
