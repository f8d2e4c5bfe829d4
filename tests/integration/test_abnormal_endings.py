"""C1 of REVIEW-2026-12.md: pooled Sessions must keep nothing of a request that ended abnormally.

A Session object serves one connection (or one HTTP/2 stream) and then goes back to a LIFO free
list of its worker. With workers: 1 the next connection or stream gets the very object that
served the aborted request. Every test here aborts a request at one point (EOF or RST in the
middle of the body, RST while the upstream thinks, the client idle timer, a write error, HTTP/2
RST_STREAM, GOAWAY, a dropped connection) and then checks what the next user of the object gets:

(a) an early error (400 parse error, 400 bad path, 408, 414, 431) is answered and the gateway
    stays up: the access log of such a request once dereferenced the stale route's snapshot;
(b) an anonymous request on an `auth: public` route carries no identity of the aborted client
    (X-Consumer-Name, X-Consumer-Groups, forward_claims), and an early error carries a fresh
    X-Request-Id, not the aborted request's;
(c) a 404/401/405 on a keep-alive connection either closes it (announced with Connection: close)
    or leaves it usable for the next request;
(d) the access log line of an early error describes that request only: no upstream of an earlier
    request, a duration from its own start, its own byte counts.
"""
import itertools
import socket
import time
import uuid

import pytest

from support import aborts
from support import gateway as gw
from support import h2client
from support import rawhttp
from support.aborts import rst_close
from support.rawhttp import RawConn, request_bytes
from support.util import SLACK, wait_until

VICTIM_ID = "victim-id-123"
BIG = 64 << 20  # a response that cannot fit in the socket buffers

_counter = itertools.count(1)


def tag():
    """A unique query value, to find one request among the upstream's records."""
    return f"t{next(_counter)}-{uuid.uuid4().hex[:8]}"


def no_answer(exc):
    return f"no answer ({exc!r})"


# ----- configs ------------------------------------------------------------------------------------
def quickstart_config(up, idle_timeout="30s", http2=False, access_log=None):
    """examples/quickstart.yaml with workers: 1 (access log on, JSON to stdout), small limits so
    every early error is cheap, and a route /up to a recording upstream (slow answers, large
    responses, uploads that wait for their body)."""
    routes = [
        gw.route("hello", {"path_prefix": "/hello"}, "echo",
                 headers={"response": {"set": {"X-Portico-Route": "hello"}}}),
        gw.route("users", {"path": "/users/{id}", "methods": ["GET"]}, "echo",
                 rewrite={"path": "/v2/users/{id}"}),
        gw.route("up", {"path_prefix": "/up"}, "up", rewrite={"strip_prefix": True}),
    ]
    limits = dict(aborts.EARLY_LIMITS, idle_timeout=idle_timeout, max_body_bytes="1MiB")
    return gw.config(routes, {"echo": {"builtin": "echo"}, "up": gw.up(up)}, limits=limits,
                     listener={"http2": True} if http2 else None, workers=1,
                     access_log=access_log)


def auth_config(up, access_log=None, limits=None):
    """/private (API keys) and /jwt (JWT, forward_claims sub -> X-User-Id) to the upstream
    "slow" (its /slow/MS answers after MS ms); /public (auth: public) and /getonly (GET only) to
    the upstream "pub". Both are the one recording server `up`: the names differ for the logs."""
    strip = {"strip_prefix": True}
    routes = [
        gw.route("private", {"path_prefix": "/private"}, "slow", auth=["keys"], rewrite=strip),
        gw.route("private-jwt", {"path_prefix": "/jwt"}, "slow", auth=["jwt"], rewrite=strip),
        gw.route("public", {"path_prefix": "/public"}, "pub"),
        gw.route("getonly", {"path_prefix": "/getonly", "methods": ["GET"]}, "pub"),
    ]
    lim = dict(aborts.EARLY_LIMITS)
    lim.update(limits or {})
    return gw.config(routes, {"slow": gw.up(up), "pub": gw.up(up)}, limits=lim,
                     listener={"http2": True}, workers=1, access_log=access_log,
                     auth_providers=aborts.AUTH_PROVIDERS, consumers=aborts.CONSUMERS)


