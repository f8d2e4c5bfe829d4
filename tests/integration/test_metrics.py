"""GET /metrics (docs/observability.md, SPEC §5 and §8): the Prometheus exposition is
clean for promtool, carries every SPEC metric with HELP, TYPE and exactly its labels, and its
counters equal what was sent: by route (and "(none)"), method and status, across reloads and
workers; auth failures by reason, 429s by limit key, upstream outcomes, open connections,
reloads, process_* figures; latency quantiles from the histograms; the token rules.

Every count is exact. A scrape is polled only until the expected figure shows (the counters may
be bumped just after the response leaves); the assertion is on the last scrape.
"""
import os
import socket
import struct
import subprocess
import threading
import time

import pytest

from support import gateway as gw
from support import metrics as mx
from support import rawhttp
from support import util
from support.rawhttp import RawConn, request_bytes
from support.util import SLACK, wait_until

ALICE_KEY = "k-metrics-alice-0123456789"
JWT_SECRET = "portico-metrics-secret-0123456789-abcdef"

SPEC_FAMILIES = {
    "portico_requests_total": ("counter", {"route", "method", "status"}),
    "portico_request_duration_seconds": ("histogram", {"route"}),
    "portico_upstream_requests_total": ("counter", {"upstream", "endpoint", "outcome"}),
    "portico_upstream_duration_seconds": ("histogram", {"upstream"}),
    "portico_auth_failures_total": ("counter", {"route", "provider", "reason"}),
    "portico_rate_limited_total": ("counter", {"route", "key"}),
    "portico_cache_total": ("counter", {"route", "result"}),
    "portico_circuit_state": ("gauge", {"upstream"}),
    "portico_connections_active": ("gauge", {"listener"}),
    "portico_config_reloads_total": ("counter", {"result"}),
    "portico_tracing_spans_total": ("counter", {"result"}),
    "process_cpu_seconds_total": ("counter", set()),
    "process_resident_memory_bytes": ("gauge", set()),
    "process_virtual_memory_bytes": ("gauge", set()),
    "process_open_fds": ("gauge", set()),
    "process_max_fds": ("gauge", set()),
    "process_start_time_seconds": ("gauge", set()),
}
# "no samples until the cache exists"; spans only once tracing exports something.
MAY_BE_EMPTY = {"portico_cache_total", "portico_tracing_spans_total"}


# ----- helpers ----------------------------------------------------------------------------------
def api_route():
    """/api/... reaches the upstream as /... (its /status/N, /slow/MS paths)."""
    return gw.route("api", {"path_prefix": "/api"}, "u", rewrite={"strip_prefix": True})


def get(g, path, headers=(), method="GET", body=b""):
    return rawhttp.exchange(g.port, request_bytes(method, path, headers=list(headers), body=body),
                            method=method)


def send(g, n, path, status, **kw):
    for _ in range(n):
        r = get(g, path, **kw)
        assert r.status == status, (path, r)


def by_series(m):
    """portico_requests_total as {(route, method, status): count}."""
    out = {}
    for lb, v in m.matching("portico_requests_total"):
        assert set(lb) == {"route", "method", "status"}, lb
        if v:  # a series at 0 says nothing was counted: the same as no series
            out[(lb["route"], lb["method"], lb["status"])] = int(v)
    return out


def nonzero(m, name, *labels):
    """{(label values...): value} of the samples of `name` that are not 0."""
    return {tuple(lb[k] for k in labels): v for lb, v in m.matching(name) if v}


def scrape_until(g, cond, timeout=5.0):
    """Scrapes until cond(exposition) holds or the time is up; returns the last exposition."""
    deadline = time.monotonic() + timeout * SLACK
    while True:
        m = mx.scrape_parsed(g)
        if cond(m) or time.monotonic() > deadline:
            return m
        time.sleep(0.05)


def scrape_total(g, n):
    """The exposition once portico_requests_total sums to n (or the last one tried)."""
    return scrape_until(g, lambda m: m.total("portico_requests_total") == n)


def curl_h2(url):
    p = subprocess.run(["curl", "-sS", "--max-time", "10", "--http2-prior-knowledge", "-o",
                        "/dev/null", "-w", "%{http_code} %{http_version}", url],
                       capture_output=True, text=True, timeout=20)
    return p.stdout.strip()


