"""Upstream failures map to 502 / 504 JSON errors, and the gateway keeps serving afterwards."""
import threading
import time

import pytest

from support import gateway as gw
from support import rawhttp
from support.rawhttp import RawConn, request_bytes
from support.upstream import BAD_RESPONSES
from support.util import SLACK, assert_error, free_port, wait_until


@pytest.fixture(scope="module")
def env(module_gateway, module_upstreams):
    u = module_upstreams("fail")
    dead_port = free_port()  # nothing listens here
    routes = [
        gw.route("refused", {"path_prefix": "/refused"}, "dead"),
        gw.route("timeout", {"path_prefix": "/timed"}, "u", timeout="500ms",
                 rewrite={"strip_prefix": True}),
        gw.route("upstream-timeout", {"path_prefix": "/uptimed"}, "u_short",
                 rewrite={"strip_prefix": True}),
        gw.route("all", {"path_prefix": "/"}, "u"),
    ]
    upstreams = {
        "u": gw.up(u),
        "u_short": gw.up(u, timeouts={"connect": "1s", "request": "700ms", "idle": "30s"}),
        "dead": gw.up(f"127.0.0.1:{dead_port}", timeouts={"connect": "1s"}),
    }
    g = module_gateway(gw.config(routes, upstreams))
    return g, u


def get(g, path, timeout=10.0):
    return rawhttp.exchange(g.port, request_bytes("GET", path), timeout=timeout)


def still_serving(g, u):
    resp = get(g, "/healthy-after")
    assert resp.status == 200 and resp.json()["path"] == "/healthy-after"


def test_connection_refused_is_502(env):
    g, u = env
    t0 = time.monotonic()
    assert_error(get(g, "/refused/x"), 502, "bad_upstream")
    assert time.monotonic() - t0 < 3 * SLACK
    still_serving(g, u)


def test_route_timeout_is_504(env):
    g, u = env
    before = u.count()
    t0 = time.monotonic()
    resp = get(g, "/timed/hang")
    elapsed = time.monotonic() - t0
    assert_error(resp, 504, "upstream_timeout")
    assert 0.4 <= elapsed <= 0.5 + 2 * SLACK, elapsed
    assert [r.path for r in u.since(before)] == ["/hang"]
    still_serving(g, u)


def test_route_timeout_not_hit_by_fast_answer(env):
    g, u = env
    resp = get(g, "/timed/slow/100")
    assert resp.status == 200 and resp.json()["path"] == "/slow/100"


def test_upstream_request_timeout_is_504(env):
    g, u = env
    t0 = time.monotonic()
    resp = get(g, "/uptimed/slow/3000")
    elapsed = time.monotonic() - t0
    assert_error(resp, 504, "upstream_timeout")
    assert 0.6 <= elapsed <= 0.7 + 2 * SLACK, elapsed
    still_serving(g, u)


def test_invalid_response_is_502(env):
    g, u = env
    assert_error(get(g, "/invalid"), 502, "bad_upstream")
    still_serving(g, u)


@pytest.mark.parametrize("name", sorted(BAD_RESPONSES))
def test_ambiguous_upstream_response_is_502(env, name):
    g, u = env
    assert_error(get(g, f"/bad-response/{name}"), 502, "bad_upstream")
    still_serving(g, u)


def test_garbage_response_is_502(env):
    g, u = env
    assert_error(get(g, "/garbage"), 502, "bad_upstream")
    still_serving(g, u)


def test_close_without_answer_is_502(env):
    g, u = env
    before = u.count()
    assert_error(get(g, "/close"), 502, "bad_upstream")
    # A GET may be retried once on a fresh connection, never more.
    assert 1 <= len(u.since(before)) <= 2
    still_serving(g, u)


def test_reset_is_502(env):
    g, u = env
    assert_error(get(g, "/reset"), 502, "bad_upstream")
    still_serving(g, u)


def test_post_closed_without_answer_is_502_not_replayed(env):
    g, u = env
    before = u.count()
    resp = rawhttp.exchange(g.port, request_bytes("POST", "/close", body=b"payload"))
    assert_error(resp, 502, "bad_upstream")
    # A POST is not idempotent: the upstream got it on a fresh connection, so no replay.
    assert len([r for r in u.since(before) if r.path == "/close"]) == 1


