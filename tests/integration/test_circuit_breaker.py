"""Circuit breaker (docs/resilience.md, `circuit_breaker`): it opens once min_requests completed
requests in the window fail at failure_rate or more; while open nothing reaches the upstream and
clients get 503 `unavailable` (`circuit open`) at once; after open_for exactly
half_open_requests probes go through, all succeeding close it (with an empty window), the first
failure reopens it; below min_requests or below the rate it never opens; 4xx are not failures,
5xx, resets, timeouts and refused connects are; one breaker per upstream for the whole process;
the state in /admin/upstreams (`circuit`, `circuit_window`) and portico_circuit_state.

The upstream is a support.mode_upstream.ModeUpstream: "nothing reached it" is its own count."""
import socket
import struct
import threading
import time

import pytest

from support import gateway as gw
from support.mode_upstream import Client, ModeUpstreams, metric, once, upstream_info
from support.util import SLACK, assert_error, free_port, wait_until

OPEN_FOR = 1.0
CB = {"failure_rate": 0.5, "window": "10s", "min_requests": 5, "open_for": "1s",
      "half_open_requests": 2}
FAST = 0.15 * SLACK   # an answer "at once"


@pytest.fixture
def mups():
    with ModeUpstreams() as make:
        yield make


def start(gateway, upstreams, workers=1):
    routes = [gw.route(n, {"path_prefix": f"/{n}"}, n) for n in upstreams]
    return gateway(gw.config(routes, upstreams, workers=workers))


def circuit(g, name="svc"):
    return upstream_info(g, name)["circuit"]


def window(g, name="svc"):
    w = upstream_info(g, name)["circuit_window"]
    return w["requests"], w["failures"]


def state_metric(g, name="svc"):
    return metric(g, "portico_circuit_state", upstream=name)


def assert_circuit_open_answer(r, elapsed):
    assert_error(r, 503, "unavailable")
    assert "circuit open" in r.json()["error"]["message"], r
    assert elapsed < FAST, f"a circuit-open answer took {elapsed:.3f}s"


def open_circuit(g, c, u, n=5, path="/svc/f"):
    """Fails n requests (the upstream answers 503), then waits for the circuit to show open.
    Returns the time the last failure came back."""
    u.set_mode("status", 503)
    before = u.count()
    for i in range(n):
        r = c.get(f"{path}{i}")
        assert r.status == 503 and r.body.startswith(b"u status 503"), (i, r)
    t_open = time.monotonic()
    assert u.count() - before == n, u.client_since(before)
    wait_until(lambda: circuit(g) == "open", 0.5 * SLACK, message="circuit open")
    return t_open


def hammer_while_open(g, c, u, until, path="/svc/x"):
    """Sends requests until `until`: every one is answered 503 circuit open at once and the
    upstream receives nothing. Returns how many were sent."""
    before = u.count()
    sent = 0
    while time.monotonic() < until:
        t = time.monotonic()
        r = c.get(f"{path}{sent}") if sent % 2 == 0 else once(g, "GET", f"{path}{sent}")
        assert_circuit_open_answer(r, time.monotonic() - t)
        sent += 1
        time.sleep(0.02)
    assert u.count() == before, u.client_since(before)
    return sent


