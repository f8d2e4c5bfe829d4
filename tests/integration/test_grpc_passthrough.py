"""gRPC passthrough: a route whose upstream has `protocol: grpc` relays gRPC calls (SPEC §8).

Real clients and servers on both ends: Python's grpcio (generic handlers, raw-bytes messages, no
protoc) as the client and as the upstream (support.grpc_upstream), plus the raw HTTP/2 client
(support.h2client) and the h2 upstream (support.h2upstream) where the exact frames matter.

The main tests run over two transports, h2c -> h2c and TLS -> TLS (client to gateway, gateway to
upstream), and also straight from the client to the gRPC server without the gateway ("direct"):
those direct runs are the sanity checks of the harness itself and must always pass.

Covered (each gateway test also checks what the upstream server saw):
  1. unary, server streaming (each message relayed as it comes: the upstream holds message 1
     back until the client got message 0), client streaming, bidi ping-pong
  2. metadata both ways, including -bin keys; trailing metadata (with a -bin key) reaches the
     client
  3. upstream error statuses pass through unchanged (code, details, trailing metadata)
  4. a client deadline: DEADLINE_EXCEEDED, and the upstream sees the call cancelled
  5. the gateway enforces grpc-timeout itself (raw client, an upstream that never answers):
     grpc-status 4 in ~0.3 s, and the upstream stream is reset
  6. a client cancel (server streaming and bidi) reaches the upstream
  7. 4 MiB messages both ways (unary, and several through one bidi call)
  8. 20 concurrent unary calls over one channel
  9. a dead upstream: UNAVAILABLE within ~3 s
 10. gateway errors are trailers-only gRPC responses: no route 12, no API key 16, ip deny 7, rate
     limit 8, upstream request timeout 4, an upstream that is not HTTP/2 14; raw frames checked
 11. after every unhappy case a normal call on the same channel and gateway succeeds
"""
import json
import os
import queue
import threading
import time
import uuid

import pytest

from support import certs
from support import gateway as gw
from support.grpc_upstream import (CHANNEL_OPTIONS, TRAILERS, GrpcUpstream, sha256,
                                   stream_message)
from support.h2client import H2Client
from support.h2upstream import H2Upstream
from support.util import SLACK, free_port, wait_until

import grpc  # noqa: E402,I100 - after support.grpc_upstream, which sets gRPC's environment

MiB = 1 << 20
SVC = "test.Echo"
# Every service name the gRPC upstream serves (one route prefix each in the gateway).
SERVICES = (SVC, "keyed.Echo", "denied.Echo", "limited.Echo", "slowup.Echo")
ALICE_KEY = "k-grpc-alice-0123456789"
CALL_TIMEOUT = 10.0 * SLACK      # the deadline of every call that is meant to succeed
CANCEL_SEEN = 2.0 * SLACK        # how soon the upstream must see a cancel / an expired deadline
LIFETIME = 300.0                 # the module's servers stop on their own after this
CLIENT_MD = (("x-meta", "hello"), ("x-data-bin", b"\x00\xff"))


# ----- helpers -----------------------------------------------------------------------------------
def new_id():
    return uuid.uuid4().hex


def md(tid, *extra):
    """The metadata every test call sends: its id, a text key and a binary (-bin) key."""
    return [("x-test-id", tid), *CLIENT_MD, *extra]


def mdl(metadata):
    return [(m.key, m.value) for m in (metadata or ())]


def assert_echoed_metadata(initial, tid):
    """The upstream echoes the client's x- metadata as initial metadata: it went both ways."""
    got = mdl(initial)
    for kv in (("x-test-id", tid), *CLIENT_MD):
        assert kv in got, (kv, got)
    assert [v for k, v in got if k == "x-data-bin"] == [b"\x00\xff"], got


def assert_trailers(trailing):
    got = mdl(trailing)
    for kv in TRAILERS:
        assert kv in got, (kv, got)
    assert [v for k, v in got if k == "x-trailer-bin"] == [b"\x00\x01\xfe\xff"], got


def assert_upstream_metadata(rec, tid):
    """The upstream got the client's metadata unchanged (the binary value byte for byte)."""
    assert rec.test_id == tid, rec
    assert rec.header_all("x-meta") == ["hello"], rec
    assert rec.header_all("x-data-bin") == [b"\x00\xff"], rec


