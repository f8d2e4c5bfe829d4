"""Tracing (issue #13; docs/observability.md "Tracing", SPEC §8): W3C trace context in and
out (the cases of the W3C trace-context test suite that apply to a proxy), OTLP/HTTP export to a
test receiver (support/otlp_receiver.py), dead and slow collectors, the access log's trace_id,
HTTP/2 and aborted clients."""
import json
import re
import subprocess
import time

import pytest

from support import gateway as gw
from support import rawhttp
from support.otlp_receiver import OtlpReceiver
from support.rawhttp import RawConn, request_bytes
from support.util import SLACK, free_port, wait_until

TP = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
T = "0af7651916cd43dd8448eb211c80319c"
P = "b7ad6b7169203331"
VALID = f"00-{T}-{P}-01"
# After the expected spans arrived: time for any extra ones to show up (three of the tests'
# 200 ms export intervals; at most twice that for a sanitized build).
SETTLE = 0.6 * min(SLACK, 2)


# ----- helpers ----------------------------------------------------------------------------------
@pytest.fixture
def otlp():
    """Factory: otlp(delay=0) -> a running OtlpReceiver, stopped at the end of the test."""
    made = []

    def make(**kw):
        r = OtlpReceiver(lifetime=180 * SLACK, **kw)
        made.append(r)
        return r
    yield make
    for r in made:
        r.stop()


ALICE_KEY = "k-trace-alice-0123456789"


def tracing_gateway(factory, upstream, tracing=None, access_log=None, listener=None, workers=1):
    """Routes: /api (public, prefix stripped) and /priv (API key; consumer alice)."""
    routes = [gw.route("api", {"path_prefix": "/api"}, "u", rewrite={"strip_prefix": True}),
              gw.route("priv", {"path_prefix": "/priv"}, "u", auth=["keys"])]
    top = {"tracing": tracing} if tracing is not None else {}
    return factory(gw.config(
        routes, {"u": gw.up(upstream)}, access_log=access_log, listener=listener,
        workers=workers, auth_providers={"keys": {"type": "api_key", "from": ["header:X-API-Key"]}},
        consumers=[{"name": "alice", "api_keys": [ALICE_KEY]}], **top))


def exporting(receiver_or_endpoint, sample=1.0, **extra):
    ep = getattr(receiver_or_endpoint, "endpoint", receiver_or_endpoint)
    return dict({"otlp_endpoint": ep, "sample": sample, "export_interval": "200ms"}, **extra)


def tp_of(rec):
    """The one traceparent the upstream received: (trace_id, parent_id, flags)."""
    values = rec.header_all("traceparent")
    assert len(values) == 1, f"upstream got {len(values)} traceparent fields: {rec.headers}"
    m = TP.match(values[0])
    assert m, f"not a version-00 lowercase traceparent: {values[0]!r}"
    trace, parent, flags = m.groups()
    assert trace != "0" * 32 and parent != "0" * 16, values[0]
    return trace, parent, flags


def proxied(g, upstream, path, headers=(), method="GET", body=b"", status=200):
    """One request on a fresh connection; returns (response, what the upstream recorded)."""
    n = upstream.count()
    resp = rawhttp.exchange(g.port, request_bytes(method, path, headers=list(headers), body=body),
                            method=method)
    assert resp.status == status, resp
    got = upstream.since(n)
    assert len(got) == 1, got
    return resp, got[0]


def spans_metric(g):
    status, text = g.admin("GET", "/metrics")
    assert status == 200, text
    out = {}
    for result in ("exported", "dropped", "failed"):
        m = re.search(r'^portico_tracing_spans_total\{result="%s"\} (\S+)$' % result, text, re.M)
        assert m, f"no portico_tracing_spans_total{{result={result!r}}} in /metrics"
        out[result] = float(m.group(1))
    return out


def exactly_spans(receiver, n, timeout=10.0):
    """Waits for n spans, then a little longer, and checks there are exactly n, well decoded."""
    spans = receiver.wait_for_spans(n, timeout * SLACK)
    assert len(spans) >= n, f"{len(spans)} of {n} spans arrived: {spans}"
    time.sleep(SETTLE)
    spans = receiver.snapshot()
    assert receiver.errors == [], receiver.errors
    assert len(spans) == n, f"{len(spans)} spans, expected {n}: {spans}"
    assert len({s["span_id"] for s in spans}) == n, spans
    for r in receiver.requests_snapshot():
        assert r["path"] == "/v1/traces"
        assert dict(r["headers"])["content-type"].split(";")[0] == "application/x-protobuf"
    return spans


