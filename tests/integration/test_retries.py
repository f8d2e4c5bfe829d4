"""Retries (docs/resilience.md, `retry`): attempts count every try; each `on` condition
(connect_failure, reset, timeout, listed statuses) is retried and nothing else is; a retry goes
to another endpoint when there is one; backoff is exponential with full jitter (gaps measured at
the upstream); idempotent methods only unless retry_non_idempotent; a body over replay_buffer is
never sent twice, one under it is resent byte for byte; the budget bounds what a failing upstream
receives; portico_upstream_retries_total{upstream,result}; the gateway keeps serving afterwards.

Every upstream is a support.mode_upstream.ModeUpstream, so the counts are what the upstream
actually received and the gaps are measured between its arrivals."""
import hashlib
import statistics
import time

import pytest

from support import gateway as gw
from support.mode_upstream import Client, ModeUpstreams, endpoint_info, metric, once
from support.util import SLACK, assert_error, free_port

FAST = {"base": "5ms", "max": "10ms"}     # backoff that keeps the tests quick
RETRIES = "portico_upstream_retries_total"


@pytest.fixture
def mups():
    with ModeUpstreams() as make:
        yield make


def start(gateway, upstreams, workers=1, route_extra=None):
    """One route per upstream: /NAME/... goes to upstream NAME (path kept)."""
    routes = [gw.route(n, {"path_prefix": f"/{n}"}, n, **(route_extra or {}).get(n, {}))
              for n in upstreams]
    return gateway(gw.config(routes, upstreams, workers=workers))


def retry(**kw):
    """A retry policy with quick backoff and the largest budget (retries <= requests + 10), so
    that only the budget tests ever see it spent."""
    kw.setdefault("backoff", FAST)
    kw.setdefault("budget", 1.0)
    return kw


def retries(g, upstream, result="sent"):
    return metric(g, RETRIES, upstream=upstream, result=result)


def still_serving(g, client, ups, path):
    """After a failure: every upstream answers again, and the same client connection and a fresh
    one both get 200 from an upstream."""
    for u in ups:
        u.set_mode("ok")
    assert not client.closed(), "the gateway closed the client connection after the failure"
    r = client.get(path + "/after-same")
    assert r.status == 200, r
    assert r.json()["path"] == path + "/after-same", r
    r = once(g, "GET", path + "/after-fresh")
    assert r.status == 200, r
    assert r.json()["path"] == path + "/after-fresh", r


# ----- attempts -----------------------------------------------------------------------------------
@pytest.mark.parametrize("attempts", [1, 2, 3, 5])
def test_attempts_counts_every_try_and_the_last_answer_reaches_the_client(gateway, mups,
                                                                          attempts):
    u = mups("u")
    u.set_mode("status", 503)
    g = start(gateway, {"svc": gw.up(u, retry=retry(attempts=attempts, on=[503]))})
    with Client(g) as c:
        r = c.get("/svc/a")
        got = u.client()
        assert [a.path for a in got] == ["/svc/a"] * attempts, got
        # The client gets the upstream's 503 as it was sent: the last try's, body included.
        assert r.status == 503, r
        assert r.body == f"u status 503 seq {got[-1].seq}\n".encode(), r
        assert r.header("X-Upstream-Name") == "u" and r.header("X-Seq") == str(got[-1].seq), r
        assert retries(g, "svc") == attempts - 1
        assert retries(g, "svc", "budget_exhausted") == 0
        still_serving(g, c, [u], "/svc")
    assert u.count() == attempts + 2


@pytest.mark.parametrize("status,on", [(502, [502]), (503, [503]), (504, [504]), (429, [429]),
                                       (502, [502, 503, 504]), (504, [502, 503, 504])],
                         ids=["502", "503", "504", "429", "502-of-three", "504-of-three"])
def test_listed_status_is_retried(gateway, mups, status, on):
    u = mups("u")
    u.set_mode("status", status)
    g = start(gateway, {"svc": gw.up(u, retry=retry(attempts=3, on=on))})
    with Client(g) as c:
        r = c.get("/svc/s")
        assert u.count() == 3, u.client()
        assert r.status == status and r.body.startswith(f"u status {status}".encode()), r
        assert retries(g, "svc") == 2
        still_serving(g, c, [u], "/svc")