def assert_ended_normally(rec):
    assert rec.wait_done(5 * SLACK), f"the upstream call never ended: {rec!r}"
    assert rec.returned and rec.cancelled is False and rec.failed is None, rec


def unary(ch, method="Unary", service=SVC):
    return ch.unary_unary(f"/{service}/{method}")


class Bidi:
    """A bidi call fed one message at a time (ping-pong: send, then wait for the echo)."""

    def __init__(self, ch, metadata, timeout=CALL_TIMEOUT, service=SVC):
        self._q = queue.Queue()
        self._stop = threading.Event()
        self.call = ch.stream_stream(f"/{service}/Bidi")(self._requests(), metadata=metadata,
                                                         timeout=timeout)

    def _requests(self):
        while True:
            try:
                item = self._q.get(timeout=0.05)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            if item is None:
                return
            yield item

    def send(self, msg):
        self._q.put(msg)

    def recv(self):
        return next(self.call)

    def close_send(self):
        self._q.put(None)

    def cancel(self):
        self._stop.set()
        self.call.cancel()

    def finish(self):
        """Ends the request side; returns the remaining responses (waits for the status)."""
        self.close_send()
        rest = list(self.call)
        self._stop.set()
        return rest

    def abandon(self):
        self._stop.set()
        self._q.put(None)


class TlsFiles:
    def __init__(self, ca, cert, key):
        self.ca = ca
        self.cert = cert
        self.key = key
        with open(ca, "rb") as f:
            self.ca_pem = f.read()


class Env:
    """One transport's servers: the gRPC upstream, an h2 upstream that can hang, an HTTP/1.1
    upstream (not HTTP/2 at all) and a port where nothing listens."""

    def __init__(self, transport, files, server, h2up, h1, dead_port):
        self.transport = transport
        self.tls = transport == "tls"
        self.files = files
        self.server = server
        self.h2up = h2up
        self.h1 = h1
        self.dead_port = dead_port


class Target:
    """Where a test's client connects: the gRPC server itself ("direct") or the gateway."""

    def __init__(self, env, via, port, gateway=None):
        self.env = env
        self.via = via
        self.port = port
        self.gateway = gateway
        self.server = env.server

    def channel(self):
        addr = f"127.0.0.1:{self.port}"
        if self.env.tls:
            creds = grpc.ssl_channel_credentials(root_certificates=self.env.files.ca_pem)
            return grpc.secure_channel(addr, creds, options=CHANNEL_OPTIONS + [
                ("grpc.ssl_target_name_override", "localhost")])
        return grpc.insecure_channel(addr, options=CHANNEL_OPTIONS)

    def raw(self, timeout=5.0 * SLACK):
        """The raw HTTP/2 client (h2c with prior knowledge, or TLS with ALPN h2)."""
        return H2Client(self.port, timeout=timeout, tls=True if self.env.tls else None)


def assert_still_serving(t, ch):
    """After an unhappy case: a normal unary call on the same channel works end to end."""
    tid = new_id()
    req = b"still serving " + tid.encode()
    resp, call = unary(ch).with_call(req, metadata=md(tid), timeout=CALL_TIMEOUT)
    assert resp == req
    assert call.code() == grpc.StatusCode.OK
    assert_trailers(call.trailing_metadata())
    rec = t.server.wait_call(tid)
    assert rec.requests == [(len(req), sha256(req))], rec
    assert_ended_normally(rec)
    if t.gateway is not None:
        t.gateway.assert_healthy()


def assert_logged_by_gateway(t, path, route, status=200):
    """Through the gateway, the call is in its access log with the route and the upstream's
    endpoint (the "direct" runs skip this)."""
    if t.gateway is None:
        return

    def entry():
        return [e for e in t.gateway.access_log_json()
                if e.get("path") == path and e.get("route") == route]
    entries = wait_until(entry, 5 * SLACK, message=f"an access log line for {path}")
    assert entries[-1]["status"] == status, entries[-1]
    # (The endpoint may carry a suffix such as " h2".)
    assert (entries[-1]["endpoint"] or "").split()[0] == t.server.address, entries[-1]


def grpc_frame(msg):
    """One length-prefixed gRPC message (uncompressed)."""
    return b"\x00" + len(msg).to_bytes(4, "big") + msg