def curl(*args, timeout=10):
    return subprocess.run(["curl", "-sS", "--max-time", str(int(timeout * SLACK)), *args],
                          capture_output=True, timeout=timeout * SLACK + 10)


# ----- propagation (the default config: propagate is on) ----------------------------------------
@pytest.fixture(scope="module")
def prop(module_gateway, module_upstreams):
    u = module_upstreams("prop")
    return tracing_gateway(module_gateway, u), u


VALID_CASES = {
    "sampled": ([("traceparent", f"00-{T}-{P}-01")], 1),
    "not-sampled": ([("traceparent", f"00-{T}-{P}-00")], 0),
    "name-casing": ([("TraceParent", f"00-{T}-{P}-01")], 1),
    "name-upper": ([("TRACEPARENT", f"00-{T}-{P}-00")], 0),
    # OWS around a field value is not part of it (RFC 9110 §5.5).
    "ows": ([("traceparent", f" \t00-{T}-{P}-01\t ")], 1),
    # A higher version is parsed by its version-00 prefix (W3C trace-context §3.2.4 / test suite
    # test_traceparent_version_0xcc): length >= 55 and flags followed by the end or a dash.
    "future-version": ([("traceparent", f"cc-{T}-{P}-01")], 1),
    "future-version-more-fields": (
        [("traceparent", f"cc-{T}-{P}-01-what-the-future-will-be-like")], 1),
    "future-version-not-sampled": ([("traceparent", f"cc-{T}-{P}-00-x")], 0),
}


@pytest.mark.parametrize("case", list(VALID_CASES))
def test_valid_traceparent_keeps_trace_id_and_sampled_flag(prop, case):
    g, u = prop
    headers, sampled = VALID_CASES[case]
    _, rec = proxied(g, u, f"/api/valid/{case}", headers)
    trace, parent, flags = tp_of(rec)
    assert trace == T
    assert parent != P  # the gateway's own span
    assert int(flags, 16) & 1 == sampled


def test_each_hop_gets_a_new_parent_id(prop):
    g, u = prop
    parents = {tp_of(proxied(g, u, "/api/again", [("traceparent", VALID)])[1])[1]
               for _ in range(5)}
    assert len(parents) == 5 and P not in parents


def test_no_traceparent_starts_a_new_trace(prop):
    g, u = prop
    seen = [tp_of(proxied(g, u, f"/api/none/{i}")[1]) for i in range(3)]
    assert len({t for t, _, _ in seen}) == 3 and len({p for _, p, _ in seen}) == 3


T2 = "4bf92f3577b34da6a3ce929d0e0e4736"
P2 = "00f067aa0ba902b7"
INVALID_CASES = {
    "version-ff": f"ff-{T}-{P}-01",
    "version-00-extra-field": f"00-{T}-{P}-01-what-the-future-will-be-like",
    "version-00-extra-dot": f"00-{T}-{P}-01.what-the-future-will-be-like",
    "version-cc-bad-separator": f"cc-{T}-{P}-01.what-the-future-will-be-like",
    "version-cc-too-short": f"cc-{T}-{P}-0",
    "version-too-short": f"0-{T}-{P}-01",
    "version-too-long": f"000-{T}-{P}-01",
    "version-illegal-1": f".0-{T}-{P}-01",
    "version-illegal-2": f"0.-{T}-{P}-01",
    "version-uppercase": f"0A-{T}-{P}-01",
    "trace-id-uppercase": f"00-{T.upper()}-{P}-01",
    "parent-id-uppercase": f"00-{T}-{P.upper()}-01",
    "flags-uppercase": f"00-{T}-{P}-0A",
    "trace-id-all-zero": f"00-{'0' * 32}-{P}-01",
    "parent-id-all-zero": f"00-{T}-{'0' * 16}-01",
    "trace-id-too-short": f"00-{T[:31]}-{P}-01",
    "trace-id-too-long": f"00-{T}0-{P}-01",
    "parent-id-too-short": f"00-{T}-{P[:15]}-01",
    "parent-id-too-long": f"00-{T}-{P}0-01",
    "trace-id-illegal-start": f"00-.{T[1:]}-{P}-01",
    "trace-id-illegal-end": f"00-{T[:31]}.-{P}-01",
    "trace-id-non-hex": f"00-{T[:31]}g-{P}-01",
    "parent-id-illegal": f"00-{T}-.{P[1:]}-01",
    "parent-id-non-hex": f"00-{T}-{P[:15]}z-01",
    "flags-illegal-1": f"00-{T}-{P}-.0",
    "flags-illegal-2": f"00-{T}-{P}-0.",
    "flags-too-long": f"00-{T}-{P}-001",
    "flags-too-short": f"00-{T}-{P}-0",
    "no-dashes": f"00{T}{P}01",
    "one-dash-missing": f"00-{T}{P}-01",
    "underscores": f"00_{T}_{P}_01",
    "space-inside": f"00- {T}-{P}-01",
    "empty": "",
    "garbage": "hello world",
    # Two traceparent fields: the W3C test suite (test_traceparent_duplicated) restarts the trace.
    "two-fields": [f"00-{T}-{P}-01", f"00-{T2}-{P2}-01"],
    "two-fields-same": [f"00-{T}-{P}-01", f"00-{T}-{P}-01"],
}