# ----- open, half-open, closed --------------------------------------------------------------------
def test_open_circuit_sends_nothing_upstream_then_probes_close_it(gateway, mups):
    u, other = mups("u"), mups("other")
    g = start(gateway, {"svc": gw.up(u, circuit_breaker=CB),
                        "oth": gw.up(other, circuit_breaker=CB)})
    assert circuit(g) == "closed" and state_metric(g) == 0
    with Client(g) as c:
        t_open = open_circuit(g, c, u)
        assert state_metric(g) == 2
        # Open: for open_for, nothing reaches the upstream and every answer is an instant 503.
        sent = hammer_while_open(g, c, u, t_open + OPEN_FOR - 0.15)
        assert sent >= 5
        assert u.count() == 5
        # Another upstream's breaker is its own.
        r = once(g, "GET", "/oth/fine")
        assert r.status == 200 and other.count() == 1, r
        assert circuit(g, "oth") == "closed" and state_metric(g, "oth") == 0
        # Half-open after open_for: two successful probes close it.
        u.set_mode("ok")
        time.sleep(max(0.0, t_open + OPEN_FOR + 0.05 - time.monotonic()))
        for i in range(2):
            r = c.get(f"/svc/probe{i}")
            assert r.status == 200 and r.json()["path"] == f"/svc/probe{i}", r
        assert u.count() == 7
        assert circuit(g) == "closed" and state_metric(g) == 0
        assert window(g) == (0, 0)
        # Closed: all traffic flows again.
        for i in range(10):
            assert c.get(f"/svc/after{i}").status == 200
        assert u.count() == 17
        assert once(g, "GET", "/svc/fresh").status == 200


def test_half_open_lets_exactly_half_open_requests_through(gateway, mups):
    u = mups("u")
    g = start(gateway, {"svc": gw.up(u, circuit_breaker=CB)})
    with Client(g) as c:
        t_open = open_circuit(g, c, u)
    u.set_mode("slow", 0.8)          # the probes stay unresolved for 0.8 s
    time.sleep(max(0.0, t_open + OPEN_FOR + 0.05 - time.monotonic()))
    results = {}

    def one(i):
        t = time.monotonic()
        try:
            results[i] = (once(g, "GET", f"/svc/h{i}", timeout=10), time.monotonic() - t)
        except Exception as e:  # noqa: BLE001
            results[i] = (e, time.monotonic() - t)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
        time.sleep(0.01)
    # While the probes are out: half-open, and only they reached the upstream.
    wait_until(lambda: u.count() >= 7, 0.5 * SLACK, message="the two probes upstream")
    time.sleep(0.1)
    assert u.count() == 7, u.client()
    assert circuit(g) == "half_open" and state_metric(g) == 1
    for t in threads:
        t.join(10)
    statuses = sorted(r.status for r, _ in results.values())
    assert statuses == [200, 200, 503, 503, 503, 503], results
    for r, elapsed in results.values():
        if r.status == 503:
            assert_circuit_open_answer(r, elapsed)
        else:
            assert elapsed >= 0.75, elapsed
    assert u.count() == 7
    assert circuit(g) == "closed" and state_metric(g) == 0
    assert once(g, "GET", "/svc/after").status == 200 and u.count() == 8


def test_failed_probe_reopens_for_open_for(gateway, mups):
    u = mups("u")
    g = start(gateway, {"svc": gw.up(u, circuit_breaker=CB)})
    with Client(g) as c:
        t_open = open_circuit(g, c, u)
        time.sleep(max(0.0, t_open + OPEN_FOR + 0.05 - time.monotonic()))
        r = c.get("/svc/probe")                      # the upstream still answers 503
        t_reopen = time.monotonic()
        assert r.status == 503 and r.body == b"u status 503 seq 6\n", r
        assert u.count() == 6
        wait_until(lambda: circuit(g) == "open", 0.2 * SLACK, message="circuit open again")
        assert state_metric(g) == 2
        hammer_while_open(g, c, u, t_reopen + OPEN_FOR - 0.15)
        assert u.count() == 6
        u.set_mode("ok")
        time.sleep(max(0.0, t_reopen + OPEN_FOR + 0.05 - time.monotonic()))
        assert [c.get(f"/svc/p{i}").status for i in range(4)] == [200] * 4
        assert u.count() == 10 and circuit(g) == "closed"


def test_open_circuit_survives_a_reload(gateway, mups):
    u = mups("u")
    ups = {"svc": gw.up(u, circuit_breaker=CB)}
    routes = [gw.route("svc", {"path_prefix": "/svc"}, "svc")]
    g = gateway(gw.config(routes, ups))
    with Client(g) as c:
        t_open = open_circuit(g, c, u)
    routes.append(gw.route("more", {"path_prefix": "/more"}, "svc"))
    status, body = g.reload(gw.config(routes, ups))
    assert status == 200, body
    assert circuit(g) == "open"
    with Client(g) as c:
        hammer_while_open(g, c, u, t_open + OPEN_FOR - 0.15, path="/more/x")
    assert u.count() == 5


