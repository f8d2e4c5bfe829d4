"""Active health checks and passive outlier ejection (docs/resilience.md, `health_check`,
`outlier`).

Health checks: an endpoint whose checks fail `unhealthy` times in a row leaves the rotation
within about interval x unhealthy (+ one interval), /admin/upstreams shows it (`state`,
`healthy`, `reason`), no client request reaches it, and `healthy` passes bring it back; with
retries on, a steady stream of client requests never fails across the whole transition; the
checks run once per process whatever the number of workers; every endpoint unhealthy -> 503
`unavailable` at once with nothing sent upstream; a status outside `statuses`, a hung, reset,
closed or refused check is a failure; `path` (with its query), `host`, `statuses`, the
check's User-Agent and Connection: close.

Outlier ejection: `consecutive_failures` failures in a row eject an endpoint for eject_for, the
next ejection in a row lasts twice as long, any other response ends the run, at most half the
endpoints are ejected (one endpoint alone never is); the state shows as `ejected` with a reason.

Every endpoint is a support.mode_upstream.ModeUpstream: client requests and health checks are
recorded apart, with their arrival times."""
import statistics
import time

import pytest

from support import gateway as gw
from support.mode_upstream import Client, ModeUpstreams, Stream, endpoint_info, once
from support.util import SLACK, assert_error, wait_until

INTERVAL = 0.2
HC = {"path": "/healthz", "interval": "200ms", "timeout": "100ms", "healthy": 2, "unhealthy": 2}
# Within interval x unhealthy + one interval (+ the check's own time and some slack).
LEAVE = INTERVAL * 2 + INTERVAL + 0.1 + 0.15 * SLACK
RETURN = INTERVAL * 2 + INTERVAL + 0.15 * SLACK
FAST = 0.15 * SLACK
RETRY = {"attempts": 2, "on": ["connect_failure", "reset", 502, 503, 504], "budget": 1.0,
         "backoff": {"base": "1ms", "max": "5ms"}}


@pytest.fixture
def mups():
    with ModeUpstreams() as make:
        yield make


def start(gateway, upstreams, workers=1):
    routes = [gw.route(n, {"path_prefix": f"/{n}"}, n) for n in upstreams]
    return gateway(gw.config(routes, upstreams, workers=workers))


def state(g, u, name="svc"):
    addr = u if isinstance(u, str) else u.address
    return endpoint_info(g, name, addr)


def wait_state(g, u, want, timeout, name="svc"):
    """Polls /admin/upstreams every 10 ms until the endpoint's state is `want`; returns
    (monotonic time it was first seen, the endpoint's entry)."""
    seen = {}

    def check():
        ep = state(g, u, name)
        if ep["state"] == want:
            seen["t"], seen["ep"] = time.monotonic(), ep
            return True
        return False
    wait_until(check, timeout, interval=0.01, message=f"{getattr(u, 'name', u)} {want}")
    return seen["t"], seen["ep"]


def checks_running(*ups):
    wait_until(lambda: all(u.health_count() >= 1 for u in ups), 2 * SLACK,
               message="the first health checks")


def send_many(g, n, path="/svc/r", expect=200):
    names = []
    with Client(g) as c:
        for i in range(n):
            r = c.get(f"{path}{i}")
            assert r.status == expect, (i, r)
            names.append(r.header("X-Upstream-Name"))
    return names


def assert_unhealthy_entry(ep, *words):
    assert ep["healthy"] is False and ep["state"] == "unhealthy", ep
    assert ep["reason"], ep
    for w in words:
        assert w in ep["reason"], ep


