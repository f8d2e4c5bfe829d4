"""Listener and route limits: 413, 414, 431, header timeout (408) and idle timeout."""
import socket
import time

import pytest

from support import gateway as gw
from support import rawhttp
from support.rawhttp import RawConn, request_bytes
from support.util import SLACK, assert_error

HEADER_TIMEOUT = 1.0
IDLE_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def env(module_gateway, module_upstreams):
    u = module_upstreams("limits")
    routes = [
        gw.route("big", {"path_prefix": "/big"}, "u", max_body_bytes=100000),
        gw.route("small", {"path_prefix": "/small"}, "u", max_body_bytes=10),
        gw.route("all", {"path_prefix": "/"}, "u"),
    ]
    limits = {"max_header_bytes": 4096, "max_uri_bytes": 1024, "max_body_bytes": 1000,
              "header_timeout": "1s", "idle_timeout": "1s"}
    g = module_gateway(gw.config(routes, {"u": gw.up(u)}, limits=limits))
    return g, u


def post(g, path, n, extra=None):
    return rawhttp.exchange(g.port, request_bytes("POST", path, headers=extra, body=b"x" * n))


def test_body_at_listener_limit_is_accepted(env):
    g, u = env
    resp = post(g, "/any", 1000)
    assert resp.status == 200
    assert u.last().body_len == 1000


def test_body_over_listener_limit_is_413(env):
    g, u = env
    before = u.count()
    with RawConn(g.port) as c:
        # Only the head: the gateway must decide on Content-Length alone.
        c.send(b"POST /any HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n")
        assert_error(c.read_response(), 413, "payload_too_large")
    assert u.count() == before


def test_route_limit_overrides_listener_upwards(env):
    g, u = env
    resp = post(g, "/big/x", 5000)
    assert resp.status == 200
    assert u.last().body_len == 5000
    before = u.count()
    assert_error(post(g, "/big/x", 100001), 413, "payload_too_large")
    assert u.count() == before


def test_route_limit_overrides_listener_downwards(env):
    g, u = env
    assert post(g, "/small", 10).status == 200
    before = u.count()
    assert_error(post(g, "/small", 11), 413, "payload_too_large")
    assert u.count() == before


def test_chunked_body_over_limit_is_413(env):
    g, u = env
    before = u.count()
    body = rawhttp.chunked([b"y" * 500] * 4)
    data = b"POST /any HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    responses, raw, closed = rawhttp.send_and_read_all(g.port, data)
    assert len(responses) == 1, raw
    assert_error(responses[0], 413, "payload_too_large")
    assert closed
    assert not any(r.complete and r.body_len >= 2000 for r in u.since(before))


def test_chunked_body_under_limit_passes(env):
    g, u = env
    body = rawhttp.chunked([b"z" * 300] * 3)
    data = b"POST /any HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    resp = rawhttp.exchange(g.port, data)
    assert resp.status == 200
    assert u.last().body == b"z" * 900


def test_uri_at_limit_is_accepted(env):
    g, u = env
    target = "/" + "a" * 1023
    assert len(target) == 1024
    resp = rawhttp.exchange(g.port, request_bytes("GET", target))
    assert resp.status == 200
    assert u.last().target == target


def test_uri_over_limit_is_414(env):
    g, u = env
    before = u.count()
    target = "/u?" + "q" * 1100
    assert_error(rawhttp.exchange(g.port, request_bytes("GET", target)), 414, "uri_too_long")
    assert u.count() == before


def test_huge_uri_is_414_not_a_hang(env):
    g, u = env
    target = "/" + "a" * 200000
    responses, raw, closed = rawhttp.send_and_read_all(g.port, request_bytes("GET", target))
    assert responses and responses[0].status == 414, raw[:300]


def test_headers_under_limit_pass(env):
    g, u = env
    resp = rawhttp.exchange(g.port, request_bytes("GET", "/h", headers=[("X-Big", "v" * 3000)]))
    assert resp.status == 200
    assert u.last().header("X-Big") == "v" * 3000


def test_headers_over_limit_is_431(env):
    g, u = env
    before = u.count()
    headers = [(f"X-H{i}", "v" * 100) for i in range(50)]  # ~5.4 KiB
    assert_error(rawhttp.exchange(g.port, request_bytes("GET", "/h", headers=headers)), 431,
                 "headers_too_large")
    assert u.count() == before


def test_single_huge_header_is_431(env):
    g, u = env
    before = u.count()
    resp = rawhttp.exchange(g.port, request_bytes("GET", "/h", headers=[("X-Big", "v" * 10000)]))
    assert_error(resp, 431, "headers_too_large")
    assert u.count() == before