def raw_grpc_call(c, path, extra=(), msg=b"raw", timeout=5.0 * SLACK):
    """A gRPC request by hand (POST, application/grpc, te: trailers, one message, END_STREAM);
    waits until the stream ends. Returns (StreamResult, [(frame type, flags)] of that stream,
    seconds until it ended)."""
    sid = c.new_sid()
    headers = c.request_headers("POST", path, [("content-type", "application/grpc"),
                                               ("te", "trailers"), *extra])
    t0 = time.monotonic()
    c.send_headers(sid, headers)
    c.send_body(sid, grpc_frame(msg), end_stream=True)
    st = c.streams[sid]
    frames = []
    deadline = t0 + timeout
    while not st.done:
        left = deadline - time.monotonic()
        assert left > 0, f"no answer on stream {sid} within {timeout}s: {st!r}"
        f = c.read_frame(left)
        if f is not None and getattr(f, "stream_id", 0) == sid:
            frames.append((type(f).__name__, set(f.flags)))
    return st, frames, time.monotonic() - t0


def hget(headers, name):
    return next((v for k, v in headers or [] if k == name), None)


def assert_trailers_only(st, frames, code):
    """A trailers-only gRPC response: one HEADERS block with END_STREAM carrying :status 200,
    content-type application/grpc*, grpc-status and grpc-message; no DATA, no trailers."""
    assert st.status == 200, st
    ctype = st.header("content-type") or ""
    assert ctype.startswith("application/grpc"), st
    assert "json" not in ctype, st
    assert st.header("grpc-status") == str(code), st
    assert st.header("grpc-message") is not None, st
    assert st.trailers is None, st
    assert st.body_len == 0, st
    assert st.ended and st.reset is None, st
    kinds = [k for k, _ in frames]
    assert "DataFrame" not in kinds, frames
    assert kinds[0] == "HeadersFrame" and "END_STREAM" in frames[0][1], frames
    assert kinds.count("HeadersFrame") == 1, frames