@pytest.mark.parametrize("status,on", [(500, [503]), (502, [503]), (503, [502, 504]),
                                       (429, [502, 503, 504]), (404, [502, 503, 504]),
                                       (503, ["reset", "timeout", "connect_failure"])],
                         ids=["500-on-503", "502-on-503", "503-on-502-504", "429-not-listed",
                              "404", "503-no-statuses"])
def test_status_not_on_the_list_is_not_retried(gateway, mups, status, on):
    u = mups("u")
    u.set_mode("status", status)
    g = start(gateway, {"svc": gw.up(u, retry=retry(attempts=3, on=on))})
    with Client(g) as c:
        r = c.get("/svc/n")
        assert u.count() == 1, u.client()
        assert r.status == status, r
        assert r.body == f"u status {status} seq 1\n".encode(), r
        assert retries(g, "svc") == 0
        still_serving(g, c, [u], "/svc")


def test_default_on_list_retries_all_six(gateway, mups):
    """`on` defaults to all six: 502, 503, 504, reset, timeout, connect_failure; 500 is not."""
    u = mups("u")
    g = start(gateway, {"svc": gw.up(u, retry={"attempts": 2, "backoff": FAST},
                                     timeouts={"connect": "1s", "request": "300ms", "idle": "5s"})})
    expect = [(("status", 502), 2), (("status", 503), 2), (("status", 504), 2),
              (("status", 500), 1), (("status", 429), 1), (("reset",), 2), (("hang",), 2)]
    u.keepalive = False   # every try on a fresh connection: no stale-connection resend
    for mode, n in expect:
        u.set_mode(*mode)
        before = u.count()
        once(g, "GET", f"/svc/{mode[0]}")
        assert u.count() - before == n, (mode, u.client_since(before))


# ----- reset, close, timeout, connect failure -----------------------------------------------------
@pytest.mark.parametrize("mode", ["reset", "close"])
def test_broken_connection_is_retried_as_reset(gateway, mups, mode):
    u = mups("u")
    u.keepalive = False   # fresh connections only: the gateway's own stale-connection resend
    u.set_mode(mode)      # (of a reused idle connection) can never add a try
    g = start(gateway, {"svc": gw.up(u, retry=retry(attempts=3, on=["reset"]))})
    with Client(g) as c:
        r = c.get("/svc/r")
        assert [a.path for a in u.client()] == ["/svc/r"] * 3, u.client()
        assert_error(r, 502, "bad_upstream")
        assert retries(g, "svc") == 2
        still_serving(g, c, [u], "/svc")


@pytest.mark.parametrize("mode", ["reset", "close"])
def test_broken_connection_not_retried_when_reset_is_not_listed(gateway, mups, mode):
    u = mups("u")
    u.keepalive = False
    u.set_mode(mode)
    g = start(gateway, {"svc": gw.up(u, retry=retry(attempts=3, on=[502, 503, 504, "timeout"]))})
    with Client(g) as c:
        r = c.get("/svc/r")
        assert u.count() == 1, u.client()
        assert_error(r, 502, "bad_upstream")
        assert retries(g, "svc") == 0
        still_serving(g, c, [u], "/svc")


def test_timeout_is_retried_and_timeouts_request_is_per_try(gateway, mups):
    u = mups("u")
    u.set_mode("hang")
    g = start(gateway, {"svc": gw.up(u, retry=retry(attempts=3, on=["timeout"]),
                                     timeouts={"connect": "1s", "request": "300ms",
                                               "idle": "5s"})})
    with Client(g) as c:
        t0 = time.monotonic()
        r = c.get("/svc/t")
        elapsed = time.monotonic() - t0
        got = u.client()
        assert [a.path for a in got] == ["/svc/t"] * 3, got
        assert_error(r, 504, "upstream_timeout")
        # Each try waited its own 300 ms before the next one was sent.
        for prev, nxt in zip(got, got[1:]):
            assert nxt.time - prev.time >= 0.3 - 0.05, got
        assert 0.9 - 0.05 <= elapsed <= 0.9 + 0.02 + 0.5 * SLACK, elapsed
        assert retries(g, "svc") == 2
        still_serving(g, c, [u], "/svc")