def api_gateway(gateway, upstream, workers=1, extra_routes=(), **top):
    routes = [api_route(), *extra_routes]
    return gateway(gw.config(routes, {"u": gw.up(upstream)}, workers=workers, **top))


# ----- one gateway, mixed traffic ---------------------------------------------------------------
class Mixed:
    pass


@pytest.fixture(scope="module")
def mixed(module_gateway, module_upstreams):
    """A gateway (HTTP/2 on) after 200s, upstream 404s, no-route 404s, 401s (missing / invalid),
    429s (by ip and by header), 502s from a dead endpoint and an HTTP/2 request."""
    e = Mixed()
    e.up = module_upstreams("u")
    e.dead = f"127.0.0.1:{util.free_port()}"  # nothing listens there
    r = gw.route
    routes = [
        api_route(),
        r("keyed", {"path_prefix": "/keyed"}, "u", auth=["keys"]),
        r("both", {"path_prefix": "/both"}, "u", auth=["keys", "tok"]),
        r("limited", {"path_prefix": "/limited"}, "u",
          rate_limit=[{"key": "ip", "limit": 2, "window": "1h"}]),
        r("tenant", {"path_prefix": "/tenant"}, "u",
          rate_limit=[{"key": "header:X-Tenant", "limit": 1, "window": "1h"}]),
        r("dead", {"path_prefix": "/dead"}, "dead"),
    ]
    providers = {"keys": {"type": "api_key", "from": ["header:X-API-Key"]},
                 "tok": {"type": "jwt", "algorithms": ["HS256"], "secret": JWT_SECRET}}
    cfg = gw.config(routes, {"u": gw.up(e.up), "dead": gw.up(e.dead)},
                    listener={"http2": True}, auth_providers=providers,
                    consumers=[{"name": "alice", "api_keys": [ALICE_KEY]}])
    e.g = module_gateway(cfg)
    g = e.g
    for i in range(10):
        assert get(g, f"/api/{i}").status == 200
    send(g, 3, "/api/status/404", 404)
    send(g, 2, "/api/post", 200, method="POST", body=b"hello")
    assert curl_h2(g.url("/api/h2")) == "200 2"
    send(g, 3, "/nowhere", 404)
    send(g, 3, "/keyed/x", 401)
    send(g, 2, "/keyed/x", 401, headers=[("X-API-Key", "k-wrong-0123456789")])
    send(g, 2, "/keyed/x", 200, headers=[("X-API-Key", ALICE_KEY)])
    send(g, 1, "/both/x", 401)
    send(g, 1, "/both/x", 401, headers=[("X-API-Key", "k-wrong-0123456789")])
    send(g, 2, "/limited/x", 200)
    send(g, 3, "/limited/x", 429)
    send(g, 1, "/tenant/x", 200, headers=[("X-Tenant", "acme")])
    send(g, 2, "/tenant/x", 429, headers=[("X-Tenant", "acme")])
    send(g, 2, "/dead/x", 502)
    e.expected = {
        ("api", "GET", "200"): 11, ("api", "GET", "404"): 3, ("api", "POST", "200"): 2,
        ("(none)", "GET", "404"): 3,
        ("keyed", "GET", "401"): 5, ("keyed", "GET", "200"): 2, ("both", "GET", "401"): 2,
        ("limited", "GET", "200"): 2, ("limited", "GET", "429"): 3,
        ("tenant", "GET", "200"): 1, ("tenant", "GET", "429"): 2,
        ("dead", "GET", "502"): 2,
    }
    scrape_total(g, sum(e.expected.values()))
    status, e.ctype, e.text = mx.scrape(g)
    assert status == 200, e.text
    e.m = mx.parse(e.text)
    return e


def test_promtool_check_metrics_is_clean(mixed):
    if not mx.promtool():
        pytest.skip("promtool is not installed (Debian package prometheus)")
    rc, out = mx.promtool_check(mixed.text)
    assert rc == 0 and out.strip() == "", f"promtool exit {rc}:\n{out}"


def test_content_type_is_prometheus_text_0_0_4(mixed):
    assert mixed.ctype.startswith("text/plain; version=0.0.4"), mixed.ctype