@pytest.mark.parametrize("case", list(INVALID_CASES))
def test_invalid_traceparent_starts_a_new_trace(prop, case):
    g, u = prop
    value = INVALID_CASES[case]
    values = value if isinstance(value, list) else [value]
    headers = [("traceparent", v) for v in values] + [("X-Case", case)]
    incoming = {x.lower() for v in values for x in re.findall(r"[0-9a-fA-F]{32}", v)}
    incoming_parents = {x.lower() for v in values for x in re.findall(r"[0-9a-fA-F]{16}", v)}
    traces = set()
    for i in range(2):
        _, rec = proxied(g, u, f"/api/invalid/{case}/{i}", headers)
        trace, parent, _ = tp_of(rec)
        assert trace not in incoming and trace not in (T, T2), (case, trace)
        assert parent not in incoming_parents and parent not in (P, P2), (case, parent)
        traces.add(trace)
    assert len(traces) == 2, f"the same 'new' trace id twice: {traces}"


def test_tracestate_is_forwarded_unchanged(prop):
    g, u = prop
    ts = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7,tenant@vendor=x_1"
    _, rec = proxied(g, u, "/api/ts", [("traceparent", VALID), ("tracestate", ts)])
    assert tp_of(rec)[0] == T
    assert rec.header_all("tracestate") == [ts]


def test_tracestate_in_two_fields_is_kept_in_order(prop):
    g, u = prop
    _, rec = proxied(g, u, "/api/ts2", [("tracestate", "rojo=00f067aa0ba902b7"),
                                        ("traceparent", VALID),
                                        ("tracestate", "congo=t61rcWkgMzE,b=2")])
    assert tp_of(rec)[0] == T
    lines = rec.header_all("tracestate")
    members = [m.strip() for line in lines for m in line.split(",")]
    assert members == ["rojo=00f067aa0ba902b7", "congo=t61rcWkgMzE", "b=2"], rec.headers


# ----- propagate: false -------------------------------------------------------------------------
def test_propagate_false_adds_nothing_and_leaves_the_field_alone(gateway, upstream):
    # Contract: off, the gateway neither reads nor writes trace context; the client's fields
    # pass through untouched.
    g = tracing_gateway(gateway, upstream, tracing={"propagate": False})
    _, rec = proxied(g, upstream, "/api/off")
    assert rec.header_all("traceparent") == [], rec.headers
    _, rec = proxied(g, upstream, "/api/off2", [("traceparent", VALID), ("tracestate", "a=1")])
    assert rec.header_all("traceparent") == [VALID], rec.headers
    assert rec.header_all("tracestate") == ["a=1"], rec.headers
    g.assert_healthy()


