"""Hot reload (SIGHUP, POST /admin/reload), refused reloads, reload under load, SIGTERM drain."""
import http.client
import json
import signal
import socket
import threading
import time

from support import gateway as gw
from support import rawhttp
from support.rawhttp import RawConn, request_bytes
from support.util import SLACK, wait_until


def cfg_v1(u, **kw):
    return gw.config([gw.route("one", {"path_prefix": "/one"}, "u"),
                      gw.route("shared", {"path_prefix": "/shared"}, "u")], {"u": gw.up(u)}, **kw)


def cfg_v2(u, **kw):
    return gw.config([gw.route("two", {"path_prefix": "/two"}, "u"),
                      gw.route("shared", {"path_prefix": "/shared"}, "u")], {"u": gw.up(u)}, **kw)


BROKEN = """workers: 1
listeners:
  - name: main
    address: 127.0.0.1:@PORT@
admin:
  address: 127.0.0.1:@ADMIN@
upstreams:
  u:
    endpoints: ["127.0.0.1:1"]
routes:
  - name: one
    match: { path_prefix: /one }
    upstram: u
    auth: public
"""


def status(g, path):
    return rawhttp.exchange(g.port, request_bytes("GET", path)).status


def test_sighup_picks_up_changed_route(gateway, upstream):
    g = gateway(cfg_v1(upstream))
    assert status(g, "/one") == 200
    assert status(g, "/two") == 404
    g.reload(cfg_v2(upstream), via="signal", wait_for=lambda: status(g, "/two") == 200)
    assert status(g, "/one") == 404
    assert status(g, "/shared/x") == 200
    assert g.alive()


def test_admin_reload_returns_increasing_version(gateway, upstream):
    g = gateway(cfg_v1(upstream))
    code, body = g.reload(cfg_v2(upstream))
    assert code == 200, body
    v1 = body["version"]
    assert isinstance(v1, int) and v1 >= 2
    # The change is in force as soon as the reload call returns.
    assert status(g, "/two") == 200
    assert status(g, "/one") == 404
    code, body = g.reload(cfg_v1(upstream))
    assert code == 200 and body["version"] > v1
    assert status(g, "/one") == 200
    assert status(g, "/two") == 404


def test_admin_reload_of_broken_file_is_422_and_old_config_serves(gateway, upstream):
    g = gateway(cfg_v1(upstream))
    code, before = g.admin("GET", "/readyz")
    code, body = g.reload(BROKEN)
    assert code == 422, body
    assert isinstance(body["errors"], list) and body["errors"]
    text = " ".join(body["errors"])
    assert "upstram" in text
    assert ":13:5:" in text, text  # file:line:col of the misspelled key
    assert status(g, "/one") == 200
    assert upstream.last().path == "/one"
    # A fixed file is accepted again.
    code, body = g.reload(cfg_v2(upstream))
    assert code == 200
    assert status(g, "/two") == 200


def test_sighup_with_broken_file_keeps_serving(gateway, upstream):
    g = gateway(cfg_v1(upstream))
    version = g.config_version()
    g.write_config(BROKEN)
    g.signal(signal.SIGHUP)
    # The refusal is logged; wait for it rather than sleeping blindly.
    wait_until(lambda: "upstram" in g.stderr(), timeout=5, message="the refused reload logged")
    assert g.alive()
    assert status(g, "/one") == 200
    assert g.config_version() == version
    code, _ = g.admin("GET", "/readyz")
    assert code == 200


def test_in_flight_request_survives_reload(gateway, upstream):
    g = gateway(gw.config([gw.route("slow", {"path_prefix": "/slow"}, "u")],
                          {"u": gw.up(upstream)}))
    result = {}
    t = threading.Thread(target=lambda: result.update(
        resp=rawhttp.exchange(g.port, request_bytes("GET", "/slow/1000"), timeout=10)))
    t.start()
    upstream.wait_for_requests(1)
    code, _ = g.reload(cfg_v2(upstream))  # /slow is no longer routed
    assert code == 200
    assert status(g, "/slow/1") == 404
    t.join(10)
    assert result["resp"].status == 200
    assert result["resp"].json()["path"] == "/slow/1000"


def test_keepalive_connection_uses_new_config(gateway, upstream):
    g = gateway(cfg_v1(upstream))
    with RawConn(g.port) as c:
        c.send(request_bytes("GET", "/one"))
        assert c.read_response().status == 200
        code, _ = g.reload(cfg_v2(upstream))
        assert code == 200
        c.send(request_bytes("GET", "/two"))
        assert c.read_response().status == 200
        c.send(request_bytes("GET", "/one"))
        assert c.read_response().status == 404


def test_reload_switches_upstream_endpoints(gateway, upstreams):
    """Same upstream name, new endpoint: pooled connections to the old one are not reused."""
    ua, ub = upstreams("ua"), upstreams("ub")
    routes = [gw.route("all", {"path_prefix": "/"}, "svc")]
    g = gateway(gw.config(routes, {"svc": gw.up(ua)}))
    with RawConn(g.port) as c:
        for i in range(3):
            c.send(request_bytes("GET", f"/before/{i}"))
            assert c.read_response().json()["upstream"] == "ua"
        code, _ = g.reload(gw.config(routes, {"svc": gw.up(ub)}))
        assert code == 200
        for i in range(3):
            c.send(request_bytes("GET", f"/after/{i}"))
            assert c.read_response().json()["upstream"] == "ub"
    assert [r.path for r in ua.snapshot()] == [f"/before/{i}" for i in range(3)]
    assert [r.path for r in ub.snapshot()] == [f"/after/{i}" for i in range(3)]