def test_every_spec_metric_has_help_type_and_exactly_its_labels(mixed):
    m = mixed.m
    for fam, (typ, labels) in SPEC_FAMILIES.items():
        assert m.types.get(fam) == typ, (fam, m.types.get(fam))
        assert m.helps.get(fam, "").strip(), f"{fam} has no HELP text"
        samples = m.family_samples(fam)
        if fam not in MAY_BE_EMPTY:
            assert samples, f"{fam} has no samples"
        assert m.label_names(fam) <= {frozenset(labels)}, (fam, m.label_names(fam))
        if typ == "histogram":
            for name, lb, _ in samples:
                assert name in (fam + "_bucket", fam + "_sum", fam + "_count"), name
                assert ("le" in lb) == (name == fam + "_bucket"), (name, lb)
    reloads = {lb["result"]: v for lb, v in m.matching("portico_config_reloads_total")}
    assert reloads == {"success": 0, "failure": 0}, reloads
    circuits = {lb["upstream"]: v for lb, v in m.matching("portico_circuit_state")}
    assert {"u", "dead"} <= set(circuits) and set(circuits.values()) == {0}, circuits
    conns = {lb["listener"] for lb, _ in m.matching("portico_connections_active")}
    assert conns == {"main"}, conns
    spans = {lb["result"] for lb, _ in m.matching("portico_tracing_spans_total")}
    assert spans <= {"exported", "dropped", "failed"}, spans


def test_mixed_traffic_counted_exactly(mixed):
    m = mixed.m
    assert by_series(m) == mixed.expected
    for route in {k[0] for k in mixed.expected}:
        h = m.histogram("portico_request_duration_seconds", route=route)
        want = sum(v for k, v in mixed.expected.items() if k[0] == route)
        assert h.count == want, (route, h.count, want)
        mx.check_buckets(h, route)


def test_auth_failures_by_reason(mixed):
    got = nonzero(mixed.m, "portico_auth_failures_total", "route", "provider", "reason")
    assert got == {("keyed", "keys", "missing"): 3, ("keyed", "keys", "invalid"): 2,
                   ("both", "keys,tok", "missing"): 1, ("both", "keys", "invalid"): 1}, got


def test_rate_limited_counts_each_429(mixed):
    got = nonzero(mixed.m, "portico_rate_limited_total", "route", "key")
    assert got == {("limited", "ip"): 3, ("tenant", "header:x-tenant"): 2}, got


def test_upstream_outcomes(mixed):
    got = nonzero(mixed.m, "portico_upstream_requests_total", "upstream", "endpoint", "outcome")
    assert got == {("u", mixed.up.address, "2xx"): 18, ("u", mixed.up.address, "4xx"): 3,
                   ("dead", mixed.dead, "connect_failure"): 2}, got
    assert mixed.up.count() == 21
    h = mixed.m.histogram("portico_upstream_duration_seconds", upstream="u")
    assert h.count == 21, h.buckets
    mx.check_buckets(h, "upstream u")


# ----- exact counts, reloads, workers -----------------------------------------------------------
def test_counts_by_route_method_status_survive_reload(gateway, upstream):
    g = api_gateway(gateway, upstream)
    send(g, 37, "/api/ok", 200)
    send(g, 5, "/api/status/404", 404)
    send(g, 4, "/not-routed", 404)
    send(g, 3, "/api/post", 200, method="POST", body=b"{}")
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        send(g, 1, "/api/m", 200, method=method)
    send(g, 2, "/api/brew", 200, method="BREW")
    # Admin calls of every kind: none is counted.
    for path in ("/healthz", "/readyz", "/metrics", "/admin/stats", "/admin/nothing-here"):
        g.admin("GET", path)
    expected = {("api", "GET", "200"): 37, ("api", "GET", "404"): 5, ("(none)", "GET", "404"): 4,
                ("api", "POST", "200"): 3, ("api", "PUT", "200"): 1, ("api", "DELETE", "200"): 1,
                ("api", "PATCH", "200"): 1, ("api", "OPTIONS", "200"): 1,
                ("api", "OTHER", "200"): 2}
    m = scrape_total(g, sum(expected.values()))
    assert by_series(m) == expected
    assert m.histogram("portico_request_duration_seconds", route="api").count == 51
    assert m.histogram("portico_request_duration_seconds", route="(none)").count == 4
    assert m.value("portico_upstream_requests_total", upstream="u", endpoint=upstream.address,
                   outcome="2xx") == 46
    assert m.value("portico_upstream_requests_total", upstream="u", endpoint=upstream.address,
                   outcome="4xx") == 5

    # A reload that changes the routes keeps every counter.
    extra = gw.route("extra", {"path_prefix": "/extra"}, "u")
    g.write_config(gw.config([api_route(), extra],
                             {"u": gw.up(upstream)}))
    status, body = g.admin("POST", "/admin/reload")
    assert status == 200, body
    m = mx.scrape_parsed(g)
    assert by_series(m) == expected
    assert m.histogram("portico_request_duration_seconds", route="api").count == 51
    send(g, 1, "/api/ok", 200)
    send(g, 2, "/extra/x", 200)
    expected[("api", "GET", "200")] += 1
    expected[("extra", "GET", "200")] = 2
    m = scrape_total(g, sum(expected.values()))
    assert by_series(m) == expected
    assert m.value("portico_config_reloads_total", result="success") == 1