# ----- leaving and returning ----------------------------------------------------------------------
def test_failing_endpoint_leaves_rotation_and_returns(gateway, mups):
    a, b = mups("a"), mups("b")
    g = start(gateway, {"svc": gw.up(a, b, health_check=HC)})
    checks_running(a, b)
    assert state(g, b)["state"] == "healthy" and state(g, b)["healthy"] is True
    assert sorted(send_many(g, 10)) == ["a"] * 5 + ["b"] * 5

    b.set_health(500)
    t0 = time.monotonic()
    h0 = b.health_count()
    # One failed check is not enough (unhealthy: 2).
    wait_until(lambda: b.health_count() > h0, 2 * INTERVAL * SLACK, interval=0.005,
               message="the first failing check")
    time.sleep(0.03)
    assert state(g, b)["state"] == "healthy", state(g, b)
    t1, ep = wait_state(g, b, "unhealthy", 2 * LEAVE)
    assert t1 - t0 <= LEAVE, f"left rotation after {t1 - t0:.3f}s (bound {LEAVE:.3f}s)"
    assert_unhealthy_entry(ep, "500")
    failed = [x for x in b.health_since(h0) if x.mode == ("health", 500)]
    assert len(failed) >= 2, failed
    assert state(g, a)["state"] == "healthy"

    before = b.count()
    assert send_many(g, 20) == ["a"] * 20
    assert b.count() == before, b.client_since(before)

    b.set_health(200)
    t2 = time.monotonic()
    h2 = b.health_count()
    t3, ep = wait_state(g, b, "healthy", 2 * RETURN)
    assert t3 - t2 <= RETURN, f"came back after {t3 - t2:.3f}s (bound {RETURN:.3f}s)"
    assert ep["healthy"] is True, ep
    passed = [x for x in b.health_since(h2) if x.mode == ("health", 200)]
    assert len(passed) >= 2, passed
    names = send_many(g, 20)
    assert names.count("b") >= 5, names
    assert b.count() == before + names.count("b")


@pytest.mark.parametrize("health", ["hang", "reset", "close", 302, 404, 503])
def test_each_kind_of_failed_check_makes_it_unhealthy(gateway, mups, health):
    a, b = mups("a"), mups("b")
    g = start(gateway, {"svc": gw.up(a, b, health_check=HC)})
    checks_running(a, b)
    b.set_health(health)
    t0 = time.monotonic()
    bound = LEAVE + (0.1 if health == "hang" else 0)   # the last check runs into its timeout
    t1, ep = wait_state(g, b, "unhealthy", 2 * bound)
    assert t1 - t0 <= bound, f"unhealthy after {t1 - t0:.3f}s (bound {bound:.3f}s)"
    assert_unhealthy_entry(ep, *([str(health)] if isinstance(health, int) else []))
    before = b.count()
    assert send_many(g, 6) == ["a"] * 6
    assert b.count() == before


def test_hung_check_fails_only_after_its_timeout(gateway, mups):
    """A check that never answers fails after `timeout`, not at once and not never: with
    timeout 300ms of interval 400ms, a hung endpoint cannot go unhealthy sooner than one
    interval + one timeout after the first hung check arrived."""
    a, b = mups("a"), mups("b")
    hc = dict(HC, interval="400ms", timeout="300ms")
    g = start(gateway, {"svc": gw.up(a, b, health_check=hc)})
    checks_running(a, b)
    h0 = b.health_count()
    b.set_health("hang")
    wait_until(lambda: b.health_count() > h0, 1.0 * SLACK, interval=0.005,
               message="a hung check")
    first = b.health_since(h0)[0]
    t1, ep = wait_state(g, b, "unhealthy", 3 * SLACK)
    # The second hung check starts one interval after the first (or after the first timed out)
    # and fails one timeout later.
    assert t1 - first.time >= 0.4 + 0.3 - 0.06, t1 - first.time
    assert t1 - first.time <= 0.3 + 0.4 + 0.3 + 0.2 * SLACK, t1 - first.time
    assert_unhealthy_entry(ep)


