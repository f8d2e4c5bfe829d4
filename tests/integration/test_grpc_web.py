"""gRPC-Web (docs/transcoding.md, "gRPC-Web"; grpc/doc/PROTOCOL-WEB.md) on a route whose upstream
has `protocol: grpc`, over HTTP/1.1 (raw sockets) and HTTP/2 (support.h2client, h2c).

The upstream is grpcio's own server (support.grpc_upstream: raw-bytes messages). Every response
is read incrementally and its body cut into 5-byte-prefixed frames by hand: flag 0x00 a message,
0x80 the trailer frame ("name: value\\r\\n" lines, lower-case names). Text mode
(application/grpc-web-text*) is base64 both ways; the response is decoded 4 characters at a
time, since every piece the gateway sends is padded on its own.

Covered (every gateway test also checks what the gRPC server recorded):
  1. unary and server streaming, binary and text (each content-type), HTTP/1.1 and HTTP/2: the
     response's status, content-type, exact frames and trailer frame
  2. streaming is incremental: frame 0 reaches the client while the server holds message 1 back
  3. an upstream error answered trailers-only: 200, grpc-status/grpc-message in the headers and
     in the trailer frame; an error after two messages: two data frames, then the trailer frame
  4. CORS: the preflight is answered by the gateway; actual answers (errors included) carry
     Access-Control-Allow-Origin and expose grpc-status and grpc-message
  5. metadata both ways (-bin included); the exact request the upstream gets (application/grpc,
     te: trailers, the decoded binary frame)
  6. plain gRPC (grpcio client) on the same route is unchanged
  7. unhappy endings (client leaves mid-stream, malformed base64, a dead upstream, no route), each
     followed by a gRPC-Web call that succeeds on the same gateway (on HTTP/2 the same connection)
The harness tests at the top need no gateway: they check the frame helpers, the gRPC server's
behaviour and the HTTP/2 reader against the gRPC server directly.
"""
import base64
import re
import socket
import time
import urllib.parse
import uuid

import pytest

from support import gateway as gw
from support.grpc_upstream import CHANNEL_OPTIONS, TRAILERS, GrpcUpstream, sha256, stream_message
from support.h2client import H2Client, Closed
from support.h2upstream import H2Upstream
from support.upstream import Upstream
from support.util import SLACK, free_port, wait_until

import grpc  # noqa: E402,I100 - after support.grpc_upstream, which sets gRPC's environment

SVC = "test.Echo"       # route "web": cors with expose_headers [X-Request-Id]
BARE = "bare.Echo"      # route "bare": cors without expose_headers
DEAD = "dead.Echo"      # route "dead": nothing listens at its upstream's port
RAW = "raw.Echo"        # route "raw": an h2 upstream that records the exact request
ORIGIN = "https://app.example.com"
UA = "grpc-web-javascript/0.1"
BINARY = ("application/grpc-web", "application/grpc-web+proto")
TEXT = ("application/grpc-web-text", "application/grpc-web-text+proto")
CTYPES = BINARY + TEXT
TWO_CTYPES = (BINARY[0], TEXT[0])
TRANSPORTS = ("http1", "h2")
LIFETIME = 300.0                 # the module's servers stop on their own after this
CALL_TIMEOUT = 10.0 * SLACK      # the bound of every call meant to succeed
FIRST_FRAME = 3.0 * SLACK        # how soon frame 0 must reach the client
CANCEL_SEEN = 2.0 * SLACK        # how soon the upstream must see a client that left
TRAILER_NAMES = {"grpc-status", "grpc-message", "x-trailer", "x-trailer-bin"}
B64 = re.compile(rb"[A-Za-z0-9+/=]*")
FIELD = re.compile(r"([!#$%&'*+.^_`|~0-9a-z-]+): (.*)")


def new_id():
    return uuid.uuid4().hex


def is_text(ctype):
    return ctype.startswith("application/grpc-web-text")


# ----- frames ------------------------------------------------------------------------------------
def frame(payload, flag=0x00):
    return bytes([flag]) + len(payload).to_bytes(4, "big") + payload


def request_body(ctype, *msgs):
    raw = b"".join(frame(m) for m in msgs)
    return base64.b64encode(raw) if is_text(ctype) else raw


