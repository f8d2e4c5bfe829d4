"""An HTTP/2 upstream (h2c with prior knowledge, or h2 over TLS), in-process, built on the `h2`
library on raw sockets: one thread per connection, 127.0.0.1 only, a bounded lifetime.

It records every request (method, path, headers in order, body length, SHA-256 and the first
64 KiB, connection and stream ids) and counts accepted connections. What it answers is chosen by
the path, mirroring support.upstream.Upstream:

  /bytes/N         N bytes of util.pattern_chunks, streamed under flow control (content-length
                   unless ?nocl=1; ?pause_ms=X pauses after the first MiB; ?headers_only=1
                   ends the stream with the HEADERS frame, as an answer to HEAD may)
  /slow/MS[/...]   the echo, MS milliseconds after the request ended
  /hang            never answer (until the server stops)
  /status/CODE     that status with a small body
  /reset           RST_STREAM (INTERNAL_ERROR) instead of an answer
  /goaway          GOAWAY (NO_ERROR) after answering with the echo
  /trailers        the echo followed by a trailer field x-trailer: yes
  .../grpc-with-length  a gRPC answer (message "hi") with content-length, then grpc-status 0
                   in trailers
  anything else    echo: JSON of the request as received (after its whole body arrived)

Responses start only when the request's END_STREAM arrived (except /hang, never).
"""
import hashlib
import json
import select
import socket
import ssl
import threading
import time
import urllib.parse

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from . import util

KEEP_BODY = 64 * 1024


class H2Recorded:
    def __init__(self, conn_id, stream_id, headers):
        self.conn_id = conn_id
        self.stream_id = stream_id
        self.pseudo = {k: v for k, v in headers if k.startswith(":")}
        self.headers = [(k, v) for k, v in headers if not k.startswith(":")]
        self.raw_headers = list(headers)
        self.method = self.pseudo.get(":method")
        self.target = self.pseudo.get(":path", "")
        self.authority = self.pseudo.get(":authority")
        self.scheme = self.pseudo.get(":scheme")
        self.version = "HTTP/2"
        path, _, query = self.target.partition("?")
        self.path = path
        self.query = query
        self.body = b""
        self.body_len = 0
        self._sha = hashlib.sha256()
        self._kept = bytearray()
        self.body_sha256 = self._sha.hexdigest()
        self.complete = False
        self.reset = None       # error code when the gateway reset the stream
        self.trailers = None
        self.time = time.monotonic()

    def _add(self, data):
        self._sha.update(data)
        if len(self._kept) < KEEP_BODY:
            self._kept.extend(data[:KEEP_BODY - len(self._kept)])
        self.body_len += len(data)
        self.body = bytes(self._kept)
        self.body_sha256 = self._sha.hexdigest()

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def header_names(self):
        return [k.lower() for k, _ in self.headers]

    def __repr__(self):
        return (f"<H2Recorded {self.method} {self.target} conn={self.conn_id} "
                f"stream={self.stream_id} {self.headers!r} body_len={self.body_len}>")


class _Pending:
    """A response being sent on one stream."""

    def __init__(self, rec, status, headers, body_iter, ready_at, trailers=None, goaway=False):
        self.rec = rec
        self.status = status
        self.headers = headers
        self.body_iter = body_iter
        self.ready_at = ready_at
        self.trailers = trailers
        self.goaway = goaway
        self.head_sent = False
        self.buf = b""
        self.pause_after = None   # (bytes, seconds)
        self.sent = 0
        self.headers_only = False  # END_STREAM on the HEADERS frame (no DATA at all)