def test_refused_check_is_unhealthy_and_returns_when_listening_again(gateway, mups):
    a, b = mups("a"), mups("b")
    g = start(gateway, {"svc": gw.up(a, b, health_check=HC)})
    checks_running(a, b)
    b.refuse()
    b.drop_connections()
    t0 = time.monotonic()
    t1, ep = wait_state(g, b, "unhealthy", 2 * LEAVE)
    assert t1 - t0 <= LEAVE, t1 - t0
    assert_unhealthy_entry(ep)
    assert send_many(g, 10) == ["a"] * 10
    b.listen_again()
    t2 = time.monotonic()
    t3, _ = wait_state(g, b, "healthy", 2 * RETURN)
    assert t3 - t2 <= RETURN, t3 - t2
    assert send_many(g, 10).count("b") >= 3


# ----- no failed client request across the transition ---------------------------------------------
def test_no_client_request_fails_while_an_endpoint_goes_bad_and_comes_back(gateway, mups):
    a, b = mups("a"), mups("b")
    g = start(gateway, {"svc": gw.up(a, b, health_check=HC, retry=RETRY)}, workers=2)
    checks_running(a, b)
    stream = Stream(g, "/svc/s", gap=0.01)
    try:
        time.sleep(0.3)
        b.set_mode("status", 503)      # everything at b fails: the retry saves those requests
        b.set_health(500)
        t_bad = time.monotonic()
        t_out, _ = wait_state(g, b, "unhealthy", 2 * LEAVE)
        assert t_out - t_bad <= LEAVE
        time.sleep(0.6)
        # Once it shows unhealthy, no client request reaches it (every worker sees it at once).
        late = [x for x in b.client() if x.time > t_out + 0.02]
        assert late == [], late
        b.set_mode("ok")
        b.set_health(200)
        t_good = time.monotonic()
        t_back, _ = wait_state(g, b, "healthy", 2 * RETURN)
        assert t_back - t_good <= RETURN
        time.sleep(0.5)
    finally:
        results = stream.stop()
    assert not stream.errors, stream.errors[:5]
    assert len(results) >= 100, len(results)
    bad = [r for r in results if r[1] != 200]
    assert bad == [], bad[:5]
    # b took requests again once healthy.
    back = [r for r in results if r[0] > t_back and r[2] == "b"]
    assert len(back) >= 5, len(back)
    assert any(x.mode == ("status", 503) for x in b.client()), "b never failed a request"


# ----- once per process ---------------------------------------------------------------------------
def test_checks_run_once_per_process_with_two_workers(gateway, mups):
    a, b = mups("a"), mups("b")
    g = start(gateway, {"svc": gw.up(a, b, health_check=HC)}, workers=2)
    checks_running(a, b)
    t0 = time.monotonic()
    ha, hb = a.health_count(), b.health_count()
    time.sleep(2.0)
    span = time.monotonic() - t0
    expected = span / INTERVAL       # 10
    for u, h0 in ((a, ha), (b, hb)):
        got = u.health_since(h0)
        assert expected * 0.6 / SLACK <= len(got) <= expected * 1.3 + 1, (u.name, len(got))
        gaps = [y.time - x.time for x, y in zip(got, got[1:])]
        med = statistics.median(gaps)
        assert INTERVAL * 0.75 <= med <= INTERVAL * 1.3 * SLACK, (u.name, med, gaps)
    # and every worker uses the result: a sick endpoint gets nothing from either worker
    b.set_health(500)
    wait_state(g, b, "unhealthy", 2 * LEAVE)
    before = b.count()
    for i in range(10):   # fresh connections, spread over the workers
        r = once(g, "GET", f"/svc/w{i}")
        assert r.status == 200 and r.header("X-Upstream-Name") == "a", r
    assert b.count() == before