def test_header_timeout_408(env):
    g, u = env
    before = u.count()
    with RawConn(g.port, timeout=10) as c:
        t0 = time.monotonic()
        c.send(b"GET /slowloris HTTP/1.1\r\nHost: t\r\nX-Partial: ")
        raw, closed = c.read_until_close(HEADER_TIMEOUT + 3 * SLACK)
        elapsed = time.monotonic() - t0
    assert closed, "the gateway kept a stalled half-head open past header_timeout"
    assert HEADER_TIMEOUT * 0.8 <= elapsed <= HEADER_TIMEOUT + 3 * SLACK, elapsed
    if raw:
        responses = rawhttp.parse_all(raw)
        assert len(responses) == 1
        assert_error(responses[0], 408, "request_timeout")
    assert u.count() == before


def test_header_timeout_is_not_reset_by_trickling(env):
    """Sending one byte at a time does not extend header_timeout (slow-loris)."""
    g, u = env
    with RawConn(g.port, timeout=10) as c:
        t0 = time.monotonic()
        c.send(b"GET /trickle HTTP/1.1\r\nHost: t\r\n")
        closed = False
        while time.monotonic() - t0 < HEADER_TIMEOUT + 3 * SLACK:
            try:
                c.send(b"X-A: b\r\n")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if c.wait_closed(0.2):
                closed = True
                break
        elapsed = time.monotonic() - t0
    assert closed, "trickling header lines kept the connection open past header_timeout"
    assert elapsed <= HEADER_TIMEOUT + 3 * SLACK


def test_idle_keepalive_connection_is_closed(env):
    g, u = env
    with RawConn(g.port, timeout=10) as c:
        c.send(request_bytes("GET", "/idle"))
        assert c.read_response().status == 200
        t0 = time.monotonic()
        assert c.wait_closed(IDLE_TIMEOUT + 3 * SLACK), "idle connection was not closed"
        elapsed = time.monotonic() - t0
        assert elapsed >= IDLE_TIMEOUT * 0.8, elapsed
        assert c.buf == b"", f"unexpected bytes on an idle connection: {c.buf!r}"


def test_connection_just_opened_without_bytes_is_closed(env):
    g, _ = env
    s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
    try:
        t0 = time.monotonic()
        s.settimeout(max(HEADER_TIMEOUT, IDLE_TIMEOUT) + 3 * SLACK)
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
        except socket.timeout:
            pytest.fail("a silent connection was never closed")
        assert time.monotonic() - t0 >= 0.8 * min(HEADER_TIMEOUT, IDLE_TIMEOUT)
        # Nothing or a 408; never anything else.
        if data:
            assert data.startswith(b"HTTP/1.1 408"), data
    finally:
        s.close()


def test_active_request_is_not_cut_by_idle_timeout(env):
    """A slow upstream answer (longer than idle_timeout) is still delivered."""
    g, u = env
    with RawConn(g.port, timeout=10) as c:
        c.send(request_bytes("GET", "/slow/1500"))
        r = c.read_response(timeout=5 * SLACK)
        assert r.status == 200 and r.json()["path"] == "/slow/1500"


def test_max_connections(gateway, upstream):
    g = gateway(gw.config([gw.route("all", {"path_prefix": "/"}, "u")], {"u": gw.up(upstream)},
                          limits={"max_connections": 2}))
    c1, c2 = RawConn(g.port), RawConn(g.port)
    try:
        for c in (c1, c2):
            c.send(request_bytes("GET", "/held"))
            assert c.read_response().status == 200
        before = upstream.count()
        # A third connection is turned away (closed, or a 503) while two are open.
        try:
            with RawConn(g.port, timeout=5) as c3:
                try:
                    c3.send(request_bytes("GET", "/third"))
                except (BrokenPipeError, ConnectionResetError):
                    pass
                raw, closed = c3.read_until_close(3)
            assert closed
            if raw:
                assert rawhttp.parse_all(raw)[0].status == 503, raw[:200]
        except ConnectionRefusedError:
            pass
        assert upstream.count() == before
        c1.close()
        # A slot is free again.
        resp = None
        for _ in range(50):
            try:
                resp = rawhttp.exchange(g.port, request_bytes("GET", "/fourth"))
                break
            except (rawhttp.IncompleteResponse, ConnectionError):
                time.sleep(0.05)
        assert resp is not None and resp.status == 200
    finally:
        c1.close()
        c2.close()