# ----- what opens it and what does not ------------------------------------------------------------
def test_below_min_requests_or_below_the_rate_it_stays_closed(gateway, mups):
    u = mups("u")
    g = start(gateway, {"svc": gw.up(u, circuit_breaker=CB)})
    with Client(g) as c:
        u.set_mode("status", 503)
        for i in range(4):                            # 4 failures: fewer than min_requests
            assert c.get(f"/svc/a{i}").status == 503
        assert circuit(g) == "closed"
        assert window(g) == (4, 4)
        u.set_mode("ok")
        for i in range(6):                            # 4 of 10 failed: under 0.5
            assert c.get(f"/svc/b{i}").status == 200
        u.set_mode("status", 503)
        assert c.get("/svc/c").status == 503          # 5 of 11: still under 0.5
        assert circuit(g) == "closed" and state_metric(g) == 0
        assert window(g) == (11, 5)
        u.set_mode("ok")
        assert c.get("/svc/d").status == 200
    assert u.count() == 12


def test_the_window_slides(gateway, mups):
    u = mups("u")
    g = start(gateway, {"svc": gw.up(u, circuit_breaker=dict(CB, window="1s"))})
    u.set_mode("status", 503)
    with Client(g) as c:
        for i in range(4):
            assert c.get(f"/svc/a{i}").status == 503
        time.sleep(1.5)                               # those four leave the window
        for i in range(4):
            assert c.get(f"/svc/b{i}").status == 503
        assert circuit(g) == "closed"
        assert u.count() == 8
        assert c.get("/svc/c").status == 503          # the fifth in the window: open
        wait_until(lambda: circuit(g) == "open", 0.5 * SLACK, message="circuit open")
        t = time.monotonic()
        assert_circuit_open_answer(c.get("/svc/d"), time.monotonic() - t)
        assert u.count() == 9


def test_client_errors_are_not_failures(gateway, mups):
    u = mups("u")
    g = start(gateway, {"svc": gw.up(u, circuit_breaker=CB)})
    with Client(g) as c:
        for code in (404, 429, 400, 404, 403, 409, 404, 401):
            u.set_mode("status", code)
            assert c.get(f"/svc/{code}").status == code
    assert circuit(g) == "closed" and u.count() == 8
    assert window(g) == (8, 0)


@pytest.mark.parametrize("kind", ["500", "reset", "close", "timeout", "refused"])
def test_each_kind_of_failure_counts(gateway, mups, kind):
    u = mups("u")
    u.keepalive = False
    extra = {}
    target = u
    if kind == "500":
        u.set_mode("status", 500)
    elif kind in ("reset", "close"):
        u.set_mode(kind)
    elif kind == "timeout":
        u.set_mode("hang")
        extra["timeouts"] = {"connect": "1s", "request": "200ms", "idle": "5s"}
    else:
        target = f"127.0.0.1:{free_port()}"
    g = start(gateway, {"svc": gw.up(target, circuit_breaker=CB, **extra)})
    want = {"500": 500, "reset": 502, "close": 502, "timeout": 504, "refused": 502}[kind]
    with Client(g) as c:
        for i in range(5):
            r = c.get(f"/svc/k{i}")
            assert r.status == want, (i, r)
        wait_until(lambda: circuit(g) == "open", 0.5 * SLACK, message="circuit open")
        before = u.count()
        t = time.monotonic()
        assert_circuit_open_answer(c.get("/svc/next"), time.monotonic() - t)
        assert u.count() == before
    if kind != "refused":
        assert u.count() == 5