# ----- every endpoint unhealthy -------------------------------------------------------------------
def test_all_endpoints_unhealthy_is_503_at_once(gateway, mups):
    a, b = mups("a"), mups("b")
    g = start(gateway, {"svc": gw.up(a, b, health_check=HC)})
    checks_running(a, b)
    a.set_health(500)
    b.set_health(500)
    wait_state(g, a, "unhealthy", 2 * LEAVE)
    wait_state(g, b, "unhealthy", 2 * LEAVE)
    ca, cb = a.count(), b.count()
    with Client(g) as c:
        for i in range(5):
            t = time.monotonic()
            r = c.get(f"/svc/none{i}") if i % 2 else once(g, "GET", f"/svc/none{i}")
            elapsed = time.monotonic() - t
            assert_error(r, 503, "unavailable")
            assert "no healthy endpoint" in r.json()["error"]["message"], r
            assert elapsed < FAST, elapsed
        assert (a.count(), b.count()) == (ca, cb)
        a.set_health(200)
        wait_state(g, a, "healthy", 2 * RETURN)
        r = c.get("/svc/again")
        assert r.status == 200 and r.header("X-Upstream-Name") == "a", r


# ----- what the check sends -----------------------------------------------------------------------
def test_path_query_host_statuses_and_headers_of_the_check(gateway, mups):
    a = mups("a", health_path="/hc/deep")
    b = mups("b", health_path="/hc/deep")
    c = mups("c")                     # default host: the endpoint as written
    hc = dict(HC, path="/hc/deep?probe=1", statuses=[204], host="svc.internal")
    g = start(gateway, {"svc": gw.up(a, b, health_check=hc),
                        "dflt": gw.up(c, health_check=HC)})
    a.set_health(204)
    b.set_health(200)                 # a 2xx, but not in `statuses`: a failure
    checks_running(a, b, c)
    t1, ep = wait_state(g, b, "unhealthy", 2 * LEAVE + 0.5)
    assert_unhealthy_entry(ep, "200")
    time.sleep(2 * INTERVAL)
    assert state(g, a)["state"] == "healthy"
    for x in a.health() + b.health():
        assert x.method == "GET" and x.target == "/hc/deep?probe=1", x
        assert x.version == "HTTP/1.1", x
        assert x.header("Host") == "svc.internal", x.headers
        assert x.header("User-Agent") == "portico-health-check", x.headers
        assert (x.header("Connection") or "").lower() == "close", x.headers
        assert x.body_len == 0
    for x in c.health():
        assert x.target == "/healthz" and x.header("Host") == c.address, x.headers
    assert state(g, c, "dflt")["state"] == "healthy"
    assert a.count() == b.count() == c.count() == 0   # no check was taken for a client request


def test_unhealthy_endpoint_needs_consecutive_passes(gateway, mups):
    """healthy: 2: one passing check between failures does not bring it back."""
    a, b = mups("a"), mups("b")
    g = start(gateway, {"svc": gw.up(a, b, health_check=HC)})
    checks_running(a, b)
    b.set_health(500)
    wait_state(g, b, "unhealthy", 2 * LEAVE)
    h = b.health_count()
    b.set_health(200)
    wait_until(lambda: b.health_count() > h, 2 * INTERVAL * SLACK, interval=0.005,
               message="one passing check")
    b.set_health(500)
    time.sleep(3 * INTERVAL)
    assert state(g, b)["state"] == "unhealthy", state(g, b)
    assert send_many(g, 6) == ["a"] * 6


def test_health_state_survives_a_reload(gateway, mups):
    """State is kept per process and survives a reload while the upstream keeps its name and
    the endpoint its address."""
    a, b = mups("a"), mups("b")
    ups = {"svc": gw.up(a, b, health_check=HC)}
    routes = [gw.route("svc", {"path_prefix": "/svc"}, "svc")]
    g = gateway(gw.config(routes, ups))
    checks_running(a, b)
    b.set_health(500)
    wait_state(g, b, "unhealthy", 2 * LEAVE)
    routes.append(gw.route("more", {"path_prefix": "/more"}, "svc"))
    status, body = g.reload(gw.config(routes, ups))
    assert status == 200, body
    assert state(g, b)["state"] == "unhealthy", state(g, b)
    before = b.count()
    assert send_many(g, 6, "/more/x") == ["a"] * 6
    assert b.count() == before


# ----- outlier ejection ---------------------------------------------------------------------------
OUT = {"consecutive_failures": 3, "eject_for": "1s"}