# ----- OTLP export ------------------------------------------------------------------------------
def test_every_sampled_request_is_exported_once(gateway, upstream, otlp):
    rcv = otlp()
    g = tracing_gateway(gateway, upstream, tracing=exporting(rcv, service_name="portico-test"),
                        workers=2)  # one exporter or two: every span exactly once
    t0 = time.time_ns()
    sent = {}  # span id the upstream saw -> (trace, incoming parent, method, path, status, flags)
    for i, (trace, parent) in enumerate([(T, P), (T2, P2), ("1" * 31 + "2", "3" * 16)]):
        path = "/api/slow/300" if i == 0 else f"/api/a{i}"
        _, rec = proxied(g, upstream, path, [("traceparent", f"00-{trace}-{parent}-01")])
        t, span_id, flags = tp_of(rec)
        assert t == trace
        sent[span_id] = (trace, parent, "GET", path, 200, flags)
    for i in range(2):
        _, rec = proxied(g, upstream, f"/api/b{i}", method="POST", body=b"x" * 10)
        t, span_id, flags = tp_of(rec)
        sent[span_id] = (t, "", "POST", f"/api/b{i}", 200, flags)
    _, rec = proxied(g, upstream, "/api/status/503", status=503)
    t, span_id, flags = tp_of(rec)
    sent[span_id] = (t, "", "GET", "/api/status/503", 503, flags)
    assert rawhttp.exchange(g.port, request_bytes("GET", "/nowhere")).status == 404

    spans = exactly_spans(rcv, len(sent) + 1)
    t1 = time.time_ns()
    assert all(int(f, 16) & 1 for *_, f in sent.values()), "sample 1.0: every new trace sampled"
    by_id = {s["span_id"]: s for s in spans}
    assert set(sent) <= set(by_id), (sent, spans)
    for span_id, (trace, parent, method, path, status, _) in sent.items():
        s = by_id[span_id]
        a = s["attributes"]
        assert s["trace_id"] == trace and s["parent_span_id"] == parent, s
        assert s["kind"] == 2 and s["name"] == f"{method} api", s
        assert type(a.get("http.response.status_code")) is int, a
        assert a["http.response.status_code"] == status, a
        assert a["http.request.method"] == method and a["http.route"] == "api", a
        assert a["url.path"] == path and a["server.address"] == "test.local", a
        assert a["upstream.address"] == upstream.address, a
        assert a["network.protocol.version"] == "1.1", a
        assert "127.0.0.1" in str(a.get("client.address")), a
        assert "enduser.id" not in a, a
        assert (s["status"]["code"] == 2) == (status >= 500), s
        assert t0 - 2e9 <= s["start"] <= s["end"] <= t1, s
        assert s["resource"].get("service.name") == "portico-test", s["resource"]
    slow = next(s for s in spans if s["attributes"].get("url.path") == "/api/slow/300")
    assert slow["end"] - slow["start"] >= 290_000_000, slow
    (miss,) = [s for s in spans if s["span_id"] not in sent]
    assert miss["name"] == "GET" and miss["kind"] == 2 and miss["parent_span_id"] == "", miss
    assert miss["attributes"]["http.response.status_code"] == 404, miss
    assert "upstream.address" not in miss["attributes"], miss
    assert HEX32.match(miss["trace_id"]) and miss["trace_id"] != "0" * 32, miss
    m = spans_metric(g)
    assert m["exported"] == len(spans) and m["dropped"] == 0 and m["failed"] == 0, m


def test_authenticated_consumer_is_enduser_id(gateway, upstream, otlp):
    rcv = otlp()
    g = tracing_gateway(gateway, upstream, tracing=exporting(rcv))
    _, rec = proxied(g, upstream, "/priv/me", [("X-API-Key", ALICE_KEY)])
    trace, span_id, _ = tp_of(rec)
    (s,) = exactly_spans(rcv, 1)
    assert s["span_id"] == span_id and s["trace_id"] == trace, s
    assert s["name"] == "GET priv" and s["attributes"]["http.route"] == "priv", s
    assert s["attributes"]["enduser.id"] == "alice", s