def decode_text(raw):
    """Decodes the complete 4-character groups (each may carry its own padding); returns
    (bytes, number of characters left over)."""
    raw = bytes(raw)
    assert B64.fullmatch(raw), f"not base64: {raw[:200]!r}"
    n = len(raw) // 4 * 4
    out = b"".join(base64.b64decode(raw[i:i + 4], validate=True) for i in range(0, n, 4))
    return out, len(raw) - n


def split_frames(data):
    """[(flag, payload)] of the complete frames, and the bytes after them."""
    frames, pos = [], 0
    while len(data) - pos >= 5:
        n = int.from_bytes(data[pos + 1:pos + 5], "big")
        if len(data) - pos - 5 < n:
            break
        frames.append((data[pos], bytes(data[pos + 5:pos + 5 + n])))
        pos += 5 + n
    return frames, bytes(data[pos:])


def parse_trailer(payload):
    """The trailer frame's fields [(name, value)]: "name: value\\r\\n" lines, lower-case names."""
    text = payload.decode("ascii")
    assert text.endswith("\r\n"), f"trailer block not ended by CRLF: {text!r}"
    fields = []
    for line in text[:-2].split("\r\n"):
        m = FIELD.fullmatch(line)
        assert m, f"trailer line not 'name: value' with a lower-case name: {line!r} in {text!r}"
        fields.append((m.group(1), m.group(2)))
    return fields


def b64any(s):
    """A -bin value: base64, padded or not."""
    return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)


def assert_trailer_fields(payload, code, message=None):
    """The trailer frame: grpc-status once, grpc-message (percent-decoded) for an error, and the
    server's trailing metadata TRAILERS; nothing else."""
    fields = parse_trailer(payload)
    names = [k for k, _ in fields]
    d = dict(fields)
    assert len(names) == len(set(names)) and set(names) <= TRAILER_NAMES, fields
    assert d.get("grpc-status") == str(code), fields
    if message is None:
        assert d.get("grpc-message", "") == "", fields
    else:
        assert urllib.parse.unquote(d.get("grpc-message", ""), errors="strict") == message, fields
    assert d.get("x-trailer") == dict(TRAILERS)["x-trailer"], fields
    assert b64any(d.get("x-trailer-bin", "-")) == dict(TRAILERS)["x-trailer-bin"], fields


# ----- one gRPC-Web call, read incrementally -----------------------------------------------------
class WebCall:
    """A request and its response as far as it has come: status, headers [(lower name, value)],
    raw body bytes, ended (the body is complete), reset (HTTP/2 RST_STREAM code)."""

    def __init__(self, ctype):
        self.ctype = ctype
        self.status = None
        self.headers = []
        self.body = b""
        self.ended = False
        self.reset = None
        self.closed = False
        self.http_trailers = None

    def header(self, name, default=None):
        return next((v for k, v in self.headers if k == name), default)

    def header_all(self, name):
        return [v for k, v in self.headers if k == name]

    def tokens(self, name):
        return {t.strip().lower() for v in self.header_all(name) for t in v.split(",") if t.strip()}

    def data(self):
        """The decoded body (text mode: the complete 4-character groups so far)."""
        return decode_text(self.body)[0] if is_text(self.ctype or "") else bytes(self.body)

    def frames(self):
        return split_frames(self.data())

    def wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0 or self.closed or self.reset is not None:
                raise AssertionError(f"no {what} after {timeout:.1f}s: {self!r}")
            self._pump(left)
        return self

    def wait_frames(self, k, timeout=FIRST_FRAME):
        self.wait(lambda: self.status is not None and len(self.frames()[0]) >= k, timeout,
                  f"{k} complete frame(s)")
        return self.frames()[0]

    def finish(self, timeout=CALL_TIMEOUT):
        return self.wait(lambda: self.ended, timeout, "end of the response")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return (f"<{type(self).__name__} {self.status} {self.headers!r} ended={self.ended} "
                f"reset={self.reset} closed={self.closed} trailers={self.http_trailers!r} "
                f"body={bytes(self.body[:300])!r}>")