def big_gaps(times, at_least=0.5):
    """(start, length) of the gaps of at least `at_least` seconds between arrival times."""
    return [(x, y - x) for x, y in zip(times, times[1:]) if y - x >= at_least]


def test_outlier_is_ejected_then_returns_and_the_next_ejection_is_longer(gateway, mups):
    a, b = mups("a"), mups("b")
    b.set_mode("status", 503)
    g = start(gateway, {"svc": gw.up(a, b, outlier=OUT)})
    stream = Stream(g, "/svc/o", gap=0.02)
    seen_ejected = []
    try:
        deadline = time.monotonic() + 8 * SLACK
        while time.monotonic() < deadline:
            ep = state(g, b)
            if ep["state"] == "ejected":
                seen_ejected.append(ep)
            assert state(g, a)["state"] == "healthy"
            if len(big_gaps([x.time for x in b.client()])) >= 2:
                break
            time.sleep(0.05)
    finally:
        results = stream.stop()
    assert not stream.errors, stream.errors[:5]
    times = [x.time for x in b.client()]
    gaps = big_gaps(times)
    assert len(gaps) >= 2, (times, gaps)
    # the first ejection came after 3 failures, and lasted eject_for
    first_start = times.index(gaps[0][0])
    assert first_start + 1 == 3, times
    assert 1.0 - 0.05 <= gaps[0][1] <= 1.0 + 0.25 * SLACK, gaps
    # the second one in a row lasts 2 x eject_for, after at most 3 more failures
    second_start = times.index(gaps[1][0])
    assert 1 <= second_start - first_start <= 3, (times, gaps)
    assert 2.0 - 0.05 <= gaps[1][1] <= 2.0 + 0.25 * SLACK, gaps
    # during an ejection the admin API showed it, with a reason
    assert seen_ejected, "never saw state ejected"
    ep = seen_ejected[0]
    assert ep["healthy"] is False and "3 consecutive failures" in ep["reason"], ep
    # clients: a's requests all succeeded, b's got b's own 503 (no retry policy here)
    assert {(r[1], r[2]) for r in results} <= {(200, "a"), (503, "b")}, results[:10]


def test_a_success_ends_the_run_of_failures(gateway, mups):
    a, b = mups("a"), mups("b")
    g = start(gateway, {"svc": gw.up(a, b, outlier=OUT)})
    pattern = [503, 503, 200] * 4 + [503, 503, 503]
    with Client(g) as c:
        for i in range(100):
            if b.count() == len(pattern):
                break
            code = pattern[b.count()]
            if code == 200:
                b.set_mode("ok")
            else:
                b.set_mode("status", code)
            c.get(f"/svc/p{i}")
            if b.count() < len(pattern):   # never three failures in a row so far
                assert state(g, b)["state"] == "healthy", (b.count(), state(g, b))
        assert b.count() == len(pattern)
        wait_state(g, b, "ejected", 0.5 * SLACK)
        before = b.count()
        b.set_mode("ok")
        names = [c.get(f"/svc/q{k}").header("X-Upstream-Name") for k in range(10)]
        assert names == ["a"] * 10 and b.count() == before


def test_single_endpoint_is_never_ejected(gateway, mups):
    b = mups("b")
    b.set_mode("status", 503)
    g = start(gateway, {"svc": gw.up(b, outlier=OUT)})
    with Client(g) as c:
        for i in range(12):
            r = c.get(f"/svc/x{i}")
            assert r.status == 503 and r.body.startswith(b"b status 503"), (i, r)
    assert b.count() == 12
    assert state(g, b)["state"] == "healthy"


def test_at_most_half_the_endpoints_are_ejected(gateway, mups):
    a, b, c3 = mups("a"), mups("b"), mups("c")
    b.set_mode("status", 503)
    c3.set_mode("status", 503)
    g = start(gateway, {"svc": gw.up(a, b, c3, outlier=dict(OUT, eject_for="5s"))})
    with Client(g) as c:
        for i in range(30):
            c.get(f"/svc/h{i}")
            states = [state(g, u)["state"] for u in (a, b, c3)]
            assert states.count("ejected") <= 1, (i, states)
        states = [state(g, u)["state"] for u in (a, b, c3)]
        assert states.count("ejected") == 1, states
        # the failing endpoint that is not ejected still takes its share
        other = b if states[2] == "ejected" else c3
        before = other.count()
        for i in range(10):
            c.get(f"/svc/k{i}")
        assert other.count() > before