# ----- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A CA (support.certs) and a server certificate for "localhost" signed by it: the gateway's
    listener and the TLS upstreams serve it, clients and the gateway trust the CA."""
    d = str(tmp_path_factory.mktemp("grpc-pki"))
    ca = certs.make_ca(d, "ca", "Portico gRPC Test CA")
    leaf = certs.issue(ca, d, "localhost", "localhost", dns=["localhost"], usage="server")
    return TlsFiles(ca.cert, leaf.cert, leaf.key)


@pytest.fixture(scope="module", params=["h2c", "tls"])
def env(request, tls_files, module_upstreams):
    transport = request.param
    pair = (tls_files.cert, tls_files.key) if transport == "tls" else None
    server = GrpcUpstream(f"grpc-{transport}", services=SERVICES, tls=pair, lifetime=LIFETIME)
    h2up = H2Upstream(f"h2hang-{transport}", lifetime=LIFETIME, tls=pair)
    try:
        yield Env(transport, tls_files, server, h2up, module_upstreams(f"h1-{transport}"),
                  free_port())
    finally:
        server.stop()
        h2up.stop()


def gateway_config(e):
    tls_up = {"verify": True, "ca": e.files.ca, "sni": "localhost"} if e.tls else None

    def grpc_up(address, **timeouts):
        d = gw.up(address, protocol="grpc", timeouts=timeouts)
        if tls_up:
            d["tls"] = dict(tls_up)
        return d

    upstreams = {
        "g": grpc_up(e.server.address, connect="1s", request="30s"),
        "g_short": grpc_up(e.server.address, connect="1s", request="1s"),
        "hang": grpc_up(e.h2up.address, connect="1s", request="30s"),
        "dead": grpc_up(f"127.0.0.1:{e.dead_port}", connect="1s"),
        # An HTTP/1.1 server (plain in both transports) behind protocol: grpc.
        "h1": gw.up(e.h1.address, protocol="grpc", timeouts={"connect": "1s", "request": "5s"}),
    }
    routes = [
        gw.route("grpc", {"path_prefix": f"/{SVC}/"}, "g"),
        gw.route("keyed", {"path_prefix": "/keyed.Echo/"}, "g", auth=["keys"]),
        gw.route("denied", {"path_prefix": "/denied.Echo/"}, "g", ip={"deny": ["127.0.0.1/32"]}),
        gw.route("limited", {"path_prefix": "/limited.Echo/"}, "g",
                 rate_limit={"limit": 1, "window": "1m"}),
        gw.route("slowup", {"path_prefix": "/slowup.Echo/"}, "g_short"),
        gw.route("h1", {"path_prefix": "/h1.Echo/"}, "h1"),
        gw.route("dead", {"path_prefix": "/dead.Echo/"}, "dead"),
        gw.route("hang", {"path_prefix": "/hang"}, "hang"),
    ]
    listener = {"http2": True}
    if e.tls:
        listener["tls"] = {"certificates": [{"cert": e.files.cert, "key": e.files.key}]}
    # Several 4 MiB messages go through one bidi call: above the default 10 MiB body limit,
    # which is not what these tests are about.
    return gw.config(routes, upstreams, listener=listener, limits={"max_body_bytes": "64MiB"},
                     auth_providers={"keys": {"type": "api_key", "from": ["header:X-API-Key"]}},
                     consumers=[{"name": "alice", "api_keys": [ALICE_KEY]}])


@pytest.fixture(scope="module")
def gw_env(env, module_gateway):
    return module_gateway(gateway_config(env), name=f"grpc-{env.transport}")


@pytest.fixture(params=["direct", "gateway"])
def target(request, env):
    """Parametrized: "direct" (client -> gRPC server, the harness's sanity check) and "gateway"
    (client -> portico -> gRPC server)."""
    if request.param == "direct":
        return Target(env, "direct", env.server.port)
    g = request.getfixturevalue("gw_env")
    return Target(env, "gateway", g.port, g)


@pytest.fixture
def gtarget(env, gw_env):
    """Through the gateway only (for what only a gateway does)."""
    return Target(env, "gateway", gw_env.port, gw_env)


# ----- 1 + 2: the four call types, metadata both ways --------------------------------------------
def test_unary_echo_with_metadata_both_ways(target):
    t = target
    tid = new_id()
    req = b"hello \x00\xff unary " + os.urandom(100)
    with t.channel() as ch:
        resp, call = unary(ch).with_call(req, metadata=md(tid), timeout=CALL_TIMEOUT)
        assert resp == req
        assert call.code() == grpc.StatusCode.OK
        assert_echoed_metadata(call.initial_metadata(), tid)
        assert_trailers(call.trailing_metadata())
    rec = t.server.wait_call(tid)
    assert rec.method == f"/{SVC}/Unary"
    assert_upstream_metadata(rec, tid)
    assert rec.requests == [(len(req), sha256(req))]
    assert rec.responses == [(len(req), sha256(req))]
    assert_ended_normally(rec)
    assert_logged_by_gateway(t, f"/{SVC}/Unary", "grpc")


def test_unary_empty_message(target):
    t = target
    tid = new_id()
    with t.channel() as ch:
        resp, call = unary(ch).with_call(b"", metadata=md(tid), timeout=CALL_TIMEOUT)
        assert resp == b""
        assert call.code() == grpc.StatusCode.OK
        assert_trailers(call.trailing_metadata())
    rec = t.server.wait_call(tid)
    assert rec.request_sizes == [0]
    assert_ended_normally(rec)


def test_server_streaming_relays_each_message_as_it_comes(target):
    """The upstream sends message 0 and then holds the rest back until the client has message 0:
    a gateway that buffers the response (whole, or until more arrives) never delivers it."""
    t = target
    tid = new_id()
    srv = t.server
    with t.channel() as ch:
        it = ch.unary_stream(f"/{SVC}/ServerStream")(f"n=5;gate={tid}".encode(),
                                                      metadata=md(tid), timeout=CALL_TIMEOUT)
        try:
            try:
                first = next(it)
            except grpc.RpcError as e:
                pytest.fail(f"message 0 never came while the upstream held message 1 back: "
                            f"{e.code()} {e.details()!r}")
            assert first == stream_message(0)
            rec = srv.wait_call(tid)
            # Message 0 arrived while the upstream is still waiting to send message 1.
            assert rec.response_sizes == [len(stream_message(0))] and not rec.returned, rec
            assert_echoed_metadata(it.initial_metadata(), tid)
            srv.open_gate(tid)
            rest = list(it)
        finally:
            srv.open_gate(tid)
        assert rest == [stream_message(i) for i in range(1, 5)]
        assert it.code() == grpc.StatusCode.OK
        assert_trailers(it.trailing_metadata())
    assert rec.method == f"/{SVC}/ServerStream"
    assert_upstream_metadata(rec, tid)
    assert len(rec.responses) == 5 and not rec.gate_timed_out
    assert_ended_normally(rec)


def test_server_streaming_many_messages(target):
    t = target
    tid = new_id()
    n, size = 300, 1000
    with t.channel() as ch:
        it = ch.unary_stream(f"/{SVC}/ServerStream")(f"n={n};size={size}".encode(),
                                                      metadata=md(tid), timeout=CALL_TIMEOUT)
        got = list(it)
        assert it.code() == grpc.StatusCode.OK
        assert_trailers(it.trailing_metadata())
    assert len(got) == n
    assert got == [stream_message(i, size) for i in range(n)]
    rec = t.server.wait_call(tid)
    assert rec.response_sizes == [size] * n
    assert_ended_normally(rec)


def test_client_streaming(target):
    t = target
    tid = new_id()
    msgs = [b"", b"a", os.urandom(1000), os.urandom(65536), os.urandom(300_000)]
    with t.channel() as ch:
        resp, call = ch.stream_unary(f"/{SVC}/ClientStream").with_call(
            iter(msgs), metadata=md(tid), timeout=CALL_TIMEOUT)
        assert call.code() == grpc.StatusCode.OK
        assert_echoed_metadata(call.initial_metadata(), tid)
        assert_trailers(call.trailing_metadata())
    body = json.loads(resp)
    assert body == {"count": len(msgs), "bytes": sum(map(len, msgs)),
                    "sha256": sha256(b"".join(msgs))}
    rec = t.server.wait_call(tid)
    assert rec.method == f"/{SVC}/ClientStream"
    assert_upstream_metadata(rec, tid)
    assert rec.requests == [(len(m), sha256(m)) for m in msgs]
    assert_ended_normally(rec)


def test_bidi_ping_pong(target):
    """Each message is sent only after the previous one's echo came back: a gateway that waits
    for the end of the request stream (or buffers either way) deadlocks this."""
    t = target
    tid = new_id()
    msgs = [f"ping-{i}-".encode() + os.urandom(i * 100) for i in range(10)]
    with t.channel() as ch:
        b = Bidi(ch, md(tid))
        try:
            for m in msgs:
                b.send(m)
                try:
                    echo = b.recv()
                except grpc.RpcError as e:
                    pytest.fail(f"no echo of {m[:8]!r}: {e.code()} {e.details()!r}")
                assert echo == m
            assert_echoed_metadata(b.call.initial_metadata(), tid)
            assert b.finish() == []
        finally:
            b.abandon()
        assert b.call.code() == grpc.StatusCode.OK
        assert_trailers(b.call.trailing_metadata())
    rec = t.server.wait_call(tid)
    assert rec.method == f"/{SVC}/Bidi"
    assert_upstream_metadata(rec, tid)
    assert rec.requests == [(len(m), sha256(m)) for m in msgs]
    assert rec.responses == rec.requests
    assert_ended_normally(rec)


# ----- 3: upstream statuses pass through unchanged -----------------------------------------------
@pytest.mark.parametrize("code,details", [
    ("NOT_FOUND", "no such thing"),
    ("INVALID_ARGUMENT", "field x must be positive"),
    ("FAILED_PRECONDITION", "100% wrong: caf\u00e9 \u2603"),   # percent-encoded on the wire
])
def test_upstream_error_status_passes_through(target, code, details):
    t = target
    tid = new_id()
    with t.channel() as ch:
        with pytest.raises(grpc.RpcError) as ei:
            unary(ch).with_call(f"status:{code}:{details}".encode(), metadata=md(tid),
                                timeout=CALL_TIMEOUT)
        e = ei.value
        assert e.code() == grpc.StatusCode[code], (e.code(), e.details())
        assert e.details() == details
        assert_trailers(e.trailing_metadata())
        rec = t.server.wait_call(tid)
        assert rec.aborted == grpc.StatusCode[code], rec
        assert_upstream_metadata(rec, tid)
        assert_still_serving(t, ch)


def test_upstream_error_status_in_bidi_after_messages(target):
    """An error status after some messages (HEADERS, DATA, then trailers with grpc-status)."""
    t = target
    tid = new_id()
    with t.channel() as ch:
        b = Bidi(ch, md(tid))
        try:
            b.send(b"one")
            assert b.recv() == b"one"
            b.send(b"status:OUT_OF_RANGE:past the end")
            with pytest.raises(grpc.RpcError) as ei:
                b.recv()
        finally:
            b.abandon()
        assert ei.value.code() == grpc.StatusCode.OUT_OF_RANGE
        assert ei.value.details() == "past the end"
        assert_trailers(ei.value.trailing_metadata())
        rec = t.server.wait_call(tid)
        assert rec.aborted == grpc.StatusCode.OUT_OF_RANGE and rec.request_sizes[0] == 3
        assert_still_serving(t, ch)


# ----- 4 + 6: deadlines and cancels reach the upstream -------------------------------------------
def test_client_deadline_cancels_the_upstream_call(target):
    t = target
    tid = new_id()
    with t.channel() as ch:
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as ei:
            unary(ch).with_call(b"sleep:5000", metadata=md(tid), timeout=0.5)
        elapsed = time.monotonic() - t0
        assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, ei.value
        assert elapsed < 2.0 * SLACK, elapsed
        expired_at = t0 + 0.5
        rec = t.server.wait_call(tid, timeout=CANCEL_SEEN)
        left = expired_at + CANCEL_SEEN - time.monotonic()
        assert rec.wait_done(max(left, 0.01)), \
            f"the upstream call was still running {CANCEL_SEEN}s after the deadline: {rec!r}"
        assert rec.cancelled is True and not rec.returned, rec
        assert rec.ended_at - expired_at < CANCEL_SEEN, rec
        assert_still_serving(t, ch)


def test_client_cancel_of_server_stream_reaches_the_upstream(target):
    t = target
    tid = new_id()
    n = 1000
    with t.channel() as ch:
        it = ch.unary_stream(f"/{SVC}/ServerStream")(f"n={n};interval_ms=50".encode(),
                                                      metadata=md(tid), timeout=60 * SLACK)
        assert next(it) == stream_message(0)
        assert next(it) == stream_message(1)
        rec = t.server.wait_call(tid)
        t_cancel = time.monotonic()
        it.cancel()
        assert rec.wait_done(CANCEL_SEEN), \
            f"the upstream did not see the cancel within {CANCEL_SEEN}s: {rec!r}"
        assert rec.cancelled is True and not rec.returned, rec
        assert rec.ended_at - t_cancel < CANCEL_SEEN, rec
        sent = len(rec.responses)
        assert sent < n, rec
        time.sleep(0.3)
        assert len(rec.responses) == sent, "the upstream kept streaming after the cancel"
        assert_still_serving(t, ch)


def test_client_cancel_of_bidi_reaches_the_upstream(target):
    t = target
    tid = new_id()
    with t.channel() as ch:
        b = Bidi(ch, md(tid), timeout=60 * SLACK)
        try:
            b.send(b"before cancel")
            assert b.recv() == b"before cancel"
            rec = t.server.wait_call(tid)
            t_cancel = time.monotonic()
            b.cancel()
        finally:
            b.abandon()
        assert rec.wait_done(CANCEL_SEEN), \
            f"the upstream did not see the cancel within {CANCEL_SEEN}s: {rec!r}"
        # (The handler may have seen the request stream simply end and returned: what counts
        # is that gRPC reports the call cancelled, not completed.)
        assert rec.cancelled is True, rec
        assert rec.ended_at - t_cancel < CANCEL_SEEN, rec
        assert rec.request_sizes == [len(b"before cancel")]
        assert_still_serving(t, ch)


# ----- 7: large messages -------------------------------------------------------------------------
def test_unary_4mib_both_ways(target):
    t = target
    tid = new_id()
    req = os.urandom(4 * MiB)
    with t.channel() as ch:
        resp, call = unary(ch).with_call(req, metadata=md(tid), timeout=CALL_TIMEOUT)
        assert call.code() == grpc.StatusCode.OK
        assert_trailers(call.trailing_metadata())
    assert len(resp) == 4 * MiB and sha256(resp) == sha256(req)
    rec = t.server.wait_call(tid)
    assert rec.requests == [(4 * MiB, sha256(req))]
    assert rec.responses == [(4 * MiB, sha256(req))]
    assert_ended_normally(rec)


def test_bidi_several_4mib_messages(target):
    t = target
    tid = new_id()
    msgs = [os.urandom(4 * MiB) for _ in range(3)]
    with t.channel() as ch:
        b = Bidi(ch, md(tid), timeout=30 * SLACK)
        try:
            for m in msgs:
                b.send(m)
                echo = b.recv()
                assert len(echo) == len(m) and sha256(echo) == sha256(m)
            assert b.finish() == []
        finally:
            b.abandon()
        assert b.call.code() == grpc.StatusCode.OK
        assert_trailers(b.call.trailing_metadata())
    rec = t.server.wait_call(tid)
    assert rec.requests == [(4 * MiB, sha256(m)) for m in msgs]
    assert rec.responses == rec.requests
    assert_ended_normally(rec)


# ----- 8: concurrency ----------------------------------------------------------------------------
def test_20_concurrent_unary_calls_on_one_channel(target):
    t = target
    tid = new_id()
    reqs = [f"sleep:{50 + 20 * (i % 5)};call {i};".encode() + os.urandom(64 + i * 37)
            for i in range(20)]
    with t.channel() as ch:
        stub = unary(ch)
        futs = [stub.future(r, metadata=md(f"{tid}-{i}"), timeout=CALL_TIMEOUT)
                for i, r in enumerate(reqs)]
        results = []
        for f in futs:
            try:
                results.append((f.result(), f.code(), mdl(f.trailing_metadata())))
            except grpc.RpcError as e:
                results.append((None, e.code(), e.details()))
    bad = [(i, r[1], r[2]) for i, r in enumerate(results) if r[1] != grpc.StatusCode.OK]
    assert not bad, bad
    for i, (resp, _, trailing) in enumerate(results):
        assert resp == reqs[i], i
        assert ("x-trailer", "t") in trailing
    for i, r in enumerate(reqs):
        rec = t.server.wait_call(f"{tid}-{i}")
        assert rec.requests == [(len(r), sha256(r))], rec
        assert_ended_normally(rec)


# ----- 5, 9, 10: what only the gateway does ------------------------------------------------------
def test_dead_upstream_is_unavailable(gtarget):
    t = gtarget
    with t.channel() as ch:
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as ei:
            unary(ch, service="dead.Echo").with_call(b"x", metadata=md(new_id()),
                                                     timeout=CALL_TIMEOUT)
        elapsed = time.monotonic() - t0
        assert ei.value.code() == grpc.StatusCode.UNAVAILABLE, (ei.value.code(),
                                                                ei.value.details())
        assert elapsed < 3.0 * SLACK, elapsed
        assert_still_serving(t, ch)


def test_gateway_enforces_grpc_timeout(gtarget):
    """grpc-timeout: 300m on a call the upstream never answers, and a client that neither
    cancels nor gives up: the gateway answers DEADLINE_EXCEEDED itself and resets the upstream
    stream."""
    t = gtarget
    up = t.env.h2up
    before = up.count()
    with t.raw() as c:
        st, frames, elapsed = raw_grpc_call(c, "/hang", [("grpc-timeout", "300m")],
                                            timeout=5.0 * SLACK)
    assert st.reset is None, f"the gateway reset the stream instead of answering: {st!r}"
    assert st.status == 200, st
    assert (st.header("content-type") or "").startswith("application/grpc"), st
    # Trailers-only (grpc-status on the END_STREAM HEADERS) or HEADERS ... trailers.
    status = hget(st.trailers, "grpc-status") if st.trailers else st.header("grpc-status")
    assert status == "4", (st, frames)
    assert 0.25 <= elapsed < 2.0 * SLACK, elapsed
    recs = up.since(before)
    assert [r.path for r in recs] == ["/hang"], recs
    rec = recs[0]
    assert rec.method == "POST"
    assert rec.header("te") == "trailers", rec       # gRPC servers refuse requests without it
    assert (rec.header("content-type") or "").startswith("application/grpc"), rec
    wait_until(lambda: rec.reset is not None, CANCEL_SEEN,
               message="the gateway to reset the upstream stream after the grpc-timeout")
    assert up.errors == []
    with t.channel() as ch:
        assert_still_serving(t, ch)


@pytest.mark.parametrize("path,extra,code", [
    ("/nothere.Echo/Unary", (), 12),      # no route
    ("/keyed.Echo/Unary", (), 16),        # no API key
    ("/denied.Echo/Unary", (), 7),        # ip deny
])
def test_gateway_error_is_trailers_only_on_the_wire(gtarget, path, extra, code):
    t = gtarget
    before = t.server.count()
    with t.raw() as c:
        st, frames, _ = raw_grpc_call(c, path, extra)
    assert_trailers_only(st, frames, code)
    assert t.server.count() == before, "a refused call reached the upstream"


def expect_status(ch, service, code, req=b"x", metadata=None, timeout=CALL_TIMEOUT):
    """Calls service/Unary; asserts the RpcError's code; returns (error, seconds)."""
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as ei:
        unary(ch, service=service).with_call(req, metadata=metadata or md(new_id()),
                                             timeout=timeout)
    e = ei.value
    assert e.code() == code, (e.code(), e.details())
    assert not (e.details() or "").lstrip().startswith("{"), e.details()   # never JSON
    return e, time.monotonic() - t0


def test_no_route_is_unimplemented(gtarget):
    t = gtarget
    before = t.server.count()
    with t.channel() as ch:
        expect_status(ch, "nothere.Echo", grpc.StatusCode.UNIMPLEMENTED)
        assert t.server.count() == before
        assert_still_serving(t, ch)


def test_missing_api_key_is_unauthenticated(gtarget):
    t = gtarget
    with t.channel() as ch:
        tid = new_id()
        expect_status(ch, "keyed.Echo", grpc.StatusCode.UNAUTHENTICATED, metadata=md(tid))
        expect_status(ch, "keyed.Echo", grpc.StatusCode.UNAUTHENTICATED,
                      metadata=md(tid, ("x-api-key", "not-a-key")))
        time.sleep(0.1)
        assert t.server.calls_for(tid) == []
        # The same call with the key goes through.
        tid = new_id()
        resp, call = unary(ch, service="keyed.Echo").with_call(
            b"keyed", metadata=md(tid, ("x-api-key", ALICE_KEY)), timeout=CALL_TIMEOUT)
        assert resp == b"keyed" and call.code() == grpc.StatusCode.OK
        rec = t.server.wait_call(tid)
        assert rec.method == "/keyed.Echo/Unary"
        assert_still_serving(t, ch)


def test_ip_deny_is_permission_denied(gtarget):
    t = gtarget
    with t.channel() as ch:
        tid = new_id()
        expect_status(ch, "denied.Echo", grpc.StatusCode.PERMISSION_DENIED, metadata=md(tid))
        time.sleep(0.1)
        assert t.server.calls_for(tid) == []
        assert_still_serving(t, ch)


def test_rate_limit_is_resource_exhausted(gtarget):
    t = gtarget
    with t.channel() as ch:
        tid = new_id()
        resp, call = unary(ch, service="limited.Echo").with_call(b"first", metadata=md(tid),
                                                                 timeout=CALL_TIMEOUT)
        assert resp == b"first" and call.code() == grpc.StatusCode.OK
        assert t.server.wait_call(tid).method == "/limited.Echo/Unary"
        tid2 = new_id()
        expect_status(ch, "limited.Echo", grpc.StatusCode.RESOURCE_EXHAUSTED, metadata=md(tid2))
        time.sleep(0.1)
        assert t.server.calls_for(tid2) == []
        assert_still_serving(t, ch)


def test_upstream_request_timeout_is_deadline_exceeded(gtarget):
    t = gtarget
    with t.channel() as ch:
        tid = new_id()
        _, elapsed = expect_status(ch, "slowup.Echo", grpc.StatusCode.DEADLINE_EXCEEDED,
                                   req=b"sleep:3000", metadata=md(tid))
        assert 0.9 <= elapsed < 1.0 + 1.5 * SLACK, elapsed
        rec = t.server.wait_call(tid)
        assert rec.method == "/slowup.Echo/Unary" and not rec.returned, rec
        assert_still_serving(t, ch)


def test_upstream_that_is_not_http2_is_unavailable(gtarget):
    t = gtarget
    with t.channel() as ch:
        t0 = time.monotonic()
        expect_status(ch, "h1.Echo", grpc.StatusCode.UNAVAILABLE)
        assert time.monotonic() - t0 < 6.0 * SLACK
        assert_still_serving(t, ch)