class H1Call(WebCall):
    """HTTP/1.1 on its own connection (a raw socket): chunked, Content-Length or close-delimited."""

    def __init__(self, port, method, path, headers, body, ctype):
        super().__init__(ctype)
        self.method = method
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=CALL_TIMEOUT)
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
        lines += [f"{k}: {v}" for k, v in headers]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        self.buf = bytearray()
        self.mode = None
        self.left = None

    def _pump(self, timeout):
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            return
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.closed = True
        self.buf += data
        self._parse()

    def _parse(self):
        if self.status is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1").split("\r\n")
            del self.buf[:end + 4]
            status = int(head[0].split()[1])
            if 100 <= status < 200:
                return self._parse()
            self.status = status
            self.headers = [(k.strip().lower(), v.strip())
                            for k, _, v in (ln.partition(":") for ln in head[1:])]
            if "chunked" in (self.header("transfer-encoding") or "").lower():
                self.mode = "chunked"
            elif self.header("content-length") is not None:
                self.mode, self.left = "length", int(self.header("content-length"))
            else:
                self.mode = "close"
            if status in (204, 304) or self.method == "HEAD" or self.left == 0:
                self.ended = True
        if self.ended:
            return
        if self.mode == "length":
            take = bytes(self.buf[:self.left])
            del self.buf[:len(take)]
            self.body += take
            self.left -= len(take)
            self.ended = self.left == 0
        elif self.mode == "close":
            self.body += bytes(self.buf)
            self.buf.clear()
            self.ended = self.closed
        else:
            self._parse_chunks()

    def _parse_chunks(self):
        while True:
            eol = self.buf.find(b"\r\n")
            if eol < 0:
                return
            size = int(bytes(self.buf[:eol]).split(b";")[0], 16)
            if size == 0:
                rest = bytes(self.buf[eol + 2:])
                if rest.startswith(b"\r\n"):
                    self.http_trailers = []
                elif b"\r\n\r\n" in rest:
                    self.http_trailers = [
                        (k.strip().lower(), v.strip()) for k, _, v in
                        (ln.partition(":") for ln in rest.split(b"\r\n\r\n")[0].decode(
                            "latin-1").split("\r\n"))]
                else:
                    return
                self.ended = True
                return
            if len(self.buf) < eol + 2 + size + 2:
                return
            self.body += bytes(self.buf[eol + 2:eol + 2 + size])
            del self.buf[:eol + 2 + size + 2]

    def cancel(self):
        """The client leaves: the connection is closed."""
        self.sock.close()
        self.closed = True

    def close(self):
        self.sock.close()


class H2Call(WebCall):
    """One stream on an H2Client (the caller's, kept open, or its own)."""

    def __init__(self, conn, method, path, headers, body, ctype, own=False):
        super().__init__(ctype)
        self.c = conn
        self.own = own
        self.sid = conn.request(method, path, headers, body=body)
        self.st = conn.streams[self.sid]

    def _pump(self, timeout):
        try:
            self.c.read_frame(timeout)
        except Closed:
            self.closed = True
        st = self.st
        self.status = st.status
        self.headers = [(k.lower(), v) for k, v in st.headers or []]
        self.body = bytes(st.body)
        self.ended, self.reset, self.http_trailers = st.ended, st.reset, st.trailers

    def cancel(self):
        """The client leaves: RST_STREAM(CANCEL), the connection stays."""
        self.c.rst(self.sid)

    def close(self):
        if self.own:
            self.c.close()


def h2conn(env):
    return H2Client(env.gw.port, timeout=CALL_TIMEOUT)


def open_call(env, transport, method, path, headers, body, ctype, conn=None):
    if transport == "http1":
        return H1Call(env.gw.port, method, path, headers, body, ctype)
    own = conn is None
    return H2Call(conn or h2conn(env), method, path, headers, body, ctype, own=own)


def web_call(env, transport, service, method, ctype, msg, tid, extra=(), conn=None, body=None):
    """POST /service/method as a browser's gRPC-Web client sends it."""
    headers = [("content-type", ctype), ("accept", ctype), ("x-grpc-web", "1"),
               ("x-user-agent", UA), ("x-test-id", tid), ("x-meta", "hello"), *extra]
    if body is None:
        body = request_body(ctype, msg)
    return open_call(env, transport, "POST", f"/{service}/{method}", headers, body, ctype, conn)


# ----- assertions --------------------------------------------------------------------------------
def assert_complete_body(call):
    """The response ended cleanly; the body is whole frames; text mode is whole base64 groups;
    the trailers are in the body, not in HTTP trailers."""
    assert call.ended and call.reset is None, call
    if is_text(call.ctype):
        assert len(call.body) % 4 == 0, f"base64 body of {len(call.body)} characters: {call!r}"
    frames, rest = call.frames()
    assert rest == b"", f"{len(rest)} bytes after the last whole frame: {call!r}"
    for k, v in call.http_trailers or []:
        assert not k.startswith("grpc-"), f"grpc status in HTTP trailers: {call!r}"
    return frames