def test_counts_summed_over_two_workers(gateway, upstream):
    g = api_gateway(gateway, upstream, workers=2)
    errors = []

    def client(t):
        try:
            for i in range(15):  # new connections: spread over both workers' listening sockets
                r = get(g, f"/api/new/{t}/{i}")
                assert r.status == 200, r
            with RawConn(g.port) as c:  # one keep-alive connection
                for i in range(10):
                    c.send(request_bytes("GET", f"/api/ka/{t}/{i}"))
                    r = c.read_response()
                    assert r.status == 200, r
            for i in range(2):
                assert get(g, f"/none/{t}/{i}").status == 404
            assert get(g, f"/api/post/{t}", method="POST", body=b"x").status == 200
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    expected = {("api", "GET", "200"): 100, ("(none)", "GET", "404"): 8,
                ("api", "POST", "200"): 4}
    m = scrape_total(g, 112)
    assert by_series(m) == expected
    assert m.histogram("portico_request_duration_seconds", route="api").count == 104
    assert m.value("portico_upstream_requests_total", upstream="u", endpoint=upstream.address,
                   outcome="2xx") == 104
    assert upstream.count() == 104
    status, body = g.admin("POST", "/admin/reload")
    assert status == 200, body
    assert by_series(mx.scrape_parsed(g)) == expected


# ----- histograms -------------------------------------------------------------------------------
def test_latency_quantiles_from_histograms(gateway, upstream):
    routes = [gw.route("fast", {"path_prefix": "/fast"}, "fastup"),
              gw.route("slow", {"path_prefix": "/slow"}, "slowup")]
    g = gateway(gw.config(routes, {"fastup": gw.up(upstream), "slowup": gw.up(upstream)}))
    send(g, 20, "/fast/x", 200)
    errors = []

    def slow(k):
        try:
            for _ in range(5):
                r = get(g, "/slow/300")
                assert r.status == 200, r
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=slow, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    m = scrape_total(g, 40)
    for fam, label, fast, slw in (("portico_request_duration_seconds", "route", "fast", "slow"),
                                  ("portico_upstream_duration_seconds", "upstream", "fastup",
                                   "slowup")):
        hf = m.histogram(fam, **{label: fast})
        hs = m.histogram(fam, **{label: slw})
        for h in (hf, hs):
            assert h.count == 20, (fam, h.buckets)
            mx.check_buckets(h, fam)
        q = {p: mx.histogram_quantile(p, hf.buckets) for p in (0.5, 0.95, 0.99)}
        assert q[0.5] <= q[0.95] <= q[0.99] < 0.05, (fam, q, hf.buckets)
        q = {p: mx.histogram_quantile(p, hs.buckets) for p in (0.5, 0.95, 0.99)}
        assert all(0.25 <= v <= 0.5 for v in q.values()), (fam, q, hs.buckets)
        assert 20 * 0.3 <= hs.sum <= 20 * 0.5 * SLACK, (fam, hs.sum)
        assert 0 < hf.sum < 20 * 0.05 * SLACK, (fam, hf.sum)