AUTH_PREFIX = {"key": "/private", "jwt": "/jwt"}
credentials = aborts.credentials


def assert_identity(rec, auth, who):
    got = {k.lower(): v for k, v in aborts.identity_headers(rec)}
    assert got == aborts.expected_identity(auth, who), \
        f"the upstream request of {who} ({auth}) carried {got}: {rec!r}"


@pytest.fixture(scope="module")
def up(module_upstreams):
    """One recording upstream for the whole file: requests are told apart by their tag."""
    return module_upstreams("ae-up")


def start(gateway, cfg):
    """A gateway, once its start-up connections (the readiness checks) are closed: from then on
    its descriptor count tells when an aborted exchange's sockets are gone."""
    g = gateway(cfg)
    aborts.quiet_fd_count(g)
    return g


# ----- checks -------------------------------------------------------------------------------------
def assert_serving(g, up, what):
    """The gateway is alive and answers normal requests (echo and a real upstream)."""
    results = []
    for target in ("/hello/alive", f"/up/alive?tag={tag()}"):
        try:
            results.append((target, rawhttp.exchange(g.port, request_bytes("GET", target,
                                                                           host="x"))))
        except (OSError, rawhttp.IncompleteResponse) as e:
            results.append((target, e))
            aborts.settle(g)
            break
    aborts.assert_alive(g, what)
    for target, r in results:
        assert not isinstance(r, Exception), f"GET {target} {what}: {no_answer(r)}"
        assert r.status == 200, f"GET {target} {what}: {r!r}"
    assert results[0][1].header("X-Portico-Route") == "hello"
    assert results[1][1].header("X-Upstream-Name") == up.name


def h1_probe(g, kind, what, request_id_not=None):
    """An early error of class `kind` on three new connections at once (each on the next
    Session of the free list): each answered right, the gateway alive."""
    results = aborts.h1_early_errors(g.port, kind)
    if any(resp is None for resp, _, _ in results):
        aborts.settle(g)
    aborts.assert_alive(g, f"{what}, then a {kind} on new connections")
    for resp, raw, _closed in results:
        aborts.check_h1_early(resp, raw, kind, request_id_not)
    return results[0][0]


def h2_probe(g, c, kind, what, request_id_not=None):
    """An early error of class `kind` on three streams at once of the open HTTP/2 connection."""
    try:
        results = aborts.h2_early_errors(c, kind)
    except (h2client.Closed, AssertionError, OSError) as e:
        aborts.settle(g)
        aborts.assert_alive(g, f"{what}, then a {kind} over HTTP/2")
        raise AssertionError(f"{kind} over HTTP/2 {what}: {no_answer(e)}") from None
    aborts.assert_alive(g, f"{what}, then a {kind} over HTTP/2")
    for st in results:
        aborts.check_h2_early(st, kind, request_id_not)
    return results[0]


def h2_connect(g, what):
    """A new HTTP/2 connection; a refused one is reported as the gateway's death."""
    try:
        return aborts.h2_connect(g.port)
    except (OSError, h2client.Closed, AssertionError) as e:
        aborts.settle(g)
        aborts.assert_alive(g, what)
        raise AssertionError(f"new HTTP/2 connection {what}: {no_answer(e)}") from None


def h2_ok(g, c, path, what):
    """A GET on the open connection c gets 200 (a dead gateway is reported as such)."""
    try:
        st = c.response(c.request("GET", path))
    except (OSError, h2client.Closed, AssertionError) as e:
        aborts.settle(g)
        aborts.assert_alive(g, what)
        raise AssertionError(f"GET {path} over HTTP/2 {what}: {no_answer(e)}") from None
    assert st.status == 200, (what, st)