def test_timeout_not_retried_when_not_listed(gateway, mups):
    u = mups("u")
    u.set_mode("hang")
    g = start(gateway, {"svc": gw.up(u, retry=retry(attempts=3, on=[503, "reset"]),
                                     timeouts={"connect": "1s", "request": "300ms",
                                               "idle": "5s"})})
    with Client(g) as c:
        t0 = time.monotonic()
        r = c.get("/svc/t")
        elapsed = time.monotonic() - t0
        assert_error(r, 504, "upstream_timeout")
        assert u.count() == 1, u.client()
        assert 0.3 - 0.05 <= elapsed <= 0.3 + 0.5 * SLACK, elapsed
        still_serving(g, c, [u], "/svc")


def test_route_timeout_caps_all_tries_together(gateway, mups):
    u = mups("u")
    u.set_mode("hang")
    g = start(gateway, {"svc": gw.up(u, retry=retry(attempts=5, on=["timeout"]),
                                     timeouts={"connect": "1s", "request": "300ms",
                                               "idle": "5s"})},
              route_extra={"svc": {"timeout": "500ms"}})
    with Client(g) as c:
        t0 = time.monotonic()
        r = c.get("/svc/cap")
        elapsed = time.monotonic() - t0
        assert_error(r, 504, "upstream_timeout")
        assert 0.5 - 0.05 <= elapsed <= 0.5 + 0.3 * SLACK, elapsed
        assert 1 <= u.count() <= 2, u.client()
        still_serving(g, c, [u], "/svc")


def test_connect_failure_is_retried_on_the_good_endpoint(gateway, mups):
    good = mups("good")
    dead = f"127.0.0.1:{free_port()}"   # nothing listens there: connects are refused
    g = start(gateway, {"svc": gw.up(dead, good, retry=retry(attempts=2, on=["connect_failure"]),
                                     timeouts={"connect": "1s", "request": "5s", "idle": "5s"})})
    with Client(g) as c:
        for i in range(10):
            r = c.get(f"/svc/c{i}")
            assert r.status == 200 and r.header("X-Upstream-Name") == "good", (i, r)
        assert [a.path for a in good.client()] == [f"/svc/c{i}" for i in range(10)]
        # Round robin sends first tries to the dead endpoint too: each of those was retried.
        dead_failures = endpoint_info(g, "svc", dead)["failures"]
        assert 1 <= dead_failures <= 10, endpoint_info(g, "svc", dead)
        assert retries(g, "svc") == dead_failures
        still_serving(g, c, [good], "/svc")


def test_connect_failure_not_retried_when_not_listed(gateway, mups):
    good = mups("good")
    dead = f"127.0.0.1:{free_port()}"
    g = start(gateway, {"svc": gw.up(dead, good, retry=retry(attempts=2, on=[502, 503, "reset"]),
                                     timeouts={"connect": "1s", "request": "5s", "idle": "5s"})})
    statuses = []
    for i in range(10):
        r = once(g, "GET", f"/svc/c{i}")
        statuses.append(r.status)
        if r.status == 502:
            assert_error(r, 502, "bad_upstream")
    assert statuses.count(502) >= 3 and statuses.count(200) >= 3, statuses
    assert good.count() == statuses.count(200), (statuses, good.client())
    assert retries(g, "svc") == 0