def assert_web_response(call, msgs, code=0, message=None, tid=None):
    """200, the request's content-type, exactly msgs as data frames, then the trailer frame."""
    assert call.status == 200, call
    assert call.header("content-type") == call.ctype, call
    frames = assert_complete_body(call)
    assert [f for f in frames[:-1]] == [(0x00, m) for m in msgs], \
        (len(frames), [(fl, p[:40]) for fl, p in frames])
    assert frames and frames[-1][0] == 0x80, frames
    assert_trailer_fields(frames[-1][1], code, message)
    if tid is not None:  # the server's initial metadata (it echoes the x- keys) as headers
        assert call.header_all("x-test-id") == [tid], call
        assert call.header_all("x-meta") == ["hello"], call
        assert call.header("grpc-status") is None, f"grpc-status in the headers: {call!r}"


def assert_ended_normally(rec):
    assert rec.wait_done(5 * SLACK), f"the upstream call never ended: {rec!r}"
    assert rec.returned and rec.cancelled is False and rec.failed is None, rec


def assert_upstream_got(rec, method, msg, tid):
    assert rec.method == f"/{SVC}/{method}", rec
    assert rec.test_id == tid and rec.header_all("x-meta") == ["hello"], rec
    assert rec.requests == [(len(msg), sha256(msg))], rec
    assert rec.request_prefixes == [msg[:64]], rec


def assert_still_serving(env, transport, conn=None, ctype=TEXT[0]):
    """After an unhappy case, a gRPC-Web call on the same gateway (on HTTP/2 the given
    connection) goes through end to end."""
    tid = new_id()
    msg = b"still serving " + tid.encode()
    with web_call(env, transport, SVC, "Unary", ctype, msg, tid, conn=conn) as call:
        call.finish()
        assert_web_response(call, [msg], tid=tid)
    rec = env.server.wait_call(tid)
    assert_upstream_got(rec, "Unary", msg, tid)
    assert_ended_normally(rec)
    env.gw.assert_healthy()


# ----- fixtures ----------------------------------------------------------------------------------
class Env:
    def __init__(self, server, raw, g, plain):
        self.server, self.raw, self.gw, self.plain = server, raw, g, plain


@pytest.fixture(scope="module")
def server():
    s = GrpcUpstream("grpcweb", services=(SVC, BARE), lifetime=LIFETIME)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def env(server, module_gateway):
    raw = H2Upstream("grpcweb-raw", lifetime=LIFETIME)
    plain = Upstream("grpcweb-plain")
    expose = {"origins": [ORIGIN], "methods": ["POST"], "expose_headers": ["X-Request-Id"]}
    upstreams = {
        "g": gw.up(server.address, protocol="grpc", timeouts={"connect": "1s", "request": "30s"}),
        "dead": gw.up(f"127.0.0.1:{free_port()}", protocol="grpc", timeouts={"connect": "1s"}),
        "raw": gw.up(raw.address, protocol="grpc", timeouts={"connect": "1s", "request": "10s"}),
        "plain": gw.up(plain.address),
    }
    routes = [
        gw.route("web", {"path_prefix": f"/{SVC}/"}, "g", cors=expose),
        gw.route("bare", {"path_prefix": f"/{BARE}/"}, "g",
                 cors={"origins": [ORIGIN], "methods": ["POST"]}),
        gw.route("dead", {"path_prefix": f"/{DEAD}/"}, "dead", cors=expose),
        gw.route("raw", {"path_prefix": f"/{RAW}/"}, "raw"),
        # A split whose first upstream speaks gRPC and whose chosen one does not.
        gw.route("mixed", {"path_prefix": "/mixed.Svc/"},
                 split=[{"upstream": "g", "weight": 0}, {"upstream": "plain", "weight": 1}]),
    ]
    g = module_gateway(gw.config(routes, upstreams, listener={"http2": True}), name="grpcweb")
    try:
        yield Env(server, raw, g, plain)
    finally:
        raw.stop()
        plain.stop()