# ===== (a) the crash: an early error after an abnormal ending, HTTP/1.1 ===========================
def h1_eof_mid_body(g, up):
    """The review's reproduction: a POST to the echo route promising 10 bytes, 2 sent, FIN."""
    base = aborts.fd_count(g.pid)
    with RawConn(g.port) as c:
        c.send(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        c.sock.shutdown(socket.SHUT_WR)
        c.read_until_close(5 * SLACK)
    aborts.wait_fds(g, base)


def h1_rst_mid_body(g, up):
    """An upload to a real upstream, cut with RST once the upstream has its head (100 KB: over
    the 64 KiB a body may be buffered in, so it streams)."""
    base = aborts.fd_count(g.pid)
    t = tag()
    c = RawConn(g.port)
    c.send(f"POST /up/upload?tag={t} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nab"
           .encode())
    assert aborts.poll_record(up, t, 2.0) is not None, "precondition: the upload reached the upstream"
    rst_close(c.sock)
    aborts.wait_fds(g, base)


def h1_rst_mid_buffered_body(g, up):
    """A small upload (10 bytes promised, 2 sent) cut with RST while the gateway still collects
    it: the upstream never hears of it."""
    base = aborts.fd_count(g.pid)
    t = tag()
    c = RawConn(g.port)
    c.send(f"POST /up/upload?tag={t} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab"
           .encode())
    time.sleep(0.05)
    rst_close(c.sock)
    aborts.wait_fds(g, base)
    assert aborts.poll_record(up, t, 0.2) is None, "a buffered upload reached the upstream"


def h1_rst_waiting_upstream(g, up):
    base = aborts.fd_count(g.pid)
    t = tag()
    c = RawConn(g.port)
    c.send(request_bytes("GET", f"/up/slow/3000?tag={t}", host="x"))
    aborts.wait_record(up, t)
    time.sleep(0.05)
    rst_close(c.sock)
    aborts.wait_fds(g, base)


def h1_idle_timer(g, up):
    """An upload that stalls: the gateway's idle timer (1 s) ends it."""
    base = aborts.fd_count(g.pid)
    t = tag()
    with RawConn(g.port) as c:
        c.send(f"POST /up/upload?tag={t} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        aborts.poll_record(up, t, 2.0)
        closed = c.wait_closed(1.0 + 3 * SLACK)
    assert closed, "precondition: the gateway did not close a stalled upload after idle_timeout"
    aborts.wait_fds(g, base)


def h1_write_error(g, up):
    """A 64 MiB response; the client takes a little of it and resets."""
    base = aborts.fd_count(g.pid)
    s = aborts.small_rcvbuf_socket(g.port)
    s.sendall(request_bytes("GET", f"/up/bytes/{BIG}?tag={tag()}", host="x"))
    got = aborts.recv_at_least(s, 32 * 1024)
    assert got.startswith(b"HTTP/1.1 200"), f"precondition: {got[:200]!r}"
    time.sleep(0.1)  # the gateway is blocked writing
    rst_close(s)
    aborts.wait_fds(g, base)


H1_ENDINGS = {
    "eof-mid-body": h1_eof_mid_body,
    "rst-mid-body": h1_rst_mid_body,
    "rst-mid-buffered-body": h1_rst_mid_buffered_body,
    "rst-waiting-upstream": h1_rst_waiting_upstream,
    "idle-timer": h1_idle_timer,
    "write-error": h1_write_error,
}


@pytest.mark.parametrize("early", aborts.H1_EARLY_CLASSES)
@pytest.mark.parametrize("ending", list(H1_ENDINGS))
def test_h1_early_error_after_abnormal_ending(gateway, up, ending, early):
    idle = "1s" if ending == "idle-timer" else "30s"
    g = start(gateway, quickstart_config(up, idle_timeout=idle))
    base = aborts.fd_count(g.pid)
    warm = rawhttp.exchange(g.port, request_bytes("GET", "/hello", host="x"))
    assert warm.status == 200
    aborts.wait_fds(g, base)
    H1_ENDINGS[ending](g, up)
    aborts.assert_alive(g, f"right after the abnormal ending {ending}")
    h1_probe(g, early, f"after {ending}")
    assert_serving(g, up, f"after {ending} and a {early}")


# ===== (a) the crash over HTTP/2 (h2c prior knowledge) ============================================
def h2_rst_immediately(g, up):
    c = aborts.h2_connect(g.port)
    sid = c.new_sid()
    block = c.encode(c.request_headers("GET", f"/up/slow/3000?tag={tag()}"))
    c.send(h2client.headers_frame(sid, block, end_stream=True) + h2client.rst_frame(sid))
    aborts.h2_sync(c)
    return c


def h2_rst_mid_request_body(g, up):
    c = aborts.h2_connect(g.port)
    sid = c.request("POST", "/hello", headers=[("content-length", "10")], end_stream=False)
    c.send(h2client.data_frame(sid, b"ab"))
    aborts.h2_sync(c)
    c.rst(sid)
    aborts.h2_sync(c)
    return c


def h2_rst_waiting_upstream(g, up):
    c = aborts.h2_connect(g.port)
    t = tag()
    sid = c.request("GET", f"/up/slow/3000?tag={t}")
    aborts.wait_record(up, t)
    c.rst(sid)
    aborts.h2_sync(c)
    return c


def h2_rst_mid_response(g, up):
    c = aborts.h2_connect(g.port, auto_window=False)
    sid = c.request("GET", f"/up/bytes/{BIG}?tag={tag()}")
    st = c.streams[sid]
    c.wait(lambda: st.body_len >= 16 * 1024, 5 * SLACK, "the first DATA frames")
    c.rst(sid)
    c.window_update(0, 1 << 24)  # the connection's window, spent on the reset stream
    c.auto_window = True
    aborts.h2_sync(c)
    return c


def _h2_slow_stream_then(g, up, finish):
    base = aborts.fd_count(g.pid)
    c = aborts.h2_connect(g.port)
    t = tag()
    c.request("GET", f"/up/slow/3000?tag={t}")
    aborts.wait_record(up, t)
    finish(c)
    aborts.wait_fds(g, base)
    return None


def h2_goaway_close(g, up):
    def finish(c):
        c.send(h2client.goaway_frame(0))
        aborts.fin_close(c.sock)
    return _h2_slow_stream_then(g, up, finish)


def h2_drop(g, up):
    return _h2_slow_stream_then(g, up, lambda c: rst_close(c.sock))


H2_ENDINGS = {
    "rst-immediately": h2_rst_immediately,
    "rst-mid-request-body": h2_rst_mid_request_body,
    "rst-waiting-upstream": h2_rst_waiting_upstream,
    "rst-mid-response-body": h2_rst_mid_response,
    "goaway-close": h2_goaway_close,
    "connection-drop": h2_drop,
}


@pytest.mark.parametrize("early", aborts.H2_EARLY_CLASSES)
@pytest.mark.parametrize("ending", list(H2_ENDINGS))
def test_h2_early_error_after_abnormal_ending(gateway, up, ending, early):
    g = start(gateway, quickstart_config(up, http2=True))
    base = aborts.fd_count(g.pid)
    with aborts.h2_connect(g.port) as c0:
        assert c0.response(c0.request("GET", "/hello")).status == 200
    aborts.wait_fds(g, base)  # its Sessions are back on the free list before the ending starts
    c = H2_ENDINGS[ending](g, up)
    aborts.assert_alive(g, f"right after the HTTP/2 abnormal ending {ending}")
    try:
        if c is not None:  # the next streams on the same connection
            what = f"after {ending} on stream 1, on the same connection"
            h2_probe(g, c, early, what)
            h2_ok(g, c, "/hello/same-connection", what)
        what = f"after {ending}, on a new connection"
        with h2_connect(g, what) as c2:
            h2_probe(g, c2, early, what)
            h2_ok(g, c2, "/hello/new-connection", what)
    finally:
        if c is not None:
            c.close()
    h1_probe(g, early, f"after {ending} over HTTP/2, over HTTP/1.1")
    assert_serving(g, up, f"after {ending} over HTTP/2 and a {early}")


# ===== (b) the identity leak ======================================================================
class AuthEnv:
    def __init__(self, gateway, up, access_log=None, limits=None):
        self.slow = self.pub = up
        self.g = start(gateway, auth_config(self.slow, access_log=access_log, limits=limits))


def a_h1_reset(env, auth, who="alice", request_id=None):
    """Client A: an authenticated GET to the slow upstream, reset (RST) 0.3 s after it was sent."""
    g = env.g
    base = aborts.fd_count(g.pid)
    t = tag()
    headers = credentials(auth, who) + ([("X-Request-Id", request_id)] if request_id else [])
    c = RawConn(g.port)
    t0 = time.monotonic()
    c.send(request_bytes("GET", f"{AUTH_PREFIX[auth]}/slow/2000?tag={t}", host="x",
                         headers=headers))
    rec = aborts.wait_record(env.slow, t)
    assert_identity(rec, auth, who)  # the setup is right: A was authenticated
    time.sleep(max(0.0, 0.3 - (time.monotonic() - t0)))
    rst_close(c.sock)
    aborts.wait_fds(g, base)


def a_h2_abort(env, auth, ending, who="alice", request_id=None):
    """Client A over HTTP/2: authenticated GETs to the slow upstream, abandoned after 0.3 s.

    rst-stream: two streams, both reset (RST_STREAM CANCEL), the connection stays open and is
    returned; two, so that every kind of client B (a later stream of this connection, a new
    HTTP/1.1 connection, a new HTTP/2 connection's first stream) lands on an object that served
    A. goaway: GOAWAY then FIN. drop: the TCP connection is reset."""
    g = env.g
    base = aborts.fd_count(g.pid)
    c = aborts.h2_connect(g.port)
    headers = credentials(auth, who, h2=True)
    if request_id:
        headers.append(("x-request-id", request_id))
    t0 = time.monotonic()
    tags = [tag() for _ in range(2 if ending == "rst-stream" else 1)]
    sids = [c.request("GET", f"{AUTH_PREFIX[auth]}/slow/2000?tag={t}", headers=headers)
            for t in tags]
    for t in tags:
        assert_identity(aborts.wait_record(env.slow, t), auth, who)
    time.sleep(max(0.0, 0.3 - (time.monotonic() - t0)))
    if ending == "rst-stream":
        for sid in sids:
            c.rst(sid)
        aborts.h2_sync(c)
        return c
    if ending == "goaway":
        c.send(h2client.goaway_frame(0))
        aborts.fin_close(c.sock)
    else:
        rst_close(c.sock)
    aborts.wait_fds(g, base)
    return None


def b_public(env, kind, same=None):
    """Client B, anonymous: three GETs to /public. h1: three connections opened together; h2:
    one new connection, three streams; h2-same-connection: three more streams on A's connection.
    Each takes the next Session off the free list. Returns the upstream records."""
    g = env.g
    tags = [tag(), tag(), tag()]
    targets = [f"/public/b?tag={t}" for t in tags]
    if kind == "h1":
        conns = [RawConn(g.port) for _ in tags]
        try:
            for c, target in zip(conns, targets):
                c.send(request_bytes("GET", target, host="x"))
            statuses = [c.read_response().status for c in conns]
        finally:
            for c in conns:
                c.close()
    else:
        c = same if kind == "h2-same-connection" else aborts.h2_connect(g.port)
        try:
            sids = [c.request("GET", target) for target in targets]
            statuses = [c.response(sid).status for sid in sids]
        finally:
            if c is not same:
                c.close()
    assert statuses == [200] * len(tags), statuses
    return [aborts.wait_record(env.pub, t) for t in tags]


def assert_no_identity(records, what):
    for rec in records:
        leaked = aborts.identity_headers(rec)
        assert not leaked, (f"an anonymous request on an auth: public route reached the upstream "
                            f"with the identity of an earlier client ({what}): {leaked}; {rec!r}")


@pytest.mark.parametrize("client_b", ["h1", "h2"])
@pytest.mark.parametrize("auth", ["key", "jwt"])
def test_identity_not_leaked_after_h1_reset(gateway, up, auth, client_b):
    env = AuthEnv(gateway, up)
    a_h1_reset(env, auth)
    recs = b_public(env, client_b)
    aborts.assert_alive(env.g, "after the identity-leak sequence")
    assert_no_identity(recs, f"A: HTTP/1.1 {auth} request reset after 0.3 s; B: {client_b}")


H2_LEAK_CASES = [("rst-stream", "h2-same-connection"), ("rst-stream", "h1"), ("rst-stream", "h2"),
                 ("goaway", "h1"), ("goaway", "h2"), ("drop", "h1"), ("drop", "h2")]


@pytest.mark.parametrize("ending,client_b", H2_LEAK_CASES,
                         ids=[f"{e}-then-{b}" for e, b in H2_LEAK_CASES])
@pytest.mark.parametrize("auth", ["key", "jwt"])
def test_identity_not_leaked_after_h2_abort(gateway, up, auth, ending, client_b):
    env = AuthEnv(gateway, up)
    c = a_h2_abort(env, auth, ending)
    try:
        recs = b_public(env, client_b, same=c)
    finally:
        if c is not None:
            c.close()
    aborts.assert_alive(env.g, "after the identity-leak sequence")
    assert_no_identity(recs, f"A: HTTP/2 {auth} streams, {ending} after 0.3 s; B: {client_b}")


def test_each_consumer_gets_only_its_own_identity_after_aborts(gateway, up):
    """Alice's request is reset; Bob's next request carries Bob, not a mix of both."""
    env = AuthEnv(gateway, up)
    for auth in ("key", "jwt"):
        a_h1_reset(env, auth, who="alice")
        t = tag()
        r = rawhttp.exchange(env.g.port, request_bytes("GET", f"{AUTH_PREFIX[auth]}/echo?tag={t}",
                                                       host="x", headers=credentials(auth, "bob")))
        assert r.status == 200, r
        assert_identity(aborts.wait_record(env.slow, t), auth, "bob")
    # A key-authenticated request after a JWT one: no stale forward_claims header.
    a_h1_reset(env, "jwt", who="alice")
    t = tag()
    r = rawhttp.exchange(env.g.port, request_bytes("GET", f"/private/echo?tag={t}", host="x",
                                                   headers=credentials("key", "bob")))
    assert r.status == 200, r
    assert_identity(aborts.wait_record(env.slow, t), "key", "bob")


# ----- (b) the request id -------------------------------------------------------------------------
REQUEST_ID_H1 = ["400-parse", "400-fields", "400-bad-path", "408", "414", "431", "414-partial",
                 "431-partial"]


@pytest.mark.parametrize("early", REQUEST_ID_H1)
def test_h1_early_error_gets_a_fresh_request_id_after_abort(gateway, up, early):
    # Access log off: these sequences also crash the gateway while C1's crash is unfixed, and
    # the request id must be checked on its own.
    env = AuthEnv(gateway, up, access_log={"path": "off"})
    a_h1_reset(env, "key", request_id=VICTIM_ID)
    resp = h1_probe(env.g, early, "after a request with X-Request-Id: victim-id-123 was reset",
                    request_id_not=VICTIM_ID)
    assert resp.header("X-Request-Id") != VICTIM_ID
    # A normal request without an id of its own gets a generated one too.
    r = rawhttp.exchange(env.g.port, request_bytes("GET", "/public/after", host="x"))
    assert r.status == 200 and r.header("X-Request-Id") not in (None, "", VICTIM_ID), r


@pytest.mark.parametrize("early", aborts.H2_EARLY_CLASSES)
def test_h2_early_error_gets_a_fresh_request_id_after_rst_stream(gateway, up, early):
    env = AuthEnv(gateway, up, access_log={"path": "off"})
    c = a_h2_abort(env, "key", "rst-stream", request_id=VICTIM_ID)
    with c:
        h2_probe(env.g, c, early, "after streams with x-request-id: victim-id-123 were reset",
                 request_id_not=VICTIM_ID)
    with h2_connect(env.g, "after reset streams") as c2:
        h2_probe(env.g, c2, early, "on a new connection after reset streams",
                 request_id_not=VICTIM_ID)


# ===== (c) errors on keep-alive connections =======================================================
KEEPALIVE_CASES = {
    "404": (lambda: request_bytes("GET", "/nowhere/x", host="x"), 404, "no_route"),
    "401": (lambda: request_bytes("GET", "/private/x", host="x"), 401, "unauthenticated"),
    "401-wrong-key": (lambda: request_bytes("GET", "/private/x", host="x",
                                            headers=[("X-API-Key", "not-a-key")]),
                      401, "unauthenticated"),
    "405": (lambda: request_bytes("DELETE", "/getonly/x", host="x"), 405, "method_not_allowed"),
    "404-with-body": (lambda: request_bytes("POST", "/nowhere/x", host="x", body=b"hello"),
                      404, "no_route"),
    "401-with-body": (lambda: request_bytes("POST", "/private/x", host="x", body=b"hello"),
                      401, "unauthenticated"),
}


@pytest.mark.parametrize("pipelined", [False, True], ids=["sequential", "pipelined"])
@pytest.mark.parametrize("case", list(KEEPALIVE_CASES))
def test_h1_error_on_keepalive_connection(gateway, up, case, pipelined):
    """Alice's authenticated request, then the error, then an anonymous public request, all on
    one connection: the error either closes the connection (saying so) or the public request
    gets its own answer, without Alice's identity."""
    env = AuthEnv(gateway, up)
    make, status, code = KEEPALIVE_CASES[case]
    t_alice, t_next = tag(), tag()
    with RawConn(env.g.port) as c:
        c.send(request_bytes("GET", f"/private/echo?tag={t_alice}", host="x",
                             headers=credentials("key", "alice")))
        r = c.read_response()
        assert r.status == 200, r
        nxt = request_bytes("GET", f"/public/next?tag={t_next}", host="x")
        c.send(make() + (nxt if pipelined else b""))
        err = c.read_response()
        assert err.status == status, err
        e = err.json()["error"]
        assert e["code"] == code and e["request_id"] == err.header("X-Request-Id"), err
        if "close" in (err.header("Connection") or "").lower():
            assert c.wait_closed(3 * SLACK), \
                f"{case}: answered with Connection: close, but the connection stayed open"
            assert not rawhttp.parse_all(c.buf), f"{case}: bytes after Connection: close: {c.buf!r}"
            return
        try:
            if not pipelined:
                c.send(nxt)
            r2 = c.read_response()
        except (OSError, rawhttp.IncompleteResponse) as exc:
            raise AssertionError(f"{case}: the connection was kept open (no Connection: close) "
                                 f"but the next request on it got {no_answer(exc)}") from None
    assert r2.status == 200, r2
    assert r2.json()["target"] == f"/public/next?tag={t_next}", r2
    assert_no_identity([aborts.wait_record(env.pub, t_next)], f"after a {case} on keep-alive")


@pytest.mark.parametrize("case", ["404", "401", "405"])
def test_h2_error_then_next_stream(gateway, up, case):
    env = AuthEnv(gateway, up)
    method, path, status = {"404": ("GET", "/nowhere", 404), "401": ("GET", "/private/x", 401),
                            "405": ("DELETE", "/getonly/x", 405)}[case]
    t = tag()
    with aborts.h2_connect(env.g.port) as c:
        assert c.response(c.request("GET", "/private/echo",
                                    headers=credentials("key", "alice", h2=True))).status == 200
        st = c.response(c.request(method, path))
        assert st.status == status, st
        st2 = c.response(c.request("GET", f"/public/next?tag={t}"))
        assert st2.status == 200, st2
        assert st2.json()["target"] == f"/public/next?tag={t}"
    assert_no_identity([aborts.wait_record(env.pub, t)], f"after a {case} over HTTP/2")


# ===== (d) the access log of early errors =========================================================
def log_env(gateway, up, tmp_path):
    path = str(tmp_path / "access.log")
    env = AuthEnv(gateway, up, access_log={"path": path, "format": "json"})
    env.log = path
    return env


def log_entries(env, n):
    """Waits for n access log lines; returns them parsed."""
    wait_until(lambda: len(env.g.access_log_lines(env.log)) >= n, 5 * SLACK,
               message=f"{n} access log lines")
    return env.g.access_log_json(env.log)


def test_access_log_401_does_not_name_the_previous_upstream(gateway, up, tmp_path):
    env = log_env(gateway, up, tmp_path)
    g = env.g
    # 1: the public request, on its own connection, then a 401 on a new one (the same Session).
    base = aborts.fd_count(g.pid)
    assert rawhttp.exchange(g.port, request_bytes("GET", "/public/a", host="x")).status == 200
    aborts.wait_fds(g, base + 1, 1.0)  # its Session is free again (one pooled upstream socket)
    assert rawhttp.exchange(g.port, request_bytes("GET", "/private/b", host="x")).status == 401
    # 2: the same on one keep-alive connection.
    with RawConn(g.port) as c:
        c.send(request_bytes("GET", "/public/c", host="x"))
        assert c.read_response().status == 200
        c.send(request_bytes("GET", "/private/d", host="x"))
        assert c.read_response().status == 401
    entries = log_entries(env, 4)
    assert [e["status"] for e in entries] == [200, 401, 200, 401], entries
    assert entries[0]["upstream"] == "pub" and entries[2]["upstream"] == "pub", entries
    for e in (entries[1], entries[3]):
        assert e["route"] == "private", e
        assert e["upstream"] != "pub", \
            f"a 401 that contacted no upstream is logged with the previous request's upstream: {e}"
        assert e["upstream"] in ("", None, "-", "slow"), e
        assert e["endpoint"] in ("", None, "-"), f"a 401 logged with an endpoint: {e}"
        assert e["upstream_ms"] == 0, e


def _wait_408(port):
    resp, raw, closed = aborts.h1_early_error(port, "408")
    aborts.check_h1_early(resp, raw, "408")


def test_access_log_408_duration_on_a_fresh_gateway(gateway, up, tmp_path):
    env = log_env(gateway, up, tmp_path)
    _wait_408(env.g.port)
    e = log_entries(env, 1)[-1]
    assert e["status"] == 408, e
    bound = (aborts.HEADER_TIMEOUT_S + 1.0) * 1000
    assert 0 <= e["duration_ms"] < bound, \
        f"the 408 is logged with duration_ms {e['duration_ms']} (header_timeout is 1 s): {e}"


def test_access_log_408_duration_on_a_recycled_session(gateway, up, tmp_path):
    env = log_env(gateway, up, tmp_path)
    g = env.g
    assert rawhttp.exchange(g.port, request_bytes("GET", "/public/first", host="x")).status == 200
    time.sleep(2.0)  # a stale start time would show as > 3 s
    _wait_408(g.port)
    entries = log_entries(env, 2)
    e = entries[-1]
    assert e["status"] == 408, entries
    bound = (aborts.HEADER_TIMEOUT_S + 1.0) * 1000
    assert 0 <= e["duration_ms"] < bound, \
        f"the 408 is logged with duration_ms {e['duration_ms']} (header_timeout is 1 s): {e}"


@pytest.mark.parametrize("early", ["431", "431-partial", "414", "414-partial", "400-parse"])
def test_access_log_early_error_counts_only_its_own_bytes(gateway, up, tmp_path, early):
    env = log_env(gateway, up, tmp_path)
    g = env.g
    body = b"z" * 20000
    base = aborts.fd_count(g.pid)
    with RawConn(g.port) as c:
        c.send(request_bytes("POST", "/public/upload", host="x", body=body))
        assert c.read_response().status == 200
    aborts.wait_fds(g, base + 1, 1.0)  # its Session is free again (one pooled upstream socket)
    sent = aborts.H1_EARLY[early][0]
    resp, raw, _ = aborts.h1_early_error(g.port, early)
    aborts.check_h1_early(resp, raw, early)
    entries = log_entries(env, 2)
    first, e = entries[0], entries[-1]
    assert first["bytes_in"] > len(body), first
    assert e["status"] == aborts.H1_EARLY[early][1], entries
    assert e["bytes_in"] <= len(sent), \
        f"the {early} is logged with bytes_in {e['bytes_in']} (it sent {len(sent)}): {e}"
    assert e["bytes_out"] == len(raw), \
        f"the {early} is logged with bytes_out {e['bytes_out']} (it got {len(raw)}): {e}"
