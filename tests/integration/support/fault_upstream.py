"""An upstream that misbehaves on demand, over HTTP/1.1 or HTTP/2 (h2c, prior knowledge).

    u = FaultUpstream("f1")               # HTTP/1.1;  FaultUpstream("f2", http2=True) for h2c
    u.mode = "garbage"                    # the next request gets garbage; "ok" answers again
    rec = u.last()                        # rec.time: when the request arrived (time.monotonic())

Raw sockets on 127.0.0.1, one thread per connection, every wait bounded by `lifetime`;
stop() closes the listener and every connection. The mode is read when a request is complete
(its head and whole body are in) and recorded on it (`rec.mode`), so switching it at run time
affects the next request, whichever connection it comes on.

Modes (HTTP/1.1 / HTTP/2):

  ok              200, a JSON description of the request (upstream, path, conn, stream)
  refuse          nothing listens: the listener is closed and every open connection dropped;
                  leaving the mode listens on the same port again
  reset_head      TCP RST once the request is in / RST_STREAM (INTERNAL_ERROR) before HEADERS
  tcp_reset_head  TCP RST once the request is in (both)
  reset_body      a 200 head (Content-Length: 1000), 300 body bytes, a pause (HOLD), then a
                  TCP RST / RST_STREAM (INTERNAL_ERROR) after HEADERS and DATA
  tcp_reset_body  the same ending in a TCP RST (both)
  garbage         bytes that are not HTTP / not HTTP/2 frames; then the connection stays open
                  until the gateway closes it. HTTP/2: on a connection accepted in this mode
                  the server preface is never sent either (the garbage comes first)
  head_no_end     "HTTP/1.1 200 OK\\r\\nX-A: b\\r\\n" then silence / a HEADERS frame without
                  END_HEADERS and no CONTINUATION, then no frame at all (the framing is stuck)
  head_trickle    the same head, growing by one header line / one CONTINUATION fragment (never
                  END_HEADERS) every `trickle_gap * 2` seconds: bytes keep coming, no head ends
  hang_body       a complete 200 head with Content-Length: 1000, then nothing
  close_half      the head (Content-Length: 1000), 500 bytes, then FIN (the socket is closed)
  goaway_half     HTTP/2: the same but a GOAWAY (NO_ERROR, last stream = this one) before the
                  FIN; HTTP/1.1: the same as close_half
  trickle         a body of `trickle_size` bytes in pieces of `trickle_piece` bytes, one every
                  `trickle_gap` seconds (the head comes with the first piece), then the end
  trickle_slow    the same with `trickle_slow_gap` seconds between the pieces

`framing` chooses how bodies are delimited: "cl" (Content-Length, the default), or "chunked"
(HTTP/1.1: Transfer-Encoding: chunked; HTTP/2: no content-length, END_STREAM ends the body).
Body bytes are a deterministic pattern (`body_bytes(n)`), a truncated body is a prefix of it.

Each request is a FaultRequest: method, target, path, conn_id, stream_id, time (arrival),
mode ("stuck" for an HTTP/2 request on a connection whose framing is stuck after head_no_end,
head_trickle or garbage: it is never answered), sends (monotonic time, body bytes sent so far)
per write, last_send_at, done_at, and for HTTP/2 peer_reset (error code, time) when the gateway
reset the stream. Each connection is a FaultConn: accepted_at, closed_at, closed_by ("peer"
when the gateway closed or reset it, "us" when the mode or drop_connections() did, "stop"),
peer_goaway (the gateway's GOAWAY: error code, last stream id).
"""
import heapq
import itertools
import json
import select
import socket
import struct
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from hyperframe import frame as hf

from . import util

HOLD = 0.15 * util.SLACK   # pause between a partial answer and the reset/close that ends it
SHORT_TOTAL = 1000         # the announced length in reset_body, hang_body, close_half
PART = 300                 # body bytes sent before reset_body resets
HALF = 500                 # body bytes sent before close_half closes

MODES_H1 = ("ok", "refuse", "reset_head", "tcp_reset_head", "reset_body", "tcp_reset_body",
            "garbage", "head_no_end", "head_trickle", "hang_body", "close_half", "goaway_half",
            "trickle", "trickle_slow")
MODES_H2 = MODES_H1

# Not HTTP: no status line, control bytes, a TLS record header, an SSH banner; it contains an
# empty line so a parser that waits for the end of a head has one.
GARBAGE_H1 = (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03SSH-2.0-garbage \x00\xff\xfe"
              b"\r\nnot: http\r\n\r\n\x00\x01\x02\x03\x04\x05\x06\x07")