def test_client_connection_usable_after_502(env):
    g, u = env
    with RawConn(g.port) as c:
        c.send(request_bytes("GET", "/invalid"))
        r = c.read_response()
        assert r.status == 502
        if r.header("Connection", "").lower() != "close":
            c.send(request_bytes("GET", "/next"))
            r2 = c.read_response()
            assert r2.status == 200 and r2.json()["path"] == "/next"


@pytest.mark.parametrize("path", [
    "/truncate",  # the last data and the FIN in one segment
    "/truncate-late",
])
def test_truncated_response_body_closes_client(env, path):
    """Headers already sent: the gateway cannot send 502, so it must close the connection."""
    g, u = env
    with RawConn(g.port, timeout=10) as c:
        c.send(request_bytes("GET", path))
        raw, closed = c.read_until_close(3)
    assert raw.startswith(b"HTTP/1.1 200")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-length: 1000" in head.lower()
    assert body == b"x" * 100
    assert closed, "the gateway left the client waiting for bytes that will never come"


def test_stale_pooled_connection_is_retried(env):
    """The upstream closes an idle pooled connection; the next request must not see a 502."""
    g, u = env
    for i in range(3):
        resp = get(g, "/close-after")
        assert resp.status == 200
        time.sleep(0.2)  # the upstream has closed the pooled connection by now
        resp = get(g, f"/after-stale/{i}")
        assert resp.status == 200, resp
        assert resp.json()["path"] == f"/after-stale/{i}"


def test_upstream_connection_close_response_is_handled(env):
    g, u = env
    for i in range(3):
        resp = get(g, "/status/200?close=1")
        assert resp.status == 200 and resp.body == b"status 200\n"
        resp = get(g, f"/after-close/{i}")
        assert resp.status == 200 and resp.json()["path"] == f"/after-close/{i}"


@pytest.mark.parametrize("code", [200, 201, 204, 301, 404, 500, 503])
def test_upstream_status_is_passed_through(env, code):
    g, u = env
    resp = get(g, f"/status/{code}")
    assert resp.status == code
    assert resp.header("X-Upstream-Name") == "fail"
    if code != 204:
        assert resp.body == f"status {code}\n".encode()


def test_upstream_stopped_gives_502(gateway, upstreams):
    u = upstreams("gone")
    g = gateway(gw.config([gw.route("all", {"path_prefix": "/"}, "u")], {"u": gw.up(u)}))
    assert get(g, "/x").status == 200
    u.stop()
    assert_error(get(g, "/y"), 502, "bad_upstream")


def test_pool_limits_and_idle_timeout(gateway, upstream):
    """pool.max_connections caps concurrent upstream connections (the excess is refused with
    503 unavailable, never a connection over the cap); max_idle caps what stays pooled; an
    idle pooled connection is closed after timeouts.idle."""
    g = gateway(gw.config([gw.route("all", {"path_prefix": "/"}, "u")], {"u": gw.up(
        upstream, pool={"max_connections": 2, "max_idle": 1}, timeouts={"idle": "300ms"})}))
    results = []

    def client(i):
        results.append(rawhttp.exchange(g.port, request_bytes("GET", f"/slow/400/{i}"),
                                        timeout=10))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    statuses = sorted(r.status for r in results)
    assert len(statuses) == 6
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(200) >= 2, statuses
    for r in results:
        if r.status == 503:
            assert r.json()["error"]["code"] == "unavailable"
    assert upstream.max_open_connections <= 2
    # At most max_idle connections stay pooled; then the idle timeout closes them all.
    wait_until(lambda: upstream.open_connections <= 1, timeout=2, message="max_idle honoured")
    t0 = time.monotonic()
    wait_until(lambda: upstream.open_connections == 0, timeout=3 * SLACK,
               message="idle pooled connections closed")
    assert time.monotonic() - t0 < 0.3 + 1.5 * SLACK
    assert rawhttp.exchange(g.port, request_bytes("GET", "/after-idle")).status == 200