# ----- the harness itself (no gateway) -----------------------------------------------------------
def test_harness_frames_and_text_decoding():
    msgs = [b"", b"a", bytes(range(256)) * 3]
    trailer = (b"grpc-status: 5\r\ngrpc-message: no%20such\r\nx-trailer: t\r\n"
               b"x-trailer-bin: AAH+/w\r\n")
    raw = b"".join(frame(m) for m in msgs) + frame(trailer, 0x80)
    frames, rest = split_frames(raw + b"\x00\x00\x00")
    assert rest == b"\x00\x00\x00" and frames == [(0, m) for m in msgs] + [(0x80, trailer)]
    # Text mode: every piece base64 on its own, padded; decoded 4 characters at a time.
    pieces = [raw[:1], raw[1:7], raw[7:300], raw[300:]]
    text = b"".join(base64.b64encode(p) for p in pieces)
    assert b"=" in text[:-2]  # padding in the middle, which a whole-body decoder refuses
    assert decode_text(text) == (raw, 0)
    assert decode_text(text[:-3])[1] == 1
    assert_trailer_fields(trailer, 5, "no such")
    with pytest.raises(AssertionError):
        parse_trailer(b"Grpc-Status: 0\r\n")
    with pytest.raises(AssertionError):
        parse_trailer(b"grpc-status: 0")


def test_harness_server_direct(server):
    """The gRPC server as the tests use it: a stream failing after two messages, a trailers-only
    error, and the raw HTTP/2 reader on a plain gRPC call."""
    tid = new_id()
    with grpc.insecure_channel(server.address, options=CHANNEL_OPTIONS) as ch:
        it = ch.unary_stream(f"/{SVC}/ServerStream")(
            b"n=5;fail_after=2;fail=OUT_OF_RANGE:past the end", metadata=[("x-test-id", tid)],
            timeout=CALL_TIMEOUT)
        got = []
        with pytest.raises(grpc.RpcError) as ei:
            for m in it:
                got.append(m)
        assert got == [stream_message(0), stream_message(1)]
        assert ei.value.code() == grpc.StatusCode.OUT_OF_RANGE
        assert ei.value.details() == "past the end"
        assert ("x-trailer", "t") in [(m.key, m.value) for m in ei.value.trailing_metadata()]
        rec = server.wait_call(tid)
        assert rec.aborted == grpc.StatusCode.OUT_OF_RANGE and len(rec.responses) == 2
    tid = new_id()
    with H2Client(server.port, timeout=CALL_TIMEOUT) as c:
        hdrs = [("content-type", "application/grpc"), ("te", "trailers"), ("x-test-id", tid)]
        sid = c.request("POST", f"/{SVC}/ServerStream", hdrs, body=frame(b"n=3"))
        st = c.response(sid)
    assert split_frames(bytes(st.body)) == ([(0, stream_message(i)) for i in range(3)], b"")
    assert dict(st.trailers)["grpc-status"] == "0" and dict(st.trailers)["x-trailer"] == "t"
    assert_ended_normally(server.wait_call(tid))


# ----- 1 + 2: unary and server streaming ---------------------------------------------------------
@pytest.mark.parametrize("ctype", CTYPES)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unary(env, transport, ctype):
    tid = new_id()
    msg = b"web \x00\x80\xff " + uuid.uuid4().bytes * 4000  # 64 KB: several pieces on the wire
    with web_call(env, transport, SVC, "Unary", ctype, msg, tid) as call:
        call.finish()
        assert_web_response(call, [msg], tid=tid)
    rec = env.server.wait_call(tid)
    assert_upstream_got(rec, "Unary", msg, tid)
    assert rec.responses == [(len(msg), sha256(msg))]
    assert_ended_normally(rec)


@pytest.mark.parametrize("ctype", CTYPES)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_server_stream_is_incremental(env, transport, ctype):
    """The server sends message 0, then holds the rest back until the test opens its gate: the
    client must already have frame 0 (and the initial metadata) by then."""
    tid = new_id()
    req = f"n=4;gate={tid}".encode()
    try:
        with web_call(env, transport, SVC, "ServerStream", ctype, req, tid) as call:
            frames = call.wait_frames(1)
            assert frames == [(0x00, stream_message(0))], frames
            assert call.status == 200 and call.header("content-type") == ctype, call
            assert call.header_all("x-test-id") == [tid], call
            rec = env.server.wait_call(tid)
            assert rec.response_sizes == [len(stream_message(0))] and not rec.returned, rec
            assert not call.ended, call
            env.server.open_gate(tid)
            call.finish()
            assert_web_response(call, [stream_message(i) for i in range(4)], tid=tid)
    finally:
        env.server.open_gate(tid)
    assert_upstream_got(rec, "ServerStream", req, tid)
    assert not rec.gate_timed_out and len(rec.responses) == 4, rec
    assert_ended_normally(rec)