# ----- gauges, reloads, process ----------------------------------------------------------------
def settle(g, fn, want, timeout=5.0):
    """Polls fn(exposition) until it equals want; returns the last value seen."""
    deadline = time.monotonic() + timeout * SLACK
    while True:
        value = fn(mx.scrape_parsed(g))
        if value == want or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_connections_active_counts_idle_keepalive(gateway, upstream):
    g = api_gateway(gateway, upstream)

    def active(m):
        return m.value("portico_connections_active", listener="main")
    assert settle(g, active, 0) == 0
    conns = []
    try:
        for i in range(5):
            c = RawConn(g.port)
            conns.append(c)
            c.send(request_bytes("GET", f"/api/{i}"))
            assert c.read_response().status == 200
        assert settle(g, active, 5) == 5
        time.sleep(0.3)
        assert active(mx.scrape_parsed(g)) == 5  # idle, still open, still counted
    finally:
        for c in conns:
            c.close()
    assert settle(g, active, 0) == 0


def test_config_reloads_success_and_failure(gateway, upstream):
    cfg = gw.config([api_route()], {"u": gw.up(upstream)})
    g = gateway(cfg)

    def reloads(m):
        return {lb["result"]: v for lb, v in m.matching("portico_config_reloads_total")}
    assert reloads(mx.scrape_parsed(g)) == {"success": 0, "failure": 0}
    status, body = g.admin("POST", "/admin/reload")
    assert status == 200, body
    broken = gw.to_yaml(cfg).replace("upstreams:", "upstreamz:", 1)
    g.write_config(broken)
    status, body = g.admin("POST", "/admin/reload")
    assert status == 422, body
    assert reloads(mx.scrape_parsed(g)) == {"success": 1, "failure": 1}
    g.write_config(cfg)
    g.reload(via="signal")
    assert settle(g, reloads, {"success": 2, "failure": 1}) == {"success": 2, "failure": 1}


def test_process_metrics_are_plausible(gateway, upstream):
    t0 = time.time()
    g = api_gateway(gateway, upstream)
    t1 = time.time()
    send(g, 3, "/api/x", 200)
    m = mx.scrape_parsed(g)
    v = {n: m.value(n) for n in SPEC_FAMILIES if n.startswith("process_")}
    assert all(x is not None for x in v.values()), v
    rss = v["process_resident_memory_bytes"]
    assert 1 << 20 < rss <= v["process_virtual_memory_bytes"], v
    proc_rss = util.proc_status_kib(g.pid, "VmRSS") * 1024
    assert proc_rss / 2 < rss < proc_rss * 2, (rss, proc_rss)
    fds = len(os.listdir(f"/proc/{g.pid}/fd"))
    assert v["process_open_fds"] >= 3 and abs(v["process_open_fds"] - fds) <= 8, (v, fds)
    with open(f"/proc/{g.pid}/limits") as f:
        soft = next(int(ln.split()[3]) for ln in f if ln.startswith("Max open files"))
    assert v["process_max_fds"] == soft, (v, soft)
    assert t0 - 2 <= v["process_start_time_seconds"] <= t1 + 2, (v, t0, t1)
    assert 0 <= v["process_cpu_seconds_total"] < 60, v


def test_metrics_disabled_counts_nothing(gateway, upstream):
    g = api_gateway(gateway, upstream, metrics={"enabled": False})
    send(g, 3, "/api/x", 200)
    send(g, 1, "/nothing", 404)
    with RawConn(g.port) as c:  # an open connection while scraping: not counted either
        c.send(request_bytes("GET", "/api/held"))
        assert c.read_response().status == 200
        time.sleep(0.2)
        status, ctype, text = mx.scrape(g)
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4"), (status, ctype)
    m = mx.parse(text)
    counted = [(n, lb, v) for n, lb, v in m.samples if not n.startswith("process_") and v]
    assert counted == [], counted
    families = {m.family_of(n) for n, _, _ in m.samples}
    # The contract: "/metrics has only the process_* and config metrics".
    assert {f for f in families if not f.startswith("process_")} == \
        {"portico_config_reloads_total"}, families
    if mx.promtool():
        rc, out = mx.promtool_check(text)
        assert rc == 0 and out.strip() == "", out