# Not HTTP/2 frames: what an HTTP/1.1 server says to a client preface. Read as a frame header
# it is a 4.7 MB frame of type 0x2f: over any max frame size.
GARBAGE_H2 = (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\nConnection: close\r\n\r\n"
              b"bad request" + bytes(range(256)))


def body_bytes(n):
    return b"".join(util.pattern_chunks(n))


def rst_close(sock):
    """Closes with SO_LINGER {on, 0}: the peer gets a TCP RST instead of a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class FaultConn:
    def __init__(self, conn_id, sock):
        self.id = conn_id
        self.sock = sock
        self.accepted_at = time.monotonic()
        self.closed_at = None
        self.closed_by = None
        self.peer_goaway = None   # HTTP/2: (error code, last stream id) of the gateway's GOAWAY
        self.dropping = False
        self.requests = []

    def mark_closed(self, by):
        if self.closed_at is None:
            self.closed_at = time.monotonic()
            self.closed_by = "us" if self.dropping and by == "peer" else by

    def __repr__(self):
        return (f"<FaultConn {self.id} closed_by={self.closed_by} "
                f"requests={[r.path for r in self.requests]}>")


class FaultRequest:
    def __init__(self, conn, stream_id, method, target):
        self.conn = conn
        self.conn_id = conn.id
        self.stream_id = stream_id
        self.method = method
        self.target = target
        self.path = target.partition("?")[0]
        self.time = time.monotonic()
        self.body_len = 0
        self.mode = None
        self.sends = []          # (monotonic time, body bytes sent so far) per write
        self.body_sent = 0
        self.last_send_at = None
        self.done_at = None      # the answer (or the fault) was complete on our side
        self.peer_reset = None   # HTTP/2: (error code, monotonic time) of the gateway's RST_STREAM

    def sent(self, body_bytes_now=0):
        now = time.monotonic()
        self.body_sent += body_bytes_now
        self.last_send_at = now
        self.sends.append((now, self.body_sent))

    def __repr__(self):
        return (f"<FaultRequest {self.method} {self.target} mode={self.mode} conn={self.conn_id} "
                f"stream={self.stream_id} sent={self.body_sent} peer_reset={self.peer_reset} "
                f"conn_closed_by={self.conn.closed_by}>")


class _Gone(Exception):
    """The connection ended (the peer closed it, we closed it, or the upstream stops)."""


class FaultUpstream:
    def __init__(self, name="fault", http2=False, lifetime=180.0):
        self.name = name
        self.http2 = http2
        self.lifetime = lifetime
        self.deadline = time.monotonic() + lifetime
        self.framing = "cl"
        self.trickle_size = 2048
        self.trickle_piece = 128
        self.trickle_gap = 0.05
        self.trickle_slow_gap = 3.0
        self.lock = threading.Lock()
        self.requests = []
        self.conns = []
        self.errors = []          # protocol errors on input (h2's, or a request not parsed)
        self.stopping = threading.Event()
        self._mode = "ok"
        self._threads = []
        self._want_listen = True
        self._wake_r, self._wake_w = socket.socketpair()
        self._listener = self._bind(0)
        self.port = self._listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True,
                                               name=f"fault-{name}")
        self._accept_thread.start()

    # ----- the mode -------------------------------------------------------------------------------
    @property
    def mode(self):
        return self._mode

    @mode.setter
    def mode(self, mode):
        if mode not in (MODES_H2 if self.http2 else MODES_H1):
            raise ValueError(f"unknown mode {mode!r}")
        with self.lock:
            old, self._mode = self._mode, mode
        if mode == "refuse" and old != "refuse":
            self._set_listening(False)
            self.drop_connections()
        elif old == "refuse" and mode != "refuse":
            self._set_listening(True)

    @property
    def listening(self):
        return self._listener is not None

    def _set_listening(self, on):
        self._want_listen = on
        self._wake()
        util.wait_until(lambda: self.listening == on, 5,
                        message=f"{self.name} to {'listen' if on else 'stop listening'}")

    # ----- inspection -----------------------------------------------------------------------------
    def count(self):
        with self.lock:
            return len(self.requests)

    def snapshot(self):
        with self.lock:
            return list(self.requests)

    def since(self, n):
        with self.lock:
            return list(self.requests[n:])

    def last(self):
        with self.lock:
            return self.requests[-1] if self.requests else None

    def connections(self):
        with self.lock:
            return list(self.conns)

    def open_connections(self):
        with self.lock:
            return [c for c in self.conns if c.closed_at is None]

    # ----- lifecycle ------------------------------------------------------------------------------
    def _alive(self):
        return not self.stopping.is_set() and time.monotonic() < self.deadline

    def _bind(self, port):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            ls.bind(("127.0.0.1", port))
            ls.listen(64)
        except OSError:
            ls.close()
            raise
        ls.setblocking(False)
        return ls

    def drop_connections(self, timeout=5.0):
        """Closes every open connection (FIN) and waits until their threads saw it."""
        with self.lock:
            conns = [c for c in self.conns if c.closed_at is None]
        for c in conns:
            c.dropping = True
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        util.wait_until(lambda: all(c.closed_at is not None for c in conns), timeout,
                        message=f"{self.name}'s connections to close")

    def stop(self):
        self.stopping.set()
        self._want_listen = False
        self._wake()
        self._accept_thread.join(5)
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in list(self._threads):
            t.join(5)
        for c in conns:
            c.mark_closed("stop")
            try:
                c.sock.close()
            except OSError:
                pass
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def _wake(self):
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _accept_loop(self):
        bind_failed_since = None
        try:
            while self._alive():
                if self._want_listen and self._listener is None:
                    try:
                        self._listener = self._bind(self.port)
                        bind_failed_since = None
                    except OSError as e:
                        bind_failed_since = bind_failed_since or time.monotonic()
                        if time.monotonic() - bind_failed_since > 5:
                            self.errors.append(f"cannot listen on {self.port} again: {e!r}")
                            return
                        time.sleep(0.05)
                        continue
                if not self._want_listen and self._listener is not None:
                    self._listener.close()
                    self._listener = None
                watched = [self._wake_r] + ([self._listener] if self._listener else [])
                left = min(1.0, self.deadline - time.monotonic())
                r, _, _ = select.select(watched, [], [], max(left, 0))
                if self._wake_r in r:
                    self._wake_r.recv(4096)
                if self._listener is None or self._listener not in r:
                    continue
                try:
                    sock, _ = self._listener.accept()
                except OSError:
                    continue
                sock.settimeout(10)  # a write the gateway never reads ends (as _Gone) in 10 s
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with self.lock:
                    c = FaultConn(len(self.conns) + 1, sock)
                    self.conns.append(c)
                target = self._serve_h2 if self.http2 else self._serve_h1
                t = threading.Thread(target=self._serve, args=(target, c), daemon=True,
                                     name=f"fault-{self.name}-{c.id}")
                self._threads = [x for x in self._threads if x.is_alive()] + [t]
                t.start()
        finally:
            if self._listener is not None:
                self._listener.close()
                self._listener = None

    def _serve(self, target, c):
        try:
            target(c)
        except (_Gone, OSError):
            pass
        except Exception as e:  # noqa: BLE001 - a request it cannot parse: reported, not raised
            with self.lock:
                self.errors.append(f"connection {c.id}: {e!r}")
        finally:
            c.mark_closed("stop" if not self._alive() else "us")
            try:
                c.sock.close()
            except OSError:
                pass

    def _new_request(self, c, stream_id, method, target):
        rec = FaultRequest(c, stream_id, method, target)
        with self.lock:
            self.requests.append(rec)
            c.requests.append(rec)
        return rec

    def _ok_body(self, rec):
        return json.dumps({"upstream": self.name, "method": rec.method, "path": rec.path,
                           "target": rec.target, "conn": rec.conn_id, "stream": rec.stream_id,
                           "version": "HTTP/2" if self.http2 else "HTTP/1.1",
                           "body_len": rec.body_len}).encode()

    # ===== HTTP/1.1 ===============================================================================
    def _serve_h1(self, c):
        io = _H1IO(self, c)
        while True:
            head = io.read_head()
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for ln in lines[1:]:
                k, _, v = ln.partition(":")
                headers[k.strip().lower()] = v.strip()
            body_len = io.read_body(headers)
            rec = self._new_request(c, 0, method, target)
            rec.body_len = body_len
            rec.mode = self._mode
            if not self._h1_answer(io, rec, rec.mode):
                return

    def _h1_answer(self, io, rec, mode):
        """Answers one request; False when the connection is over."""
        chunked = self.framing == "chunked"

        def head(total):
            framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % total
            return (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                    b"X-Upstream-Name: " + self.name.encode() + b"\r\n" + framing + b"\r\n\r\n")

        def piece(data):
            return b"%x\r\n%s\r\n" % (len(data), data) if chunked else data

        if mode == "ok":
            body = self._ok_body(rec)
            io.send(rec, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Upstream-Name: "
                    + self.name.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            rec.done_at = time.monotonic()
            return True
        if mode in ("reset_head", "tcp_reset_head"):
            rec.done_at = time.monotonic()
            io.rst()
            return False
        if mode == "garbage":
            io.send(rec, GARBAGE_H1)
            rec.done_at = time.monotonic()
            io.wait_closed()
            return False
        if mode == "head_no_end":
            io.send(rec, b"HTTP/1.1 200 OK\r\nX-A: b\r\n")
            rec.done_at = time.monotonic()
            io.wait_closed()
            return False
        if mode == "head_trickle":
            io.send(rec, b"HTTP/1.1 200 OK\r\nX-A: b\r\n")
            for i in itertools.count():
                io.pause(self.trickle_gap * 2)
                io.send(rec, b"X-H%d: v\r\n" % i)
        total = self.trickle_size if mode.startswith("trickle") else SHORT_TOTAL
        body = body_bytes(total)
        if mode in ("reset_body", "tcp_reset_body", "close_half", "goaway_half"):
            n = PART if "reset" in mode else HALF
            io.send(rec, head(total) + piece(body[:n]), n)
            io.pause(HOLD)
            rec.done_at = time.monotonic()
            if "reset" in mode:
                io.rst()
            else:
                io.fin()
            return False
        if mode == "hang_body":
            io.send(rec, head(total))
            rec.done_at = time.monotonic()
            io.wait_closed()
            return False
        if mode in ("trickle", "trickle_slow"):
            gap = self.trickle_gap if mode == "trickle" else self.trickle_slow_gap
            step = self.trickle_piece
            io.send(rec, head(total) + piece(body[:step]), min(step, total))
            for off in range(step, total, step):
                io.pause(gap)
                io.send(rec, piece(body[off:off + step]), len(body[off:off + step]))
            if chunked:
                io.send(rec, b"0\r\n\r\n")
            rec.done_at = time.monotonic()
            return True
        raise AssertionError(f"mode {mode!r} has no HTTP/1.1 answer")

    # ===== HTTP/2 =================================================================================
    def _serve_h2(self, c):
        st = _H2State(self, c)
        st.run()


class _H1IO:
    """One HTTP/1.1 connection: bounded reads that notice the peer closing, timed writes."""

    def __init__(self, up, c):
        self.up = up
        self.c = c
        self.sock = c.sock
        self.buf = bytearray()

    def _fill(self, timeout):
        """Reads what comes within timeout; raises _Gone on EOF, reset or stop."""
        if not self.up._alive():  # noqa: SLF001
            raise _Gone()
        r, _, _ = select.select([self.sock], [], [], max(timeout, 0))
        if not r:
            return
        try:
            data = self.sock.recv(256 * 1024)
        except OSError:
            data = b""
        if not data:
            self.c.mark_closed("peer")
            raise _Gone()
        self.buf.extend(data)

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill(0.05)
        end = self.buf.index(b"\r\n\r\n")
        head = bytes(self.buf[:end])
        del self.buf[:end + 4]
        return head

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill(0.05)
        end = self.buf.index(b"\r\n")
        line = bytes(self.buf[:end])
        del self.buf[:end + 2]
        return line

    def _take(self, n):
        while len(self.buf) < n:
            self._fill(0.05)
        del self.buf[:n]

    def read_body(self, headers):
        if "chunked" in headers.get("transfer-encoding", "").lower():
            total = 0
            while True:
                size = int(self._line().split(b";")[0].strip(), 16)
                if size == 0:
                    while self._line():
                        pass
                    return total
                self._take(size + 2)
                total += size
        n = int(headers.get("content-length", "0") or 0)
        self._take(n)
        return n

    def pause(self, seconds):
        """Waits, watching the connection; raises _Gone when the peer closes meanwhile."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            self._fill(min(left, 0.05))

    def wait_closed(self):
        while True:
            self._fill(0.05)

    def send(self, rec, data, body_bytes_now=0):
        try:
            self.sock.sendall(data)
        except OSError:
            self.c.mark_closed("peer")
            raise _Gone() from None
        rec.sent(body_bytes_now)

    def rst(self):
        self.c.mark_closed("us")
        rst_close(self.sock)
        raise _Gone()

    def fin(self):
        """FIN, then wait (briefly) for the peer's close."""
        self.c.mark_closed("us")
        try:
            self.sock.shutdown(socket.SHUT_WR)
            end = time.monotonic() + 2
            while time.monotonic() < end:
                r, _, _ = select.select([self.sock], [], [], 0.05)
                if r and not self.sock.recv(65536):
                    break
        except OSError:
            pass
        raise _Gone()