class H2Upstream:
    def __init__(self, name="h2up", lifetime=180.0, max_concurrent_streams=100,
                 initial_window=None, tls=None):
        """tls: (cert_path, key_path) to serve h2 over TLS (ALPN h2), else h2c."""
        self.name = name
        self.lifetime = lifetime
        self.max_concurrent_streams = max_concurrent_streams
        self.initial_window = initial_window
        self.lock = threading.Lock()
        self.requests = []
        self.connections = 0
        self.open_connections = 0
        self.max_open_connections = 0
        self.max_streams_in_flight = 0   # most concurrent open streams seen on one connection
        self.errors = []                 # protocol errors the h2 library raised on input
        self.stopping = threading.Event()
        self.deadline = time.monotonic() + lifetime
        self._socks = set()
        self._threads = []
        self.ssl_ctx = None
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls[0], tls[1])
            ctx.set_alpn_protocols(["h2"])
            self.ssl_ctx = ctx
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(512)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True,
                                               name=f"h2upstream-{name}")
        self._accept_thread.start()

    # ----- inspection -------------------------------------------------------------------------
    def count(self):
        with self.lock:
            return len(self.requests)

    def snapshot(self):
        with self.lock:
            return list(self.requests)

    def last(self):
        with self.lock:
            return self.requests[-1] if self.requests else None

    def since(self, n):
        with self.lock:
            return list(self.requests[n:])

    def connection_count(self):
        with self.lock:
            return self.connections

    def wait_for_requests(self, n, timeout=5.0):
        util.wait_until(lambda: self.count() >= n, timeout, message=f"{n} upstream requests")

    # ----- lifecycle --------------------------------------------------------------------------
    def _alive(self):
        return not self.stopping.is_set() and time.monotonic() < self.deadline

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
        self._accept_thread.join(timeout=5)
        for t in list(self._threads):
            t.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def _accept_loop(self):
        conn_id = 0
        try:
            while self._alive():
                try:
                    sock, _ = self.listener.accept()
                except socket.timeout:
                    continue
                except OSError:
                    return
                conn_id += 1
                with self.lock:
                    self.connections += 1
                    self.open_connections += 1
                    self.max_open_connections = max(self.max_open_connections,
                                                    self.open_connections)
                    self._socks.add(sock)
                t = threading.Thread(target=self._serve, args=(sock, conn_id), daemon=True)
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)
                t.start()
        finally:
            try:
                self.listener.close()
            except OSError:
                pass

    # ----- one connection ---------------------------------------------------------------------
    def _serve(self, raw_sock, conn_id):
        sock = raw_sock
        try:
            raw_sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_ctx is not None:
                raw_sock.settimeout(10)
                sock = self.ssl_ctx.wrap_socket(raw_sock, server_side=True)
            sock.settimeout(30)
            self._run(sock, conn_id)
        except (OSError, ssl.SSLError, h2.exceptions.H2Error) as e:
            with self.lock:
                if not isinstance(e, OSError):
                    self.errors.append(repr(e))
        finally:
            with self.lock:
                self._socks.discard(raw_sock)
                self.open_connections -= 1
            try:
                sock.close()
            except OSError:
                pass

    def _run(self, sock, conn_id):
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8",
                                        validate_inbound_headers=True)
        conn = h2.connection.H2Connection(config=cfg)
        conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS:
                            self.max_concurrent_streams,
                            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 1 << 20,
                            **({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE:
                                self.initial_window} if self.initial_window is not None else {})})
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        recs = {}      # stream id -> H2Recorded (open streams)
        pending = {}   # stream id -> _Pending
        close_after = False
        while self._alive():
            now = time.monotonic()
            wait = 0.05
            for p in pending.values():
                if p.ready_at > now:
                    wait = min(wait, p.ready_at - now)
                elif p.head_sent and self._window(conn, p.rec.stream_id) <= 0:
                    pass  # waiting for a WINDOW_UPDATE: only input can help
                else:
                    wait = 0
            readable = False
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                readable = True
            else:
                r, _, _ = select.select([sock], [], [], max(wait, 0))
                readable = bool(r)
            if readable:
                try:
                    data = sock.recv(256 * 1024)
                except (ssl.SSLWantReadError, socket.timeout):
                    data = None
                if data == b"":
                    return
                if data:
                    try:
                        events = conn.receive_data(data)
                    except h2.exceptions.ProtocolError as e:
                        with self.lock:
                            self.errors.append(repr(e))
                        out = conn.data_to_send()
                        if out:
                            sock.sendall(out)
                        return
                    for ev in events:
                        if self._event(conn, conn_id, ev, recs, pending):
                            close_after = True
            self._send_ready(conn, pending)
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
            if close_after and not pending:
                return

    def _event(self, conn, conn_id, ev, recs, pending):
        """Handles one h2 event; returns True when the connection should end."""
        if isinstance(ev, h2.events.RequestReceived):
            rec = H2Recorded(conn_id, ev.stream_id, ev.headers)
            recs[ev.stream_id] = rec
            with self.lock:
                self.requests.append(rec)
                self.max_streams_in_flight = max(self.max_streams_in_flight,
                                                 conn.open_inbound_streams)
            if ev.stream_ended is not None:
                rec.complete = True
                self._respond(conn, rec, pending)
        elif isinstance(ev, h2.events.DataReceived):
            rec = recs.get(ev.stream_id)
            if rec is not None:
                rec._add(ev.data)  # noqa: SLF001
            if ev.flow_controlled_length:
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            if ev.stream_ended is not None and rec is not None:
                rec.complete = True
                self._respond(conn, rec, pending)
        elif isinstance(ev, h2.events.TrailersReceived):
            rec = recs.get(ev.stream_id)
            if rec is not None:
                rec.trailers = ev.headers
                if ev.stream_ended is not None:
                    rec.complete = True
                    self._respond(conn, rec, pending)
        elif isinstance(ev, h2.events.StreamEnded):
            rec = recs.get(ev.stream_id)
            if rec is not None and not rec.complete:
                rec.complete = True
                self._respond(conn, rec, pending)
        elif isinstance(ev, h2.events.StreamReset):
            rec = recs.pop(ev.stream_id, None)
            if rec is not None:
                rec.reset = ev.error_code
            pending.pop(ev.stream_id, None)
        elif isinstance(ev, h2.events.ConnectionTerminated):
            return True
        return False

    @staticmethod
    def _window(conn, sid):
        try:
            return conn.local_flow_control_window(sid)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
            return 1  # let _send_ready find out and drop it

    def _respond(self, conn, rec, pending):
        path = rec.path
        query = urllib.parse.parse_qs(rec.query)
        now = time.monotonic()
        sid = rec.stream_id
        if path == "/hang":
            return
        if path == "/reset":
            conn.reset_stream(sid, error_code=2)
            return
        if path.startswith("/bytes/"):
            n = int(path.split("/")[2])
            headers = [("content-type", "application/octet-stream"),
                       ("x-upstream-name", self.name)]
            if query.get("nocl") != ["1"]:
                headers.append(("content-length", str(n)))
            p = _Pending(rec, 200, headers, util.pattern_chunks(n, 16384), now)
            p.headers_only = query.get("headers_only") == ["1"]
            pause = int(query.get("pause_ms", ["0"])[0])
            if pause:
                p.pause_after = (1 << 20, pause / 1000.0)
            pending[sid] = p
            return
        if path.startswith("/status/"):
            code = int(path.split("/")[2])
            body = b"" if code in (204, 304) else f"status {code}\n".encode()
            headers = [("x-upstream-name", self.name)]
            if body:
                headers.append(("content-length", str(len(body))))
            pending[sid] = _Pending(rec, code, headers, iter([body] if body else []), now)
            return
        if path.endswith("/grpc-with-length"):
            # A gRPC answer that states its length and still ends with trailers (legal, and
            # what some servers and proxies send).
            frame = b"\x00\x00\x00\x00\x02hi"
            headers = [("content-type", "application/grpc"), ("content-length", str(len(frame)))]
            pending[sid] = _Pending(rec, 200, headers, iter([frame]), now,
                                    trailers=[("grpc-status", "0"), ("grpc-message", "ok")])
            return
        ready = now
        if path.startswith("/slow/"):
            ready = now + int(path.split("/")[2]) / 1000.0
        body = json.dumps({
            "upstream": self.name, "method": rec.method, "target": rec.target,
            "path": rec.path, "query": rec.query, "version": "HTTP/2",
            "authority": rec.authority, "scheme": rec.scheme,
            "headers": rec.headers, "body_len": rec.body_len, "body_sha256": rec.body_sha256,
            "body": rec.body.decode("latin-1"), "conn": rec.conn_id, "stream": sid,
        }).encode()
        headers = [("content-type", "application/json"), ("content-length", str(len(body))),
                   ("x-upstream-name", self.name), ("server", "test-h2-upstream")]
        trailers = [("x-trailer", "yes")] if path == "/trailers" else None
        if trailers:
            headers = [h for h in headers if h[0] != "content-length"]
        pending[sid] = _Pending(rec, 200, headers, iter([body]), ready, trailers=trailers,
                                goaway=path == "/goaway")

    def _send_ready(self, conn, pending):
        now = time.monotonic()
        for sid in list(pending):
            p = pending[sid]
            if p.ready_at > now:
                continue
            try:
                if not p.head_sent and p.headers_only:
                    conn.send_headers(sid, [(":status", str(p.status))] + p.headers,
                                      end_stream=True)
                    del pending[sid]
                    continue
                if not p.head_sent:
                    conn.send_headers(sid, [(":status", str(p.status))] + p.headers)
                    p.head_sent = True
                while True:
                    if not p.buf:
                        p.buf = next(p.body_iter, None)
                        if p.buf is None:
                            if p.trailers:
                                conn.send_headers(sid, p.trailers, end_stream=True)
                            else:
                                conn.end_stream(sid)
                            del pending[sid]
                            if p.goaway:
                                conn.close_connection()
                            break
                    window = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
                    if window <= 0:
                        break
                    piece, p.buf = p.buf[:window], p.buf[window:]
                    conn.send_data(sid, piece)
                    before = p.sent
                    p.sent += len(piece)
                    if p.pause_after and before < p.pause_after[0] <= p.sent:
                        p.ready_at = time.monotonic() + p.pause_after[1]
                        break
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError,
                    KeyError):
                pending.pop(sid, None)