# ----- tokens -----------------------------------------------------------------------------------
def test_metrics_token_rules(gateway, upstream):
    cfg = gw.config([api_route()], {"u": gw.up(upstream)})
    cfg["admin"]["token"] = "adm-token-0123456789"
    g = gateway(cfg, admin_token="adm-token-0123456789")
    assert g.admin("GET", "/healthz", token="")[0] == 200
    assert mx.scrape(g, token="")[0] == 401
    assert mx.scrape(g, token="wrong-token")[0] == 401
    assert mx.scrape(g)[0] == 200

    cfg["admin"]["metrics_token"] = "${SCRAPE_TOKEN}"
    g2 = gateway(cfg, admin_token="adm-token-0123456789", env={"SCRAPE_TOKEN": "scrape-0123456789"})
    send(g2, 2, "/api/x", 200)
    assert g2.admin("GET", "/healthz", token="")[0] == 200
    for token, want in (("", 401), ("wrong-token", 401), ("adm-token-0123456789", 200),
                        ("scrape-0123456789", 200)):
        status, ctype, text = mx.scrape(g2, token=token)
        assert status == want, (token, status, text[:300])
        if want == 200:
            assert ctype.startswith("text/plain; version=0.0.4"), ctype
            assert mx.parse(text).value("portico_requests_total", route="api", method="GET",
                                        status="200") == 2
    # The scrape token opens /metrics only.
    for method, path in (("GET", "/admin/config"), ("GET", "/admin/stats"), ("GET", "/readyz"),
                         ("GET", "/admin/upstreams"), ("GET", "/admin/routes"),
                         ("POST", "/admin/reload")):
        status, body = g2.admin(method, path, token="scrape-0123456789")
        assert status == 401, (method, path, status, body)
    assert g2.admin("GET", "/admin/config")[0] == 200
    assert g2.config_version() == 1


# ----- aborted requests -------------------------------------------------------------------------
def next_request_counted(g, before):
    """One more GET: counted as exactly one more (api, GET, 200), nothing else changes."""
    assert get(g, "/api/after").status == 200
    want = dict(before)
    want[("api", "GET", "200")] = want.get(("api", "GET", "200"), 0) + 1
    m = scrape_until(g, lambda m: by_series(m) == want)
    assert by_series(m) == want


def test_half_head_then_close_is_not_a_200(gateway, upstream):
    g = api_gateway(gateway, upstream)
    s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    s.sendall(b"GET /api/half HTTP/1.1\r\nHost: test.local\r\n")
    time.sleep(0.2)
    s.close()
    time.sleep(0.5)
    got = by_series(mx.scrape_parsed(g))
    # Not a request the gateway could answer: at most a 400 or 499, never a 200.
    assert sum(got.values()) <= 1 and all(k[2] in ("400", "499") for k in got), got
    assert upstream.count() == 0
    next_request_counted(g, got)
    g.assert_healthy()


@pytest.mark.parametrize("close", ["fin", "rst"])
def test_client_gone_before_the_answer(gateway, upstream, close):
    """A whole request, then the client closes while the upstream takes 1 s. With RST the client
    is gone: status 499 and upstream outcome `cancelled`, never a 200/2xx. A FIN is a half-close
    (test_basic_proxy.py::test_request_then_half_close_is_answered): the answer is still sent,
    and counted as what it was."""
    g = api_gateway(gateway, upstream)
    s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    s.sendall(request_bytes("GET", "/api/slow/1000"))
    wait_until(lambda: upstream.count() == 1, 5 * SLACK, message="the request upstream")
    if close == "rst":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    time.sleep(1.5)  # past the upstream's answer: a late 200 would show now
    status, outcome = ("499", "cancelled") if close == "rst" else ("200", "2xx")
    m = scrape_until(g, lambda m: by_series(m) == {("api", "GET", status): 1})
    assert by_series(m) == {("api", "GET", status): 1}, f"client closed with {close}"
    outcomes = nonzero(m, "portico_upstream_requests_total", "outcome")
    assert outcomes == {(outcome,): 1}, outcomes
    next_request_counted(g, {("api", "GET", status): 1})
    m = mx.scrape_parsed(g)
    expected = {(outcome,): 1, ("2xx",): 1} if close == "rst" else {("2xx",): 2}
    assert nonzero(m, "portico_upstream_requests_total", "outcome") == expected
    g.assert_healthy()