# ----- config -------------------------------------------------------------------------------------
EPS = ["127.0.0.1:9001", "127.0.0.1:9002"]


@pytest.mark.parametrize("extra", [
    {"health_check": {}},
    {"health_check": HC},
    {"health_check": {"path": "/healthz", "interval": "5s", "timeout": "1s", "healthy": 2,
                      "unhealthy": 3, "statuses": [200, 204], "host": "users.internal"}},
    {"health_check": {"interval": "10ms", "timeout": "10ms", "healthy": 100, "unhealthy": 1}},
    {"outlier": {}},
    {"outlier": {"consecutive_failures": 1000, "eject_for": "30s"}},
    {"health_check": HC, "outlier": OUT,
     "circuit_breaker": {"failure_rate": 0.5, "window": "10s", "min_requests": 20,
                         "open_for": "30s", "half_open_requests": 3},
     "retry": {"attempts": 2, "on": ["connect_failure", "reset", "timeout", 502, 503, 504],
               "backoff": {"base": "25ms", "max": "250ms"}, "budget": 0.2,
               "retry_non_idempotent": False, "replay_buffer": "64KiB"}},
], ids=["hc-defaults", "hc-test", "hc-doc", "hc-edges", "outlier-defaults", "outlier-edges",
        "all-four"])
def test_validate_accepts(portico_bin, tmp_path, extra):
    run, text, _ = gw.validate_upstream(portico_bin, tmp_path, dict({"endpoints": EPS}, **extra))
    assert run.returncode == 0, run.stdout + run.stderr + "\n" + text
    assert run.stdout.strip() == "ok"


@pytest.mark.parametrize("key,pol,word", [
    ("health_check", {"interval": "1s", "timeout": "2s"}, "timeout"),
    ("health_check", {"interval": "5ms", "timeout": "1ms"}, "interval"),
    ("health_check", {"healthy": 0}, "healthy"),
    ("health_check", {"healthy": 101}, "healthy"),
    ("health_check", {"unhealthy": 0}, "unhealthy"),
    ("health_check", {"unhealthy": 101}, "unhealthy"),
    ("health_check", {"statuses": [99]}, "statuses"),
    ("health_check", {"statuses": [600]}, "statuses"),
    ("health_check", {"interval": "often"}, ("interval", '"often"')),   # malformed: may name

    ("health_check", {"pathh": "/healthz"}, "pathh"),
    ("outlier", {"consecutive_failures": 0}, "consecutive_failures"),
    ("outlier", {"consecutive_failures": 1001}, "consecutive_failures"),
    ("outlier", {"eject_for": "long"}, ("eject_for", '"long"')),       # the value instead
    ("outlier", {"eject_four": "1s"}, "eject_four"),
], ids=["timeout-over-interval", "interval-under-10ms", "healthy-0", "healthy-101",
        "unhealthy-0", "unhealthy-101", "status-99", "status-600", "interval-text",
        "hc-unknown-key", "failures-0", "failures-1001", "eject_for-text", "outlier-unknown-key"])
def test_validate_rejects(portico_bin, tmp_path, key, pol, word):
    run, text, path = gw.validate_upstream(portico_bin, tmp_path, {"endpoints": EPS, key: pol})
    assert run.returncode == 1, run.stdout + run.stderr + "\n" + text
    lines = [ln for ln in (run.stdout + run.stderr).splitlines() if ln.startswith(path + ":")]
    words = word if isinstance(word, tuple) else (word,)
    assert any(w in ln for ln in lines for w in words), (word, run.stdout + run.stderr)