def test_sample_zero_exports_only_incoming_sampled_traces(gateway, upstream, otlp):
    rcv = otlp()
    g = tracing_gateway(gateway, upstream, tracing=exporting(rcv, sample=0.0))
    sampled = {}
    for i in range(3):
        _, rec = proxied(g, upstream, f"/api/new/{i}")
        assert int(tp_of(rec)[2], 16) & 1 == 0
        trace = f"{i + 1:x}" * 32
        _, rec = proxied(g, upstream, f"/api/off/{i}", [("traceparent", f"00-{trace}-{P}-00")])
        t, _, flags = tp_of(rec)
        assert t == trace and int(flags, 16) & 1 == 0
        trace = f"{i + 0xa:x}" * 32
        _, rec = proxied(g, upstream, f"/api/on/{i}", [("traceparent", f"00-{trace}-{P2}-01")])
        t, span_id, flags = tp_of(rec)
        assert t == trace and int(flags, 16) & 1 == 1
        sampled[span_id] = trace
    spans = exactly_spans(rcv, 3)
    assert {s["span_id"]: s["trace_id"] for s in spans} == sampled
    assert all(s["parent_span_id"] == P2 for s in spans), spans
    assert all(s["resource"].get("service.name") == "portico" for s in spans), spans


def test_gzip_export_is_understood_if_used(gateway, upstream, otlp):
    # gzip is optional (SPEC §8); whichever encoding is used, the receiver must decode it.
    rcv = otlp()
    g = tracing_gateway(gateway, upstream, tracing=exporting(rcv))
    for i in range(20):
        proxied(g, upstream, f"/api/z{i}", [("traceparent", f"00-{T}-{P}-01")])
    spans = exactly_spans(rcv, 20)
    assert {s["trace_id"] for s in spans} == {T}
    encodings = {dict(r["headers"]).get("content-encoding", "identity")
                 for r in rcv.requests_snapshot()}
    assert encodings <= {"identity", "gzip"}, encodings


def run_many(g, n, limit):
    """n keep-alive requests, each timed; all must be 200 and each faster than `limit` s."""
    slowest = 0.0
    with RawConn(g.port, timeout=10 * SLACK) as c:
        for i in range(n):
            start = time.monotonic()
            c.send(request_bytes("GET", f"/api/many/{i}"))
            resp = c.read_response()
            slowest = max(slowest, time.monotonic() - start)
            assert resp.status == 200, (i, resp)
    assert slowest < limit, f"slowest request took {slowest:.3f}s"
    return slowest


def test_dead_collector_changes_nothing_for_clients(gateway, upstream):
    dead = free_port()  # nothing listens there
    g = tracing_gateway(gateway, upstream,
                        tracing=exporting(f"http://127.0.0.1:{dead}/v1/traces"))
    run_many(g, 200, 1.0 * SLACK)
    assert upstream.count() == 200
    assert all(TP.match(r.header("traceparent") or "") for r in upstream.snapshot())
    wait_until(lambda: (lambda m: m["dropped"] + m["failed"] >= 200)(spans_metric(g)),
               timeout=15 * SLACK, message="200 spans counted as dropped or failed")
    m = spans_metric(g)
    assert m["exported"] == 0 and m["dropped"] + m["failed"] == 200, m
    assert g.admin("GET", "/healthz")[0] == 200
    proxied(g, upstream, "/api/after")
    g.assert_healthy()


def test_slow_collector_changes_nothing_for_clients(gateway, upstream, otlp):
    # A queue of 10 spans: while the first batch waits for the collector, the rest are dropped
    # and counted (the in-flight batch may or may not count against the queue).
    rcv = otlp(delay=5.0)
    g = tracing_gateway(gateway, upstream, tracing=exporting(rcv, queue_size=10))
    start = time.monotonic()
    run_many(g, 200, 1.0 * SLACK)
    assert time.monotonic() - start < 5.0 * SLACK
    assert upstream.count() == 200
    wait_until(lambda: rcv.count() >= 1, timeout=5 * SLACK, message="an export attempt")
    wait_until(lambda: spans_metric(g)["dropped"] >= 180, timeout=3 * SLACK,
               message="at least 180 of 200 spans dropped by a 10-span queue")
    m = spans_metric(g)
    assert m["dropped"] <= 190 and sum(m.values()) <= 200, m
    assert g.admin("GET", "/healthz")[0] == 200
    _, rec = proxied(g, upstream, "/api/after", [("traceparent", VALID)])
    assert tp_of(rec)[0] == T
    g.assert_healthy()