# ----- where a retry goes -------------------------------------------------------------------------
def test_retry_goes_to_the_other_endpoint(gateway, mups):
    """Two endpoints that both fail: every request reaches each of them exactly once."""
    a, b = mups("a"), mups("b")
    a.set_mode("status", 503)
    b.set_mode("status", 503)
    g = start(gateway, {"svc": gw.up(a, b, retry=retry(attempts=2, on=[503]))})
    with Client(g) as c:
        for i in range(10):
            r = c.get(f"/svc/o{i}")
            assert r.status == 503, r
        paths = [f"/svc/o{i}" for i in range(10)]
        assert [x.path for x in a.client()] == paths, a.client()
        assert [x.path for x in b.client()] == paths, b.client()
        assert retries(g, "svc") == 10
        still_serving(g, c, [a, b], "/svc")


def test_failed_endpoint_is_skipped_by_the_retry(gateway, mups):
    """One endpoint fails, the other works: every client request succeeds, and each request the
    sick one saw was answered by the healthy one."""
    sick, well = mups("sick"), mups("well")
    sick.set_mode("status", 503)
    g = start(gateway, {"svc": gw.up(sick, well, retry=retry(attempts=2, on=[503]))})
    with Client(g) as c:
        for i in range(12):
            r = c.get(f"/svc/w{i}")
            assert r.status == 200 and r.header("X-Upstream-Name") == "well", (i, r)
    assert [x.path for x in well.client()] == [f"/svc/w{i}" for i in range(12)]
    assert 1 <= sick.count() <= 12, sick.client()
    assert len({x.path for x in sick.client()}) == sick.count(), sick.client()  # once each at most
    assert retries(g, "svc") == sick.count()


# ----- backoff ------------------------------------------------------------------------------------
def test_backoff_is_exponential_with_full_jitter(gateway, mups):
    """base 100ms, max 400ms, attempts 5: the gap before retry n is uniform in
    [0, min(400ms, 100ms * 2^(n-1))] = 100, 200, 400, 400 ms (plus processing)."""
    u = mups("u")
    u.set_mode("status", 503)
    g = start(gateway, {"svc": gw.up(u, retry={"attempts": 5, "on": [503], "budget": 1.0,
                                               "backoff": {"base": "100ms", "max": "400ms"}})})
    bounds = [0.1, 0.2, 0.4, 0.4]
    tolerance = 0.06 * SLACK
    n = 10
    gaps = []   # per request: its 4 gaps
    with Client(g) as c:
        for i in range(n):
            # Four requests that succeed for each one that is retried four times keep the budget
            # (retries <= requests + 10) from ever refusing a retry here.
            u.set_mode("ok")
            for k in range(4):
                assert c.get(f"/svc/pad{i}-{k}").status == 200
            u.set_mode("status", 503)
            before = u.count()
            r = c.get(f"/svc/b{i}")
            assert r.status == 503, r
            got = u.client_since(before)
            assert [x.path for x in got] == [f"/svc/b{i}"] * 5, got
            gaps.append([y.time - x.time for x, y in zip(got, got[1:])])
    for row in gaps:
        for k, (gap, bound) in enumerate(zip(row, bounds)):
            assert 0 <= gap <= bound + tolerance, (k + 1, gap, bound, gaps)
    # Jittered: not all near 0, not all near the bound; on average about half of the bound.
    shares = [min(gap / bound, 1.0) for row in gaps for gap, bound in zip(row, bounds)]
    mean = statistics.mean(shares)
    assert 0.2 <= mean <= (0.8 if SLACK == 1 else 0.9), (mean, gaps)
    assert any(s < 0.3 for s in shares) and any(s > 0.7 for s in shares), (shares, gaps)
    firsts = [row[0] for row in gaps]
    assert max(firsts) - min(firsts) >= 0.03, firsts   # not a constant delay
    # Exponential: the third wait is on average well above the first.
    thirds = [row[2] for row in gaps]
    assert statistics.mean(thirds) > 1.5 * statistics.mean(firsts), (firsts, thirds)
    assert retries(g, "svc") == 4 * n


# ----- methods ------------------------------------------------------------------------------------
@pytest.mark.parametrize("method,non_idempotent,tries", [
    ("GET", False, 3), ("HEAD", False, 3), ("OPTIONS", False, 3), ("PUT", False, 3),
    ("DELETE", False, 3), ("POST", False, 1), ("PATCH", False, 1),
    ("POST", True, 3), ("PATCH", True, 3),
], ids=["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "POST", "PATCH", "POST-allowed",
        "PATCH-allowed"])