def _variant(ua, ub, k):
    """Two configs that both route /p/... (differently), alternating by k."""
    if k % 2 == 0:
        routes = [gw.route("p-a", {"path_prefix": "/p"}, "ua",
                           headers={"response": {"set": {"X-Variant": "a"}}}),
                  gw.route("extra-a", {"path_exact": "/only-a"}, "ua")]
    else:
        routes = [gw.route("p-b", {"path_prefix": "/p"}, split=[{"upstream": "ua", "weight": 1},
                                                               {"upstream": "ub", "weight": 1}],
                           headers={"response": {"set": {"X-Variant": "b"}}}),
                  gw.route("extra-b", {"path": "/only-b/{x}"}, "ub")]
    return gw.config(routes, {"ua": gw.up(ua), "ub": gw.up(ub)}, workers=2)


def test_reload_under_load_drops_nothing(gateway, upstreams):
    ua, ub = upstreams("ua"), upstreams("ub")
    g = gateway(_variant(ua, ub, 0))
    stop = threading.Event()
    errors = []
    counts = [0] * 4
    variants = set()

    def worker(idx, keepalive):
        conn = None
        i = 0
        while not stop.is_set():
            i += 1
            path = f"/p/{idx}/{i}"
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
                conn.request("GET", path)
                r = conn.getresponse()
                body = r.read()
                if r.status != 200 or json.loads(body)["path"] != path:
                    errors.append((path, r.status, body[:200]))
                variants.add(r.getheader("X-Variant"))
                counts[idx] += 1
                if not keepalive or r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as e:  # noqa: BLE001
                errors.append((path, repr(e)))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, args=(k, k % 2 == 0)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        versions = []
        for k in range(1, 21):
            time.sleep(0.15)
            if k % 2:
                code, body = g.reload(_variant(ua, ub, k))
                assert code == 200, body
                versions.append(body["version"])
            else:
                g.reload(_variant(ua, ub, k), via="signal")
                versions.append(g.config_version())
        time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert errors == [], errors[:10]
    assert all(c >= 20 for c in counts), counts
    assert variants == {"a", "b"}
    assert versions == sorted(versions) and len(set(versions)) == 20, versions
    assert ub.count() > 0  # variant b really served traffic


def _connect_refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


def test_sigterm_drains_in_flight_requests(gateway, upstream):
    g = gateway(gw.config([gw.route("all", {"path_prefix": "/"}, "u")], {"u": gw.up(upstream)},
                          workers=2, drain_timeout="10s"))
    results = [None] * 5

    def client(i):
        try:
            results[i] = rawhttp.exchange(g.port, request_bytes("GET", f"/slow/1500/{i}"),
                                          timeout=15)
        except Exception as e:  # noqa: BLE001
            results[i] = e

    threads = [threading.Thread(target=client, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    upstream.wait_for_requests(5)
    t0 = time.monotonic()
    g.signal(signal.SIGTERM)
    # Draining: readyz says so, and new connections are refused.
    wait_until(lambda: g.admin("GET", "/readyz")[0] == 503, timeout=2, message="readyz 503")
    wait_until(lambda: _connect_refused(g.port), timeout=2, message="new connections refused")
    for t in threads:
        t.join(15)
    for i, r in enumerate(results):
        assert isinstance(r, rawhttp.Response), r
        assert r.status == 200 and r.json()["path"] == f"/slow/1500/{i}"
    g.proc.wait(timeout=10)
    assert time.monotonic() - t0 < 5 * SLACK
    assert g.stop() == 0
    assert upstream.count() == 5


def test_sigterm_with_idle_keepalive_client_exits_promptly(gateway, upstream):
    g = gateway(gw.config([gw.route("all", {"path_prefix": "/"}, "u")], {"u": gw.up(upstream)},
                          drain_timeout="10s"))
    with RawConn(g.port, timeout=10) as c:
        c.send(request_bytes("GET", "/x"))
        assert c.read_response().status == 200
        t0 = time.monotonic()
        assert g.stop() == 0
        assert time.monotonic() - t0 < 2 * SLACK
        assert c.wait_closed(2)


def test_sigterm_gives_up_after_drain_timeout(gateway, upstream):
    g = gateway(gw.config([gw.route("all", {"path_prefix": "/"}, "u")], {"u": gw.up(upstream)},
                          drain_timeout="1s"))
    with RawConn(g.port, timeout=10) as c:
        c.send(request_bytes("GET", "/hang"))
        upstream.wait_for_requests(1)
        t0 = time.monotonic()
        rc = g.stop()
        elapsed = time.monotonic() - t0
    assert rc == 0
    assert 0.8 <= elapsed <= 1 + 2 * SLACK, elapsed


def test_keepalive_client_told_to_close_while_draining(gateway, upstream):
    """A response finished during drain carries Connection: close (or the connection closes)."""
    g = gateway(gw.config([gw.route("all", {"path_prefix": "/"}, "u")], {"u": gw.up(upstream)},
                          drain_timeout="10s"))
    with RawConn(g.port, timeout=10) as c:
        c.send(request_bytes("GET", "/slow/800"))
        upstream.wait_for_requests(1)
        g.signal(signal.SIGTERM)
        r = c.read_response()
        assert r.status == 200
        assert r.header("Connection", "").lower() == "close"
        assert c.wait_closed(3)
    g.proc.wait(timeout=10)
    assert g.stop() == 0