# ----- the access log ---------------------------------------------------------------------------
def test_access_log_carries_request_id_and_trace_id(gateway, upstream, tmp_path):
    path = str(tmp_path / "access.log")
    g = tracing_gateway(gateway, upstream, tracing={"sample": 0.0},
                        access_log={"path": path, "format": "json"})
    _, rec = proxied(g, upstream, "/api/l1", [("X-Request-Id", "trace-log-1"),
                                              ("traceparent", f"00-{T}-{P}-00")])
    assert tp_of(rec)[0] == T
    _, rec = proxied(g, upstream, "/api/l2", [("X-Request-Id", "trace-log-2")])
    new_trace = tp_of(rec)[0]
    assert rawhttp.exchange(g.port, request_bytes(
        "GET", "/nowhere", headers=[("X-Request-Id", "trace-log-3")])).status == 404
    lines = wait_until(lambda: (lambda ls: ls if len(ls) >= 3 else None)(g.access_log_lines(path)),
                       timeout=5 * SLACK, message="3 access log lines")
    entries = {e["request_id"]: e for e in map(json.loads, lines)}
    assert set(entries) == {"trace-log-1", "trace-log-2", "trace-log-3"}, lines
    assert entries["trace-log-1"]["trace_id"] == T
    assert entries["trace-log-2"]["trace_id"] == new_trace
    miss = entries["trace-log-3"]["trace_id"]
    assert HEX32.match(miss) and miss not in (T, new_trace, "0" * 32), miss


# ----- HTTP/2 and aborted clients ---------------------------------------------------------------
def test_http2_requests_are_traced(gateway, upstream, otlp):
    rcv = otlp()
    g = tracing_gateway(gateway, upstream, tracing=exporting(rcv, sample=0.0),
                        listener={"http2": True})
    p = curl("--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
             "-H", f"traceparent: 00-{T2}-{P2}-01", "-H", "tracestate: congo=t61rcWkgMzE",
             g.url("/api/h2"))
    assert p.returncode == 0 and p.stdout.decode() == "200 2", (p.stdout, p.stderr)
    rec = upstream.last()
    trace, span_id, flags = tp_of(rec)
    assert trace == T2 and span_id != P2 and flags == "01"
    assert rec.header_all("tracestate") == ["congo=t61rcWkgMzE"]
    p = curl("--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}",
             g.url("/api/h2-new"))
    assert p.stdout.decode() == "200", (p.stdout, p.stderr)
    new_trace = tp_of(upstream.last())[0]
    assert new_trace != T2
    p = curl("--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}",
             "-H", f"traceparent: 00-{T2}-{P2}-01", "-H", f"traceparent: 00-{T}-{P}-01",
             g.url("/api/h2-two"))  # two fields: invalid, a new (unsampled) trace
    assert p.stdout.decode() == "200", (p.stdout, p.stderr)
    rec = upstream.last()
    assert rec.path == "/h2-two" and tp_of(rec)[0] not in (T, T2, new_trace), rec.headers
    (s,) = exactly_spans(rcv, 1)
    assert s["span_id"] == span_id and s["trace_id"] == T2 and s["parent_span_id"] == P2, s
    assert s["attributes"]["network.protocol.version"] == "2", s
    assert s["attributes"]["http.response.status_code"] == 200, s
    assert s["attributes"]["url.path"] == "/api/h2", s


def test_client_abort_while_upstream_is_slow(gateway, upstream, otlp):
    rcv = otlp()
    g = tracing_gateway(gateway, upstream, tracing=exporting(rcv))
    c = RawConn(g.port)
    c.send(request_bytes("GET", "/api/slow/1500", headers=[("traceparent", VALID)]))
    upstream.wait_for_requests(1, timeout=5 * SLACK)
    c.close()
    time.sleep(0.2)
    _, rec = proxied(g, upstream, "/api/next", [("traceparent", f"00-{T2}-{P2}-01")])
    trace, span_id, _ = tp_of(rec)
    assert trace == T2
    wait_until(lambda: any(s["span_id"] == span_id for s in rcv.snapshot()), 10 * SLACK,
               message="the next request's span")
    s = next(s for s in rcv.snapshot() if s["span_id"] == span_id)
    assert s["trace_id"] == T2 and s["parent_span_id"] == P2, s
    assert s["attributes"]["http.response.status_code"] == 200, s
    assert rcv.errors == [], rcv.errors
    assert len([x for x in rcv.snapshot() if x["trace_id"] == T2]) == 1, rcv.snapshot()
    g.assert_healthy()