class _H2State:
    """One HTTP/2 connection: the h2 state machine, timed actions per stream, raw writes."""

    def __init__(self, up, c):
        self.up = up
        self.c = c
        self.sock = c.sock
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        self.held = None       # the server preface, held back while garbage may come first
        self.silent = False    # after garbage or an unfinished header block: no frame may follow
        self.feed = True       # input still goes to the h2 state machine
        self.recs = {}
        self.answered = set()
        self.actions = []      # heap of (time, seq, stream id, fn)
        self.seq = itertools.count()
        if up.mode == "garbage":
            self.held = self.conn.data_to_send()
            self.at(time.monotonic() + 0.3, 0, self._garbage_without_request)
        else:
            self.flush()

    # ----- plumbing -----
    def at(self, when, sid, fn):
        heapq.heappush(self.actions, (when, next(self.seq), sid, fn))

    def cancel(self, sid):
        self.actions = [a for a in self.actions if a[2] != sid]
        heapq.heapify(self.actions)

    def write(self, data, rec=None, body_bytes_now=0):
        try:
            self.sock.sendall(data)
        except OSError:
            self.c.mark_closed("peer")
            raise _Gone() from None
        if rec is not None:
            rec.sent(body_bytes_now)

    def flush(self, rec=None, body_bytes_now=0):
        out = self.conn.data_to_send()
        if self.held is not None:
            self.held += out  # sent after the preface, if no garbage comes first
            return
        if self.silent:
            return
        if out or rec is not None:
            self.write(out, rec, body_bytes_now)

    def rst(self):
        self.c.mark_closed("us")
        rst_close(self.sock)
        raise _Gone()

    def fin(self):
        self.c.mark_closed("us")
        try:
            self.sock.shutdown(socket.SHUT_WR)
            end = time.monotonic() + 2
            while time.monotonic() < end:
                r, _, _ = select.select([self.sock], [], [], 0.05)
                if r and not self.sock.recv(65536):
                    break
        except OSError:
            pass
        raise _Gone()

    # ----- the loop -----
    def run(self):
        while self.up._alive():  # noqa: SLF001
            now = time.monotonic()
            wait = 0.05
            if self.actions:
                wait = min(wait, max(self.actions[0][0] - now, 0))
            r, _, _ = select.select([self.sock], [], [], wait)
            if r:
                try:
                    data = self.sock.recv(256 * 1024)
                except OSError:
                    data = b""
                if not data:
                    self.c.mark_closed("peer")
                    return
                if self.feed:
                    try:
                        events = self.conn.receive_data(data)
                    except h2.exceptions.ProtocolError as e:
                        with self.up.lock:
                            self.up.errors.append(repr(e))
                        self.flush()
                        self.feed = False
                        events = []
                    for ev in events:
                        self.event(ev)
            while self.actions and self.actions[0][0] <= time.monotonic():
                _, _, sid, fn = heapq.heappop(self.actions)
                try:
                    fn()
                except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
                    self.cancel(sid)
            self.flush()
        raise _Gone()

    def event(self, ev):
        if isinstance(ev, h2.events.RequestReceived):
            pseudo = dict((k, v) for k, v in ev.headers if k.startswith(":"))
            rec = self.up._new_request(self.c, ev.stream_id, pseudo.get(":method"),  # noqa: SLF001
                                       pseudo.get(":path", ""))
            self.recs[ev.stream_id] = rec
            if ev.stream_ended is not None:
                self.answer(rec)
        elif isinstance(ev, h2.events.DataReceived):
            rec = self.recs.get(ev.stream_id)
            if rec is not None:
                rec.body_len += len(ev.data)
            if ev.flow_controlled_length:
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            if ev.stream_ended is not None and rec is not None:
                self.answer(rec)
        elif isinstance(ev, h2.events.StreamEnded):
            rec = self.recs.get(ev.stream_id)
            if rec is not None:
                self.answer(rec)
        elif isinstance(ev, h2.events.StreamReset):
            rec = self.recs.get(ev.stream_id)
            if rec is not None:
                rec.peer_reset = (ev.error_code, time.monotonic())
            self.cancel(ev.stream_id)
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.c.peer_goaway = (ev.error_code, ev.last_stream_id)

    # ----- answers -----
    def _garbage_without_request(self):
        if self.held is not None:
            self.held = None
            self.silent = True
            self.write(GARBAGE_H2)

    def head(self, rec, total):
        headers = [(":status", "200"), ("content-type", "application/octet-stream"),
                   ("x-upstream-name", self.up.name)]
        if self.up.framing == "cl":
            headers.append(("content-length", str(total)))
        self.conn.send_headers(rec.stream_id, headers)

    def data(self, rec, data, end=False):
        self.conn.send_data(rec.stream_id, data, end_stream=end)
        self.flush(rec, len(data))

    def answer(self, rec):
        if rec.stream_id in self.answered:
            return
        self.answered.add(rec.stream_id)
        if self.silent:
            rec.mode = "stuck"  # the framing is stuck: nothing can be answered any more
            return
        mode = rec.mode = self.up.mode
        sid = rec.stream_id
        conn = self.conn
        if self.held is not None:
            held, self.held = self.held, None
            self.cancel(0)
            if mode == "garbage":
                self.silent = True
                self.write(GARBAGE_H2, rec)
                rec.done_at = time.monotonic()
                return
            self.write(held)
        if mode == "ok":
            body = self.up._ok_body(rec)  # noqa: SLF001
            conn.send_headers(sid, [(":status", "200"), ("content-type", "application/json"),
                                    ("content-length", str(len(body))),
                                    ("x-upstream-name", self.up.name)])
            self.data(rec, body, end=True)
            rec.done_at = time.monotonic()
        elif mode == "reset_head":
            conn.reset_stream(sid, error_code=2)
            self.flush(rec)
            rec.done_at = time.monotonic()
        elif mode == "tcp_reset_head":
            self.flush()
            rec.done_at = time.monotonic()
            self.rst()
        elif mode == "garbage":
            self.flush()
            self.silent = True
            self.write(GARBAGE_H2, rec)
            rec.done_at = time.monotonic()
        elif mode in ("head_no_end", "head_trickle"):
            self.flush()
            self.silent = True
            extra = [(f"x-h{i}", "v" * 8) for i in range(120)] if mode == "head_trickle" else []
            block = conn.encoder.encode([(":status", "200"), ("x-a", "b")] + extra)
            if mode == "head_no_end":
                self.write(hf.HeadersFrame(sid, data=block).serialize(), rec)
                rec.done_at = time.monotonic()
                return
            pieces = [block[i:i + 8] for i in range(0, len(block), 8)][:-1]  # never the end
            self.write(hf.HeadersFrame(sid, data=pieces[0]).serialize(), rec)
            gap = self.up.trickle_gap * 2
            for i, p in enumerate(pieces[1:], 1):
                self.at(time.monotonic() + i * gap, sid,
                        lambda p=p: self.write(hf.ContinuationFrame(sid, data=p).serialize(), rec))
        elif mode in ("reset_body", "tcp_reset_body", "close_half", "goaway_half"):
            body = body_bytes(SHORT_TOTAL)
            self.head(rec, SHORT_TOTAL)
            self.data(rec, body[:PART if "reset" in mode else HALF])

            def end():
                rec.done_at = time.monotonic()
                if mode == "reset_body":
                    conn.reset_stream(sid, error_code=2)
                    self.flush()
                elif mode == "tcp_reset_body":
                    self.rst()
                else:
                    if mode == "goaway_half":
                        conn.close_connection(error_code=0, last_stream_id=sid)
                        self.flush()
                    self.fin()
            self.at(time.monotonic() + HOLD, sid, end)
        elif mode == "hang_body":
            self.head(rec, SHORT_TOTAL)
            self.flush(rec)
            rec.done_at = time.monotonic()
        elif mode in ("trickle", "trickle_slow"):
            total = self.up.trickle_size
            step = self.up.trickle_piece
            gap = self.up.trickle_gap if mode == "trickle" else self.up.trickle_slow_gap
            body = body_bytes(total)
            self.head(rec, total)
            offsets = list(range(0, total, step))
            t0 = time.monotonic()
            for i, off in enumerate(offsets):
                last = i == len(offsets) - 1

                def send(off=off, last=last):
                    self.data(rec, body[off:off + step], end=last)
                    if last:
                        rec.done_at = time.monotonic()
                if i == 0:
                    send()
                else:
                    self.at(t0 + i * gap, sid, send)
        else:
            raise AssertionError(f"mode {mode!r} has no HTTP/2 answer")