def test_only_idempotent_methods_are_retried_by_default(gateway, mups, method, non_idempotent,
                                                        tries):
    u = mups("u")
    u.set_mode("status", 503)
    pol = retry(attempts=3, on=[503])
    if non_idempotent:
        pol["retry_non_idempotent"] = True
    g = start(gateway, {"svc": gw.up(u, retry=pol)})
    body = b"payload-" * 16 if method in ("POST", "PUT", "PATCH") else b""
    with Client(g) as c:
        r = c.request(method, "/svc/m", body=body)
        got = u.client()
        assert [(a.method, a.path) for a in got] == [(method, "/svc/m")] * tries, got
        sha = hashlib.sha256(body).hexdigest()
        assert all(a.body_sha256 == sha and a.body_len == len(body) for a in got), got
        assert r.status == 503, r
        if method != "HEAD":
            assert r.body == f"u status 503 seq {got[-1].seq}\n".encode(), r
        assert retries(g, "svc") == tries - 1
        still_serving(g, c, [u], "/svc")


# ----- request bodies and the replay buffer -------------------------------------------------------
@pytest.mark.parametrize("mode", [("status", 503), ("reset",)], ids=["503", "reset"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_over_replay_buffer_is_never_resent(gateway, mups, mode, chunked):
    u = mups("u")
    u.keepalive = False
    u.set_mode(*mode)
    g = start(gateway, {"svc": gw.up(u, retry=retry(attempts=3, on=[503, "reset"],
                                                    replay_buffer="1KiB"))})
    body = bytes((i * 7 + 3) & 0xFF for i in range(4096))
    with Client(g) as c:
        r = c.request("PUT", "/svc/big", body=body, chunked=chunked)
        got = u.client()
        assert len(got) == 1, got
        assert got[0].body_len == 4096 and got[0].complete, got
        assert got[0].body_sha256 == hashlib.sha256(body).hexdigest()
        if mode[0] == "status":
            assert r.status == 503 and r.body == b"u status 503 seq 1\n", r
        else:
            assert_error(r, 502, "bad_upstream")
        assert retries(g, "svc") == 0
        still_serving(g, c, [u], "/svc")


@pytest.mark.parametrize("size", [1, 512, 1024])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_within_replay_buffer_is_resent_byte_identical(gateway, mups, size, chunked):
    u = mups("u")
    u.set_mode("status", 503)
    g = start(gateway, {"svc": gw.up(u, retry=retry(attempts=3, on=[503],
                                                    replay_buffer="1KiB"))})
    body = bytes((i * 13 + 5) & 0xFF for i in range(size))
    sha = hashlib.sha256(body).hexdigest()
    with Client(g) as c:
        r = c.request("PUT", "/svc/small", body=body, chunked=chunked)
        got = u.client()
        assert len(got) == 3, got
        assert all(a.complete and a.body_len == size and a.body_sha256 == sha for a in got), \
            [(a.body_len, a.body_sha256) for a in got]
        assert r.status == 503 and r.body == f"u status 503 seq {got[-1].seq}\n".encode(), r
        assert retries(g, "svc") == 2
        still_serving(g, c, [u], "/svc")


def test_body_within_replay_buffer_reaches_the_working_endpoint_whole(gateway, mups):
    sick, well = mups("sick"), mups("well")
    sick.set_mode("reset")
    sick.keepalive = False
    g = start(gateway, {"svc": gw.up(sick, well, retry=retry(attempts=2, on=["reset"],
                                                             replay_buffer="64KiB"))})
    body = bytes((i * 31 + 1) & 0xFF for i in range(60000))
    sha = hashlib.sha256(body).hexdigest()
    with Client(g) as c:
        for i in range(4):
            r = c.request("PUT", f"/svc/p{i}", body=body)
            assert r.status == 200, r
            assert r.json()["body_sha256"] == sha and r.json()["body_len"] == 60000, r
    assert well.count() == 4
    assert all(a.body_sha256 == sha for a in sick.client() + well.client())


# ----- budget -------------------------------------------------------------------------------------
def test_budget_bounds_what_a_failing_upstream_receives(gateway, mups):
    u = mups("u")
    u.set_mode("status", 503)
    g = start(gateway, {"svc": gw.up(u, retry={"attempts": 5, "on": [503], "budget": 0.2,
                                               "backoff": {"base": "1ms", "max": "2ms"}})})
    n = 100
    t0 = time.monotonic()
    with Client(g) as c:
        for i in range(n):
            r = c.get(f"/svc/q{i}")
            assert r.status == 503 and r.body.startswith(b"u status 503"), (i, r)
        elapsed = time.monotonic() - t0
        assert elapsed < 9, f"{n} requests took {elapsed:.1f}s: longer than the 10 s window"
        received = u.count()
        assert n < received <= (1 + 0.2) * n + 10, received
        assert sorted({a.path for a in u.client()}) == sorted(f"/svc/q{i}" for i in range(n))
        assert retries(g, "svc") == received - n
        assert retries(g, "svc", "budget_exhausted") >= 1
        still_serving(g, c, [u], "/svc")


def test_budget_is_per_upstream(gateway, mups):
    """Spending one upstream's budget leaves another's whole."""
    a, b = mups("a"), mups("b")
    a.set_mode("status", 503)
    b.set_mode("status", 503)
    pol = {"attempts": 3, "on": [503], "budget": 0.0, "backoff": {"base": "1ms", "max": "2ms"}}
    g = start(gateway, {"ua": gw.up(a, retry=pol), "ub": gw.up(b, retry=pol)})
    with Client(g) as c:
        for i in range(30):
            assert c.get(f"/ua/{i}").status == 503
        # budget 0: at most the 10 of the floor, then every retry refused
        assert 30 < a.count() <= 30 + 10, a.count()
        assert retries(g, "ua") == a.count() - 30
        assert retries(g, "ua", "budget_exhausted") >= 1
        # ub's budget is untouched: its first request is retried in full.
        r = c.get("/ub/x")
        assert r.status == 503 and b.count() == 3, b.client()
        assert retries(g, "ub") == 2


# ----- workers ------------------------------------------------------------------------------------
def test_retries_with_two_workers(gateway, mups):
    sick, well = mups("sick"), mups("well")
    sick.set_mode("status", 503)
    g = start(gateway, {"svc": gw.up(sick, well, retry=retry(attempts=2, on=[503]))}, workers=2)
    for i in range(20):
        r = once(g, "GET", f"/svc/k{i}")
        assert r.status == 200 and r.header("X-Upstream-Name") == "well", (i, r)
    assert well.count() == 20
    assert retries(g, "svc") == sick.count()


# ----- config errors ------------------------------------------------------------------------------
EPS = ["127.0.0.1:9001", "127.0.0.1:9002"]


@pytest.mark.parametrize("pol", [
    {},
    {"attempts": 1},
    {"attempts": 10, "on": ["connect_failure", "reset", "timeout", 429, 500, 599],
     "backoff": {"base": "25ms", "max": "250ms"}, "budget": 0, "retry_non_idempotent": True,
     "replay_buffer": "64KiB"},
    {"budget": 1, "on": [502]},
], ids=["defaults", "one", "everything", "budget-1"])
def test_validate_accepts_retry(portico_bin, tmp_path, pol):
    run, text, _ = gw.validate_upstream(portico_bin, tmp_path, {"endpoints": EPS, "retry": pol})
    assert run.returncode == 0, run.stdout + run.stderr + "\n" + text
    assert run.stdout.strip() == "ok"


@pytest.mark.parametrize("pol,word", [
    ({"attempts": 0}, "attempts"),
    ({"attempts": 11}, "attempts"),
    ({"attempts": "many"}, "attempts"),
    ({"budget": 2}, "budget"),
    ({"budget": -0.1}, "budget"),
    ({"on": [418]}, ("418", " on")),
    ({"on": [200]}, ("200", " on")),
    ({"on": [600]}, ("600", " on")),
    ({"on": ["sometimes"]}, ("sometimes", " on")),
    ({"attempt": 2}, "attempt"),
    ({"backoff": {"base": "soon"}}, ("base", '"soon"')),   # a malformed duration or size: the

    ({"backoff": {"min": "1ms"}}, "min"),
    ({"replay_buffer": "lots"}, ("replay_buffer", '"lots"')),   # message may name the value
    ({"retry_non_idempotent": "maybe"}, "retry_non_idempotent"),
], ids=["attempts-0", "attempts-11", "attempts-text", "budget-2", "budget-negative", "on-418",
        "on-200", "on-600", "on-word", "unknown-key", "backoff-base", "backoff-unknown",
        "replay-buffer", "non-idempotent-text"])
def test_validate_rejects_bad_retry(portico_bin, tmp_path, pol, word):
    run, text, path = gw.validate_upstream(portico_bin, tmp_path, {"endpoints": EPS, "retry": pol})
    assert run.returncode == 1, run.stdout + run.stderr + "\n" + text
    lines = [ln for ln in (run.stdout + run.stderr).splitlines() if ln.startswith(path + ":")]
    assert lines, run.stdout + run.stderr
    words = word if isinstance(word, tuple) else (word,)
    assert any(w in ln for ln in lines for w in words), (word, lines)


# ----- the client leaves while a retry waits out its backoff ---------------------------------------
SLOW_BACKOFF = {"base": "3s", "max": "3s"}   # the retry's wait: uniform in [0, 3 s]


@pytest.mark.parametrize("how", ["rst", "h2-rst-stream"])
def test_client_gone_during_backoff_cancels_the_retry(gateway, mups, how):
    """The first try gets a 503 and the gateway waits out the backoff before the retry; the
    client resets (TCP RST over HTTP/1.1, RST_STREAM over HTTP/2) meanwhile. No retry reaches the
    upstream after the reset, the session's descriptors are freed, and the same worker serves the
    next request: a fresh connection, and over HTTP/2 the next stream on the same connection."""
    from support import aborts
    u = mups("u")
    u.set_mode("status", 503)
    g = gateway(gw.config([gw.route("u", {"path_prefix": "/u"}, "u")],
                          {"u": gw.up(u, retry=retry(attempts=2, backoff=SLOW_BACKOFF))},
                          listener={"http2": True}))
    base = aborts.fd_count(g.pid)
    if how == "rst":
        import socket
        sock = socket.create_connection(("127.0.0.1", g.port), timeout=5)
        sock.sendall(b"GET /u/gone HTTP/1.1\r\nHost: t\r\n\r\n")
        h2 = None
    else:
        h2 = aborts.h2_connect(g.port)
        sid = h2.request("GET", "/u/gone")
    deadline = time.monotonic() + 5 * SLACK
    while u.count() < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert u.count() == 1, "the first try never reached the upstream"
    first = u.client()[0].time
    time.sleep(0.05)
    t_abort = time.monotonic()
    if h2 is None:
        aborts.rst_close(sock)
    else:
        h2.rst(sid)
        aborts.h2_sync(h2)
    # Past the longest backoff: any retry would have been sent by now.
    time.sleep(max(0.0, first + 3.0 + 0.5 * SLACK - time.monotonic()))
    late = [a for a in u.client()[1:] if a.time >= t_abort]
    assert not late, f"a retry went upstream after the client reset: {late}"
    u.set_mode("ok")
    if h2 is not None:
        st = h2.response(h2.request("GET", "/u/next-stream"))
        assert st.status == 200, st.headers
        h2.close()
    else:
        aborts.wait_fds(g, base)
        assert aborts.fd_count(g.pid) <= base, "the aborted exchange kept descriptors"
    r = once(g, "GET", "/u/after")
    assert r.status == 200 and r.json()["path"] == "/u/after", r
    g.assert_healthy()