# ----- 3: error statuses -------------------------------------------------------------------------
@pytest.mark.parametrize("ctype", TWO_CTYPES)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_trailers_only_error(env, transport, ctype):
    """The server aborts NOT_FOUND without sending anything (trailers-only): 200, grpc-status and
    grpc-message as response headers, and the body is the trailer frame alone."""
    tid = new_id()
    message = "no such book: 100% caf\u00e9"   # percent-encoded on the wire
    req = f"status:NOT_FOUND:{message}".encode()
    with web_call(env, transport, SVC, "Unary", ctype, req, tid) as call:
        call.finish()
        assert_web_response(call, [], code=5, message=message)
        assert call.header_all("grpc-status") == ["5"], call
        assert urllib.parse.unquote(call.header("grpc-message") or "", errors="strict") == \
            message, call
    rec = env.server.wait_call(tid)
    assert_upstream_got(rec, "Unary", req, tid)
    assert rec.aborted == grpc.StatusCode.NOT_FOUND, rec


@pytest.mark.parametrize("ctype", TWO_CTYPES)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_error_in_the_middle_of_a_stream(env, transport, ctype):
    tid = new_id()
    req = b"n=5;fail_after=2;fail=OUT_OF_RANGE:past the end"
    with web_call(env, transport, SVC, "ServerStream", ctype, req, tid) as call:
        call.finish()
        assert_web_response(call, [stream_message(0), stream_message(1)], code=11,
                            message="past the end", tid=tid)
    rec = env.server.wait_call(tid)
    assert_upstream_got(rec, "ServerStream", req, tid)
    assert rec.aborted == grpc.StatusCode.OUT_OF_RANGE and len(rec.responses) == 2, rec


# ----- 4: CORS -----------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cors_preflight_answered_by_the_gateway(env, transport):
    before = env.server.count()
    asked = "content-type,x-grpc-web,x-user-agent"
    for service in (SVC, BARE):
        hdrs = [("origin", ORIGIN), ("access-control-request-method", "POST"),
                ("access-control-request-headers", asked)]
        with open_call(env, transport, "OPTIONS", f"/{service}/Unary", hdrs, None, None) as r:
            r.finish()
        assert r.status == 204 and r.body == b"", r
        assert r.header_all("access-control-allow-origin") == [ORIGIN], r
        assert r.tokens("access-control-allow-methods") == {"post"}, r
        assert r.header("access-control-allow-headers") == asked, r
        assert "origin" in r.tokens("vary"), r
    time.sleep(0.1)
    assert env.server.count() == before, f"a preflight reached the upstream: {env.server.calls}"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cors_on_actual_answers(env, transport):
    """Allow-Origin and grpc-status/grpc-message exposed on every answer of a cors route: a
    success, a trailers-only error, a route without expose_headers, the gateway's own error."""
    cases = [(SVC, b"cors ok", 0, {"x-request-id"}),
             (SVC, b"status:NOT_FOUND:gone", 5, {"x-request-id"}),
             (BARE, b"cors bare", 0, set()),
             (DEAD, b"cors dead", 14, {"x-request-id"})]
    for service, req, code, extra_exposed in cases:
        tid = new_id()
        with web_call(env, transport, service, "Unary", BINARY[0], req, tid,
                      extra=[("origin", ORIGIN)]) as call:
            call.finish()
        assert call.status == 200, (service, call)
        assert call.header_all("access-control-allow-origin") == [ORIGIN], (service, call)
        exposed = call.tokens("access-control-expose-headers")
        assert {"grpc-status", "grpc-message"} | extra_exposed <= exposed, (service, call)
        if service == DEAD:
            assert call.header("grpc-status") == "14", call
        else:
            assert_web_response(call, [req] if code == 0 else [], code=code,
                                message=None if code == 0 else "gone")
            assert env.server.wait_call(tid).requests == [(len(req), sha256(req))]