def test_one_breaker_for_the_process_with_two_workers(gateway, mups):
    u = mups("u")
    g = start(gateway, {"svc": gw.up(u, circuit_breaker=CB)}, workers=2)
    u.set_mode("status", 503)
    for i in range(5):                                # fresh connections: spread over workers
        assert once(g, "GET", f"/svc/w{i}").status == 503
    wait_until(lambda: circuit(g) == "open", 0.5 * SLACK, message="circuit open")
    for i in range(8):
        t = time.monotonic()
        assert_circuit_open_answer(once(g, "GET", f"/svc/o{i}"), time.monotonic() - t)
    assert u.count() == 5


def test_abandoned_requests_count_for_nothing(gateway, mups):
    u = mups("u")
    g = start(gateway, {"svc": gw.up(u, circuit_breaker=CB,
                                     timeouts={"connect": "1s", "request": "3s", "idle": "5s"})})
    u.set_mode("hang")
    clients = [Client(g) for _ in range(6)]
    for i, c in enumerate(clients):
        c.conn.send(f"GET /svc/gone{i} HTTP/1.1\r\nHost: test.local\r\n\r\n".encode())
    wait_until(lambda: u.count() == 6, 2 * SLACK, message="six requests upstream")
    for c in clients:   # an abortive close (RST): unmistakably abandoned (a FIN alone may be a
        c.conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,   # half-close that still
                               struct.pack("ii", 1, 0))             # waits for the answer)
        c.close()
    wait_until(lambda: upstream_info(g, "svc")["endpoints"][u.address]["in_flight"] == 0,
               5 * SLACK, message="the abandoned requests to end")
    assert circuit(g) == "closed"
    assert window(g) == (0, 0)
    u.set_mode("status", 503)
    with Client(g) as c:
        for i in range(4):
            assert c.get(f"/svc/f{i}").status == 503
    assert circuit(g) == "closed"
    assert window(g) == (4, 4)


# ----- config -------------------------------------------------------------------------------------
EPS = ["127.0.0.1:9001", "127.0.0.1:9002"]


@pytest.mark.parametrize("cb", [
    {}, CB, {"failure_rate": 1}, {"failure_rate": 0.01, "window": "1m", "min_requests": 100,
                                  "open_for": "30s", "half_open_requests": 3},
], ids=["defaults", "test-policy", "rate-1", "doc-like"])
def test_validate_accepts_circuit_breaker(portico_bin, tmp_path, cb):
    run, text, _ = gw.validate_upstream(portico_bin, tmp_path, {"endpoints": EPS, "circuit_breaker": cb})
    assert run.returncode == 0, run.stdout + run.stderr + "\n" + text
    assert run.stdout.strip() == "ok"


@pytest.mark.parametrize("cb,word", [
    ({"failure_rate": 0}, "failure_rate"),
    ({"failure_rate": 1.5}, "failure_rate"),
    ({"failure_rate": -0.5}, "failure_rate"),
    ({"failure_rate": "half"}, "failure_rate"),
    ({"window": "soon"}, ("window", '"soon"')),          # a malformed duration: the message
    ({"open_for": "forever"}, ("open_for", '"forever"')),  # may name the value instead
    ({"min_requests": "some"}, "min_requests"),
    ({"half_open_requests": -1}, "half_open_requests"),
    ({"failure_ratio": 0.5}, "failure_ratio"),
], ids=["rate-0", "rate-over-1", "rate-negative", "rate-text", "window", "open_for",
        "min_requests", "half_open-negative", "unknown-key"])
def test_validate_rejects_bad_circuit_breaker(portico_bin, tmp_path, cb, word):
    run, text, path = gw.validate_upstream(portico_bin, tmp_path, {"endpoints": EPS, "circuit_breaker": cb})
    assert run.returncode == 1, run.stdout + run.stderr + "\n" + text
    lines = [ln for ln in (run.stdout + run.stderr).splitlines() if ln.startswith(path + ":")]
    words = word if isinstance(word, tuple) else (word,)
    assert any(w in ln for ln in lines for w in words), (word, run.stdout + run.stderr)
