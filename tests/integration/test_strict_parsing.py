"""Strict HTTP/1.1 parsing: malformed or ambiguous requests get 400 JSON, the connection is
closed, and nothing reaches the upstream (request smuggling guards)."""
import pytest


from support import gateway as gw
from support import rawhttp
from support.rawhttp import RawConn, request_bytes


@pytest.fixture(scope="module")
def env(module_gateway, module_upstreams):
    u = module_upstreams("strict")
    g = module_gateway(gw.config([gw.route("all", {"path_prefix": "/"}, "u")], {"u": gw.up(u)}))
    return g, u


H = "Host: t\r\n"

# (id, raw request head/bytes). Each must be refused with 400 before anything is forwarded.
HEAD_CASES = [
    ("cl-and-te", "POST / HTTP/1.1\r\n" + H + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
     "0\r\n\r\n"),
    ("te-and-cl", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
     "0\r\n\r\n"),
    ("two-cl-equal", "POST / HTTP/1.1\r\n" + H + "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc"),
    ("two-cl-different", "POST / HTTP/1.1\r\n" + H + "Content-Length: 3\r\nContent-Length: 4\r\n\r\n"
     "abcd"),
    ("cl-list", "POST / HTTP/1.1\r\n" + H + "Content-Length: 1,1\r\n\r\na"),
    ("cl-negative", "POST / HTTP/1.1\r\n" + H + "Content-Length: -1\r\n\r\n"),
    ("cl-plus", "POST / HTTP/1.1\r\n" + H + "Content-Length: +5\r\n\r\nhello"),
    ("cl-non-numeric", "POST / HTTP/1.1\r\n" + H + "Content-Length: abc\r\n\r\n"),
    ("cl-hex", "POST / HTTP/1.1\r\n" + H + "Content-Length: 0x5\r\n\r\nhello"),
    ("cl-empty", "POST / HTTP/1.1\r\n" + H + "Content-Length: \r\n\r\n"),
    ("cl-overflow", "POST / HTTP/1.1\r\n" + H + "Content-Length: 184467440737095516160\r\n\r\n"),
    ("te-gzip-chunked", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: gzip, chunked\r\n\r\n"
     "0\r\n\r\n"),
    ("te-chunked-chunked", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked, chunked\r\n\r\n"
     "0\r\n\r\n"),
    ("te-two-headers", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n"
     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("te-xchunked", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
    ("te-in-http10", "POST / HTTP/1.0\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("obs-fold", "GET / HTTP/1.1\r\n" + H + "X-A: one\r\n  folded\r\n\r\n"),
    ("obs-fold-tab", "GET / HTTP/1.1\r\n" + H + "X-A: one\r\n\tfolded\r\n\r\n"),
    ("space-before-colon", "GET / HTTP/1.1\r\nHost : t\r\n\r\n"),
    ("space-before-colon-cl", "POST / HTTP/1.1\r\n" + H + "Content-Length : 3\r\n\r\nabc"),
    ("nul-in-value", "GET / HTTP/1.1\r\n" + H + "X-A: a\x00b\r\n\r\n"),
    ("empty-header-name", "GET / HTTP/1.1\r\n" + H + ": novalue\r\n\r\n"),
    ("bad-header-name-char", "GET / HTTP/1.1\r\n" + H + "X(A): v\r\n\r\n"),
    ("bare-lf", "GET / HTTP/1.1\n" + H.replace("\r\n", "\n") + "\n"),
    ("bare-lf-in-header", "GET / HTTP/1.1\r\n" + H + "X-A: a\nX-B: b\r\n\r\n"),
    ("bare-cr", "GET / HTTP/1.1\r\n" + H + "X-A: a\rb\r\n\r\n"),
    ("bad-method-char", "GE(T / HTTP/1.1\r\n" + H + "\r\n"),
    ("target-no-slash", "GET foo HTTP/1.1\r\n" + H + "\r\n"),
    ("target-with-space", "GET /a b HTTP/1.1\r\n" + H + "\r\n"),
    ("target-control-char", "GET /a\x01b HTTP/1.1\r\n" + H + "\r\n"),
    ("target-del-char", "GET /a\x7fb HTTP/1.1\r\n" + H + "\r\n"),
    ("target-fragment", "GET /a#frag HTTP/1.1\r\n" + H + "\r\n"),
    ("version-1.2", "GET / HTTP/1.2\r\n" + H + "\r\n"),
    ("version-2.0", "GET / HTTP/2.0\r\n" + H + "\r\n"),
    ("version-lowercase", "GET / http/1.1\r\n" + H + "\r\n"),
    ("version-missing", "GET /\r\n" + H + "\r\n"),
    ("missing-host", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n"),
    ("two-hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    ("path-encoded-slash", "GET /a%2Fb HTTP/1.1\r\n" + H + "\r\n"),
    ("path-encoded-slash-lower", "GET /a%2fb HTTP/1.1\r\n" + H + "\r\n"),
    ("path-encoded-backslash", "GET /a%5Cb HTTP/1.1\r\n" + H + "\r\n"),
    ("path-invalid-percent", "GET /a%zzb HTTP/1.1\r\n" + H + "\r\n"),
    ("path-truncated-percent", "GET /a%4 HTTP/1.1\r\n" + H + "\r\n"),
]


def assert_bad_request_closed(g, data, timeout=5):
    responses, raw, closed = rawhttp.send_and_read_all(g.port, data, timeout=timeout)
    assert closed, f"the connection was left open; got {raw[:500]!r}"
    assert len(responses) == 1, f"expected exactly one response, got {raw[:800]!r}"
    resp = responses[0]
    assert resp.status == 400, resp
    assert resp.header("Content-Type", "").startswith("application/json")
    err = resp.json()["error"]
    assert err["status"] == 400 and err["code"] == "bad_request"
    assert err["request_id"] == resp.header("X-Request-Id")
    return resp


def probe(g, u, before):
    """A good request afterwards is the only thing the upstream got since `before`."""
    resp = rawhttp.exchange(g.port, request_bytes("GET", "/probe-after"))
    assert resp.status == 200
    got = u.since(before)
    assert [r.target for r in got] == ["/probe-after"], f"the upstream received {got!r}"


@pytest.mark.parametrize("case", HEAD_CASES, ids=[c[0] for c in HEAD_CASES])
def test_malformed_head_is_refused_and_not_forwarded(env, case):
    g, u = env
    before = u.count()
    assert_bad_request_closed(g, case[1].encode("latin-1"))
    probe(g, u, before)


CHUNK_CASES = [
    ("chunk-size-invalid", b"zz\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-leading-space", b" 5\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-overflow", b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-negative", b"-5\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-empty", b"\r\nhello\r\n0\r\n\r\n"),
    ("chunk-data-too-long", b"3\r\nhello\r\n0\r\n\r\n"),
    ("chunk-missing-crlf", b"5\r\nhelloXX0\r\n\r\n"),
    ("chunk-bare-lf", b"5\nhello\n0\n\n"),
]


@pytest.mark.parametrize("case", CHUNK_CASES, ids=[c[0] for c in CHUNK_CASES])
def test_malformed_chunked_body_is_refused(env, case):
    g, u = env
    before = u.count()
    head = b"POST /chunk-case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert_bad_request_closed(g, head + case[1])
    # The head may have been forwarded already, but no complete body ever was.
    for r in u.since(before):
        assert not (r.complete and r.path == "/chunk-case"), r


def test_smuggled_second_request_after_cl_te_is_not_served(env):
    g, u = env
    before = u.count()
    smuggled = "GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
    body = "0\r\n\r\n" + smuggled
    data = ("POST /front HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
            f"Content-Length: {len(body)}\r\n\r\n" + body).encode()
    responses, raw, closed = rawhttp.send_and_read_all(g.port, data)
    assert closed and len(responses) == 1 and responses[0].status == 400
    assert all(r.path != "/smuggled" for r in u.since(before))


def test_bad_request_after_good_one_on_same_connection(env):
    g, u = env
    with RawConn(g.port) as c:
        c.send(request_bytes("GET", "/first"))
        assert c.read_response().status == 200
        c.send(b"GET /second HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        r = c.read_response()
        assert r.status == 400
        assert c.wait_closed(5)


def test_valid_edge_cases_are_accepted(env):
    """Not everything unusual is an error: these are valid HTTP/1.1."""
    g, u = env
    cases = [
        b"GET /ok HTTP/1.1\r\nHost: t\r\nX-Empty:\r\n\r\n",
        b"GET /ok HTTP/1.1\r\nHost: t\r\nX-Tabs:\t v \t\r\n\r\n",
        b"GET /ok HTTP/1.1\r\nhOsT: t\r\n\r\n",
        b"POST /ok HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
        b"POST /ok HTTP/1.1\r\nHost: t\r\nContent-Length: 005\r\n\r\nhello",
        b"POST /ok HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"GET /ok?a=1&b=/c?d HTTP/1.1\r\nHost: t\r\n\r\n",
    ]
    for data in cases:
        before = u.count()
        resp = rawhttp.exchange(g.port, data)
        assert resp.status == 200, (data, resp)
        assert u.count() == before + 1
    assert u.last().query == "a=1&b=/c?d"


def test_http10_without_host_is_served(gateway, upstream):
    """Host is optional in HTTP/1.0."""
    g = gateway(gw.config([gw.route("all", {"path_prefix": "/"}, "u")], {"u": gw.up(upstream)}))
    g.health_checked_by_test = True
    try:
        responses, raw, closed = rawhttp.send_and_read_all(g.port, b"GET /ok HTTP/1.0\r\n\r\n")
        assert len(responses) == 1 and responses[0].status == 200, raw
        assert upstream.last().path == "/ok"
        assert rawhttp.exchange(g.port, request_bytes("GET", "/again")).status == 200
        g.assert_healthy()
    finally:
        # A crash was reported by this (expected-failure) test; otherwise the fixture checks.
        g.health_checked_by_test = not g.alive() or "runtime error" in g.stderr()


def test_early_upstream_response_does_not_desync(env):
    """The upstream answers before reading the body; the unread body must never be parsed as
    requests on the client connection. (The body is over 64 KiB: a smaller one is read whole
    before the upstream is connected, and the client here waits for the answer first.)"""
    g, u = env
    before = u.count()
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n" * 2000
    assert len(smuggled) > 64 * 1024
    with RawConn(g.port) as c:
        c.send(f"POST /early HTTP/1.1\r\nHost: t\r\nContent-Length: {len(smuggled)}\r\n\r\n"
               .encode())
        r = c.read_response()
        assert r.status == 200 and r.body == b"early\n"
        try:
            c.send(smuggled)
            c.send(request_bytes("GET", "/next-after-early"))
            raw, closed = c.read_until_close(3)
        except (BrokenPipeError, ConnectionResetError):
            raw, closed = b"", True
        responses = rawhttp.parse_all(raw)
        if not closed or responses:
            # The connection was kept: exactly the next request is answered.
            assert [x.json()["path"] for x in responses] == ["/next-after-early"], raw[:500]
    assert all(x.path != "/smuggled" for x in u.since(before))