# ----- 5: metadata, and what the upstream receives -----------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_metadata_both_ways(env, transport):
    """Request headers reach the server as metadata (a -bin one decoded); the server's initial
    metadata (its echo of the x- keys) comes back as response headers. An empty message."""
    tid = new_id()
    extra = [("x-data-bin", "AP8"), ("x-tenant", "acme")]
    with web_call(env, transport, SVC, "Unary", TEXT[1], b"", tid, extra=extra) as call:
        call.finish()
        assert_web_response(call, [b""], tid=tid)
        assert call.header_all("x-tenant") == ["acme"], call
        assert [b64any(v) for v in call.header_all("x-data-bin")] == [b"\x00\xff"], call
        for name in ("grpc-status", "grpc-message", "x-trailer"):
            assert call.header(name) is None, (name, call)
    rec = env.server.wait_call(tid)
    assert_upstream_got(rec, "Unary", b"", tid)
    assert rec.header_all("x-tenant") == ["acme"] and rec.header_all("x-data-bin") == [b"\x00\xff"]
    assert rec.header("x-request-id"), rec
    assert_ended_normally(rec)


@pytest.mark.parametrize("ctype", TWO_CTYPES)
def test_what_the_upstream_receives(env, ctype):
    """The exact upstream request (an h2 server that records it): POST, application/grpc,
    te: trailers, the binary frame (decoded from text mode), the client's metadata."""
    before = env.raw.count()
    tid = new_id()
    msg = b"raw \x00\xff " + tid.encode()
    with web_call(env, "h2", RAW, "Unary", ctype, msg, tid) as call:
        call.finish()
        assert call.status == 200, call  # (its answer is no gRPC: only that it ends matters)
    recs = env.raw.since(before)
    assert len(recs) == 1, recs
    r = recs[0]
    wait_until(lambda: r.complete, 5 * SLACK, message="the upstream request's end")
    assert (r.method, r.path) == ("POST", f"/{RAW}/Unary"), r
    assert r.header_all("content-type") == ["application/grpc"], r
    assert r.header_all("te") == ["trailers"], r
    assert r.body == frame(msg), r.body
    assert r.header("content-length") in (None, str(len(frame(msg)))), r
    assert r.header_all("x-test-id") == [tid] and r.header_all("x-meta") == ["hello"], r


# ----- 6: plain gRPC on the same route -----------------------------------------------------------
def test_plain_grpc_still_works_on_the_same_route(env):
    tid = new_id()
    with grpc.insecure_channel(f"127.0.0.1:{env.gw.port}", options=CHANNEL_OPTIONS) as ch:
        md = [("x-test-id", tid), ("x-meta", "hello")]
        resp, call = ch.unary_unary(f"/{SVC}/Unary").with_call(b"plain", metadata=md,
                                                               timeout=CALL_TIMEOUT)
        assert resp == b"plain" and call.code() == grpc.StatusCode.OK
        assert ("x-meta", "hello") in [(m.key, m.value) for m in call.initial_metadata()]
        assert ("x-trailer", "t") in [(m.key, m.value) for m in call.trailing_metadata()]
        rec = env.server.wait_call(tid)
        assert_upstream_got(rec, "Unary", b"plain", tid)
        tid2 = new_id()
        it = ch.unary_stream(f"/{SVC}/ServerStream")(
            b"n=4;fail_after=3;fail=ABORTED:stop", metadata=[("x-test-id", tid2)],
            timeout=CALL_TIMEOUT)
        got = []
        with pytest.raises(grpc.RpcError) as ei:
            for m in it:
                got.append(m)
        assert got == [stream_message(i) for i in range(3)]
        assert (ei.value.code(), ei.value.details()) == (grpc.StatusCode.ABORTED, "stop")
        assert env.server.wait_call(tid2).aborted == grpc.StatusCode.ABORTED
    assert_ended_normally(rec)


# ----- 7: unhappy endings ------------------------------------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_client_leaves_mid_stream(env, transport):
    """After frame 1 the client closes its connection (HTTP/1.1) or resets its stream (HTTP/2):
    the server sees the call cancelled and stops; then a call succeeds (same HTTP/2 connection)."""
    tid = new_id()
    n = 1000
    conn = h2conn(env) if transport == "h2" else None
    try:
        with web_call(env, transport, SVC, "ServerStream", TEXT[0],
                      f"n={n};interval_ms=50".encode(), tid, conn=conn) as call:
            assert call.wait_frames(2) == [(0, stream_message(0)), (0, stream_message(1))]
            rec = env.server.wait_call(tid)
            t_cancel = time.monotonic()
            call.cancel()
        assert rec.wait_done(CANCEL_SEEN), \
            f"the server did not see the client leave within {CANCEL_SEEN}s: {rec!r}"
        assert rec.cancelled is True and not rec.returned, rec
        assert rec.ended_at - t_cancel < CANCEL_SEEN, rec
        sent = len(rec.responses)
        assert sent < n, rec
        time.sleep(0.3)
        assert len(rec.responses) == sent, "the server kept streaming after the client left"
        assert_still_serving(env, transport, conn=conn)
    finally:
        if conn is not None:
            conn.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_malformed_base64_in_text_mode(env, transport):
    """Not base64 at all: the call must end at once in an error, either the gateway's own 4xx or
    200 with a non-zero grpc-status (in the headers or the trailer frame). No doc rule says which;
    nothing of it may reach the server as a message."""
    conn = h2conn(env) if transport == "h2" else None
    try:
        tid = new_id()
        body = b"AAAAAAV3Z*#@!not base64!"
        with web_call(env, transport, SVC, "Unary", TEXT[0], None, tid, conn=conn,
                      body=body) as call:
            call.finish(5 * SLACK)
        print(f"malformed base64 over {transport}: {call!r}")
        if call.status == 200:
            status = call.header("grpc-status")
            if status is None:
                frames = assert_complete_body(call)
                assert frames and frames[-1][0] == 0x80, call
                status = dict(parse_trailer(frames[-1][1])).get("grpc-status")
            assert status not in (None, "0"), call
        else:
            assert 400 <= call.status < 500, call
        time.sleep(0.2)
        assert all(c.requests == [] for c in env.server.calls_for(tid)), \
            env.server.calls_for(tid)
        assert_still_serving(env, transport, conn=conn)
    finally:
        if conn is not None:
            conn.close()


@pytest.mark.parametrize("ctype", TWO_CTYPES)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("service,code", [(DEAD, 14), ("nothere.Echo", 12)])
def test_gateway_errors_are_trailers_only(env, transport, ctype, service, code):
    """Nothing listens at the upstream (14 UNAVAILABLE), no route (12 UNIMPLEMENTED): the
    gateway's own trailers-only answer, grpc-status in the headers, soon, in the request's mode
    (text stays text); then a call to a live route succeeds."""
    conn = h2conn(env) if transport == "h2" else None
    try:
        t0 = time.monotonic()
        with web_call(env, transport, service, "Unary", ctype, b"anyone?", new_id(),
                      conn=conn) as call:
            call.finish()
        assert time.monotonic() - t0 < 3.0 * SLACK
        assert call.status == 200, call
        # The request's content-type, or the same with its default "+proto" spelled out.
        assert call.header("content-type") in (ctype, ctype + "+proto"), call
        assert call.header_all("grpc-status") == [str(code)], call
        assert call.header("grpc-message"), call
        frames = assert_complete_body(call)
        # Headers only; a trailer frame repeating them is tolerated.
        assert frames == [] or (len(frames) == 1 and frames[0][0] == 0x80 and dict(
            parse_trailer(frames[0][1])).get("grpc-status") == str(code)), call
        assert_still_serving(env, transport, conn=conn, ctype=ctype)
    finally:
        if conn is not None:
            conn.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_grpc_web_to_a_plain_upstream_of_a_split_goes_through_untouched(env, transport):
    """gRPC-Web is a gRPC call only when the upstream chosen for the request speaks gRPC: a split
    that picked an HTTP/1.1 upstream gets the request as the browser sent it (this once read the
    answer through an HTTP/2 stream that did not exist, and crashed)."""
    before = env.plain.count()
    tid = new_id()
    body = request_body(BINARY[0], b"to plain")
    with web_call(env, transport, "mixed.Svc", "Unary", BINARY[0], b"", tid, body=body) as call:
        call.finish()
        assert call.status == 200, call
    assert env.plain.count() == before + 1
    rec = env.plain.requests[-1]
    assert rec.method == "POST" and rec.target == "/mixed.Svc/Unary", rec
    assert rec.header("content-type") == BINARY[0], rec
    assert rec.body == body
    assert_still_serving(env, transport)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_answer_with_a_length_keeps_its_trailers(env, transport):
    """An upstream that sends content-length on a gRPC answer still ends it with trailers: the
    HTTP/2 client used to drop them (its HTTP/1.1 form had no room for trailers after a
    length), and the call ended in grpc-status 14."""
    tid = new_id()
    with web_call(env, transport, RAW, "grpc-with-length", BINARY[0], b"x", tid) as call:
        call.finish()
        assert call.status == 200, call
        frames = assert_complete_body(call)
    assert frames == [(0x00, b"hi"), (0x80, b"grpc-status: 0\r\ngrpc-message: ok\r\n")], frames
    assert_still_serving(env, transport)
