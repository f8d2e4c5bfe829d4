"""The upstream fault matrix: every way an upstream can fail, over HTTP/1.1 and HTTP/2 (h2c)
upstreams, seen by HTTP/1.1 clients (and a subset by HTTP/2 clients).

One gateway (workers: 1, so every test meets the same worker). Each test case has its own
FaultUpstream (support/fault_upstream.py), HTTP/1.1 or HTTP/2, behind its own route /SLOT, and
switches its mode at run time: a fault that leaves an upstream's pool broken fails its own test,
not the ones after it. Two more upstreams, /http1-healthy and /http2-healthy, only ever answer.
Upstream timeouts: connect 1s, request 500ms, idle 700ms (idle > request, so a cut tells which
timer made it). For each fault the client gets the right answer, nothing waits past its timeout,
the gateway gives up on the upstream exchange (closes the connection or resets the stream), and
the next request, on the same client connection when it survived and on a fresh one, gets a
normal 200 from the same upstream. Every test ends with the gateway alive and no sanitizer report.

  before the head   refused, reset (TCP RST / RST_STREAM), garbage: 502 bad_upstream, at once
  unfinished head   a head with no end, a head that grows forever: 504 upstream_timeout after
                    `request`, not later (bytes of an unfinished head do not restart the timer)
  after the head    reset, close or GOAWAY mid-body, a body that stops, a trickle slower than
                    `idle`: the client has the 200 head, then its connection is cut (HTTP/2:
                    the stream is reset); the body is never presented as complete: it keeps
                    its Content-Length or chunked framing and stops short of its end
  slow but alive    a trickle with every gap under `idle`: 200 and the whole body, intact
  afterwards        after a garbage answer or an unfinished head and a pause longer than
                    `idle`, every request reaches the upstream again and gets its 200
"""
import hashlib
import itertools
import json
import time

import pytest

from support import gateway as gw
from support import rawhttp
from support.fault_upstream import SHORT_TOTAL, FaultUpstream, body_bytes
from support.h2client import Closed, H2Client
from support.rawhttp import RawConn, request_bytes
from support.util import SLACK, assert_error, wait_until

REQUEST = 0.5   # timeouts.request
IDLE = 0.7      # timeouts.idle
EARLY = 0.05    # timer granularity: a timeout may fire this much before its nominal time
PROTOCOLS = ("http1", "http2")

_counter = itertools.count(1)


def tag():
    return f"t{next(_counter)}"


def slot(*parts):
    """The name of a test case's upstream, of its route (/NAME) and upstream config key."""
    return "-".join(parts)


# ----- the cases ---------------------------------------------------------------------------------
REFUSED = list(PROTOCOLS)
# reset_head: HTTP/1.1 TCP RST, HTTP/2 RST_STREAM; tcp_reset_head: HTTP/2's TCP RST.
BEFORE_HEAD = [(p, m, how)
               for p in PROTOCOLS
               for m in (("reset_head", "garbage") if p == "http1"
                         else ("reset_head", "tcp_reset_head", "garbage"))
               for how in ("pooled", "fresh")]
UNFINISHED_HEAD = [(p, m) for p in PROTOCOLS for m in ("head_no_end", "head_trickle")]
AFTER_HEAD = [(p, m, f)
              for p in PROTOCOLS
              for m in (("reset_body", "close_half", "hang_body", "trickle_slow") if p == "http1"
                        else ("reset_body", "tcp_reset_body", "close_half", "goaway_half",
                              "hang_body", "trickle_slow"))
              for f in ("cl", "chunked")]
IDLE_CUT = ("hang_body", "trickle_slow")  # the upstream stays: only the idle timer can cut
TRICKLE = [(p, f) for p in PROTOCOLS for f in ("cl", "chunked")]
RECOVERY = [(p, m) for p in PROTOCOLS for m in ("garbage", "head_no_end")]
H2_CLIENT = [(p, m) for p in PROTOCOLS
             for m in ("reset_head", "garbage", "head_no_end", "reset_body", "close_half",
                       "hang_body", "trickle")]

SLOTS = ([slot(p, "refuse") for p in REFUSED]
         + [slot(p, m, how) for p, m, how in BEFORE_HEAD]
         + [slot(p, m) for p, m in UNFINISHED_HEAD]
         + [slot(p, m, f) for p, m, f in AFTER_HEAD]
         + [slot(p, "trickle", f) for p, f in TRICKLE]
         + [slot(p, "h2c", m) for p, m in H2_CLIENT]
         + [slot(p, "recover", m) for p, m in RECOVERY]
         + [slot(p, "healthy") for p in PROTOCOLS])


@pytest.fixture(scope="module")
def env(module_gateway):
    ups = {name: FaultUpstream(f"f-{name}", http2=name.startswith("http2")) for name in SLOTS}
    try:
        timeouts = {"connect": "1s", "request": "500ms", "idle": "700ms"}
        upstreams = {name: gw.up(u, protocol="http2" if u.http2 else "http1", timeouts=timeouts)
                     for name, u in ups.items()}
        routes = [gw.route(name, {"path_prefix": f"/{name}"}, name) for name in SLOTS]
        g = module_gateway(gw.config(routes, upstreams, listener={"http2": True}))
        yield g, ups
    finally:
        for u in ups.values():
            u.stop()


@pytest.fixture
def fx(env):
    g, ups = env
    yield g, ups
    for u in ups.values():
        u.mode, u.framing = "ok", "cl"
    g.assert_healthy()


# ----- helpers ----------------------------------------------------------------------------------
def assert_ok(resp, name, path):
    assert resp.status == 200, resp
    j = resp.json()
    assert j["path"] == path and j["upstream"] == f"f-{name}", j


def get_ok(g, name):
    path = f"/{name}/fresh-conn/{tag()}"
    assert_ok(rawhttp.exchange(g.port, request_bytes("GET", path), timeout=5 * SLACK), name, path)


def still_serving(g, name, conn=None):
    """The worker serves another upstream of the same protocol; then the next request to the
    faulty upstream (now healthy again) gets a normal 200: on `conn`, the client connection that
    survived the fault, and on a fresh connection."""
    get_ok(g, slot(name.split("-")[0], "healthy"))
    if conn is not None:
        path = f"/{name}/same-conn/{tag()}"
        conn.send(request_bytes("GET", path))
        assert_ok(conn.read_response(timeout=5 * SLACK), name, path)
    get_ok(g, name)
    assert g.alive()


def faulted(u, n0, path):
    return [r for r in u.since(n0) if r.path == path]


def upstream_exchange_abandoned(rec):
    """The gateway gave up on the exchange upstream: closed the connection or reset the stream."""
    return rec.conn.closed_at is not None or rec.peer_reset is not None


def parse_head(raw):
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, f"no complete response head: {raw[:500]!r}"
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    return lines[0], headers, body


def dechunk_partial(data):
    """(the data of the chunks at the start of data, the last one maybe cut short; whether the
    last-chunk came)."""
    out = bytearray()
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return bytes(out), False
        size = int(data[pos:eol].split(b";")[0].strip(), 16)
        if size == 0:
            return bytes(out), True
        out += data[eol + 2:eol + 2 + size]
        if len(data) < eol + 2 + size + 2:
            return bytes(out), False
        pos = eol + 2 + size + 2


def keeps_alive(resp):
    return resp.header("Connection", "").lower() != "close"


# ----- 1. refused ---------------------------------------------------------------------------------
@pytest.mark.parametrize("proto", REFUSED)
def test_refused_is_502(fx, proto):
    """Nothing listens (the listener closed, pooled connections dropped): 502 at once, never the
    connect timeout; listening again on the same port, the same upstream serves."""
    g, ups = fx
    name = slot(proto, "refuse")
    u = ups[name]
    get_ok(g, name)  # a pooled connection, which the refusal closes
    u.mode = "refuse"
    n0 = u.count()
    with RawConn(g.port, timeout=10 * SLACK) as c:
        t0 = time.monotonic()
        c.send(request_bytes("GET", f"/{name}/refused"))
        resp = c.read_response()
        elapsed = time.monotonic() - t0
        assert_error(resp, 502, "bad_upstream")
        assert elapsed < 0.5 * SLACK, elapsed
        assert u.count() == n0
        u.mode = "ok"
        still_serving(g, name, c if keeps_alive(resp) else None)


# ----- 2 and 4. reset before the head, garbage: 502 ----------------------------------------------
@pytest.mark.parametrize("proto,mode,how", BEFORE_HEAD)
def test_fault_before_the_head_is_502(fx, proto, mode, how):
    """reset_head (HTTP/1.1: TCP RST; HTTP/2: RST_STREAM), tcp_reset_head, garbage, on a pooled
    upstream connection ("pooled") or a new one ("fresh"; HTTP/2 garbage then comes instead of
    the server preface): 502 bad_upstream before any timer fires; a GET may be sent once more on
    a fresh connection, never more; the faulty upstream connection is closed (an RST_STREAM
    leaves an HTTP/2 connection usable)."""
    g, ups = fx
    name = slot(proto, mode, how)
    u = ups[name]
    if how == "pooled":
        get_ok(g, name)
    else:
        u.drop_connections()
    t_pool = time.monotonic()
    path = f"/{name}/{tag()}"
    n0 = u.count()
    with RawConn(g.port, timeout=10 * SLACK) as c:
        u.mode = mode
        t0 = time.monotonic()
        c.send(request_bytes("GET", path))
        resp = c.read_response(timeout=REQUEST + 5 * SLACK)
        elapsed = time.monotonic() - t0
        u.mode = "ok"
        recs = faulted(u, n0, path)
        assert_error(resp, 502, "bad_upstream")
        assert elapsed < REQUEST * SLACK, elapsed
        assert 1 <= len(recs) <= 2, recs
        assert all(r.mode == mode for r in recs), recs
        if how == "fresh":
            assert all(r.conn.accepted_at >= t_pool for r in recs), recs
        if mode != "reset_head" or proto == "http1":
            wait_until(lambda: all(r.conn.closed_at for r in recs), 2 * SLACK,
                       message=f"the gateway to close the upstream connection after {mode}")
        still_serving(g, name, c if keeps_alive(resp) else None)


# ----- 5. a head with no end: 504 -----------------------------------------------------------------
@pytest.mark.parametrize("proto,mode", UNFINISHED_HEAD)
def test_unfinished_head_is_504_after_request_timeout(fx, proto, mode):
    """head_no_end: "HTTP/1.1 200 OK\\r\\nX-A: b\\r\\n" then silence / HEADERS without END_HEADERS
    and no CONTINUATION. head_trickle: the head grows by a header line / a CONTINUATION fragment
    every 100 ms and never ends. Either way: 504 upstream_timeout `request` (500 ms) after the
    request went up, not later (bytes of an unfinished head do not restart the timer); the
    exchange is abandoned upstream; the next requests to the same upstream get 200 (HTTP/2: not
    on the connection whose framing is stuck in an unfinished header block)."""
    g, ups = fx
    name = slot(proto, mode)
    u = ups[name]
    path = f"/{name}/{tag()}"
    n0 = u.count()
    with RawConn(g.port, timeout=10 * SLACK) as c:
        u.mode = mode
        t0 = time.monotonic()
        c.send(request_bytes("GET", path))
        resp = c.read_response(timeout=REQUEST + 5 * SLACK)
        t_resp = time.monotonic()
        u.mode = "ok"
        assert_error(resp, 504, "upstream_timeout")
        [rec] = faulted(u, n0, path)
        assert rec.mode == mode
        assert t_resp - rec.time >= REQUEST - EARLY, t_resp - rec.time
        assert t_resp - t0 <= REQUEST + 1.0 * SLACK, t_resp - t0
        wait_until(lambda: upstream_exchange_abandoned(rec), 2 * SLACK,
                   message="the gateway to close the upstream connection or reset the stream")
        still_serving(g, name, c if keeps_alive(resp) else None)


# ----- 3, 6, 7, 8b. cut after the head: never a complete-looking body ----------------------------
@pytest.mark.parametrize("proto,mode,framing", AFTER_HEAD)
def test_fault_after_the_head_cuts_the_client(fx, proto, mode, framing):
    """The 200 head reached the client before the fault, so no error status can follow: the
    client connection is cut. What it got is exactly the body bytes the upstream sent, in a
    framing that says the body is incomplete (the upstream's Content-Length, or chunked without
    its last chunk), never close-delimited. Resets, closes and GOAWAY cut it at once; a body that
    stops (hang_body) or pauses longer than `idle` (trickle_slow) is cut `idle` after the last
    byte, and the upstream exchange is abandoned. framing "chunked": HTTP/1.1 chunked, or HTTP/2
    without content-length."""
    g, ups = fx
    name = slot(proto, mode, framing)
    u = ups[name]
    u.framing = framing
    total = u.trickle_size if mode.startswith("trickle") else SHORT_TOTAL
    path = f"/{name}/{tag()}"
    n0 = u.count()
    with RawConn(g.port, timeout=10 * SLACK) as c:
        u.mode = mode
        c.send(request_bytes("GET", path))
        raw, closed = c.read_until_close(IDLE + 5 * SLACK)
        t_closed = time.monotonic()
    u.mode = "ok"
    assert closed, f"the client was left waiting after {mode}: {raw[:300]!r}"
    [rec] = faulted(u, n0, path)
    status_line, headers, body = parse_head(raw)
    assert status_line.startswith("HTTP/1.1 200 "), raw[:300]
    te = headers.get("transfer-encoding", "").lower()
    assert "content-length" in headers or te == "chunked", \
        f"a close-delimited body looks complete whatever arrived: {headers}"
    assert rawhttp.parse_one(raw, eof=True) is None, \
        f"a truncated body was presented as complete: {raw[:300]!r}"
    if "content-length" in headers:
        assert te == "", headers
        assert int(headers["content-length"]) == total, headers
        data = body
    else:
        data, last_chunk = dechunk_partial(body)
        assert not last_chunk, f"the chunked body was ended: {body[-100:]!r}"
    assert len(data) < total
    assert data == body_bytes(total)[:len(data)], "the body bytes that came are not the upstream's"
    assert len(data) == rec.body_sent, (len(data), rec)
    if mode in IDLE_CUT:
        pause = t_closed - rec.last_send_at
        assert IDLE - EARLY <= pause <= IDLE + 1.0 * SLACK, pause
        wait_until(lambda: upstream_exchange_abandoned(rec), 2 * SLACK,
                   message="the gateway to close the upstream connection or reset the stream")
    else:
        assert t_closed - rec.done_at < IDLE * SLACK, t_closed - rec.done_at
    still_serving(g, name)


# ----- 8a. a trickle within `idle`: the whole body -----------------------------------------------
@pytest.mark.parametrize("proto,framing", TRICKLE)
def test_trickle_within_idle_is_delivered_whole(fx, proto, framing):
    """2 KiB in 128-byte pieces 50 ms apart (0.75 s in all: longer than `request`, every gap far
    under `idle`): 200, the whole body, intact; the client connection stays usable."""
    g, ups = fx
    name = slot(proto, "trickle", framing)
    u = ups[name]
    u.framing = framing
    total = u.trickle_size
    path = f"/{name}/{tag()}"
    n0 = u.count()
    with RawConn(g.port, timeout=10 * SLACK) as c:
        u.mode = "trickle"
        t0 = time.monotonic()
        c.send(request_bytes("GET", path))
        resp = c.read_response(timeout=5 * SLACK)
        elapsed = time.monotonic() - t0
        u.mode = "ok"
        assert resp.status == 200, resp
        assert resp.header("X-Upstream-Name") == f"f-{name}"
        assert hashlib.sha256(resp.body).hexdigest() == \
            hashlib.sha256(body_bytes(total)).hexdigest(), (len(resp.body), resp)
        [rec] = faulted(u, n0, path)
        pieces = -(-total // u.trickle_piece)
        assert elapsed >= (pieces - 1) * u.trickle_gap - EARLY, elapsed
        wait_until(lambda: rec.done_at, 2 * SLACK, message="the upstream to finish the trickle")
        assert rec.peer_reset is None and rec.conn.closed_at is None, rec
        assert keeps_alive(resp), resp
        still_serving(g, name, c)


# ----- recovery, whatever the first answer was ---------------------------------------------------
@pytest.mark.parametrize("proto,mode", RECOVERY)
def test_upstream_serves_again_after_the_fault(fx, proto, mode):
    """After one garbage answer or one unfinished head, and a quiet moment longer than `idle`
    (which empties any pool), the upstream, healthy again, gets every request and answers 200:
    the fault left nothing behind in the gateway. (The other tests assert the first answer.)"""
    g, ups = fx
    name = slot(proto, "recover", mode)
    u = ups[name]
    get_ok(g, name)
    u.mode = mode
    rawhttp.send_and_read_all(g.port, request_bytes("GET", f"/{name}/fault",
                                                    headers=[("Connection", "close")]),
                              timeout=REQUEST + 5 * SLACK)
    u.mode = "ok"
    time.sleep(IDLE + 0.3 * SLACK)
    n0 = u.count()
    statuses = []
    for _ in range(3):
        path = f"/{name}/after/{tag()}"
        resp = rawhttp.exchange(g.port, request_bytes("GET", path), timeout=REQUEST + 5 * SLACK)
        statuses.append((resp.status, resp.json().get("error", {}).get("message")))
    assert statuses == [(200, None)] * 3, (statuses, u.since(n0), u.connections())
    assert [r.mode for r in u.since(n0)] == ["ok"] * 3


# ----- the same faults seen by HTTP/2 clients ----------------------------------------------------
@pytest.mark.parametrize("proto,mode", H2_CLIENT)
def test_h2_client_sees_the_fault_on_its_stream_only(fx, proto, mode):
    """An HTTP/2 client: 502/504 as JSON on the stream; after the head, the stream is reset
    (never END_STREAM on a short body), promptly or `idle` after the last byte; a trickle arrives
    whole. The client connection keeps serving: another stream on it gets a 200."""
    g, ups = fx
    name = slot(proto, "h2c", mode)
    u = ups[name]
    path = f"/{name}/{tag()}"
    n0 = u.count()
    with H2Client(g.port, timeout=10 * SLACK) as c:
        u.mode = mode
        t0 = time.monotonic()
        sid = c.request("GET", path)
        try:
            st = c.response(sid, timeout=IDLE + 5 * SLACK)
        except Closed:
            st = c.streams[sid]
        t_end = time.monotonic()
        u.mode = "ok"
        recs = faulted(u, n0, path)
        assert recs, "the request did not reach the upstream"
        rec = recs[-1]
        if mode in ("reset_head", "garbage"):
            assert_error(st, 502, "bad_upstream")
            assert t_end - t0 < REQUEST * SLACK, t_end - t0
        elif mode == "head_no_end":
            assert_error(st, 504, "upstream_timeout")
            assert t_end - rec.time >= REQUEST - EARLY, t_end - rec.time
            assert t_end - t0 <= REQUEST + 1.0 * SLACK, t_end - t0
        elif mode == "trickle":
            assert st.status == 200 and st.ended, st
            assert st.body_sha256 == hashlib.sha256(body_bytes(u.trickle_size)).hexdigest()
        else:
            assert st.status == 200, st
            assert not st.ended, f"a truncated body ended with END_STREAM: {st!r}"
            assert st.reset is not None or c.closed, st
            assert st.header("content-length") == str(SHORT_TOTAL), st.headers
            assert st.body_len < SHORT_TOTAL and st.body_len == rec.body_sent, (st, rec)
            assert bytes(st.body) == body_bytes(SHORT_TOTAL)[:st.body_len]
            if mode == "hang_body":
                pause = t_end - rec.last_send_at
                assert IDLE - EARLY <= pause <= IDLE + 1.0 * SLACK, pause
            else:
                assert t_end - rec.done_at < IDLE * SLACK, t_end - rec.done_at
        assert not c.closed, f"the client connection was closed: {c.close_reason} {c.goaway}"
        path2 = f"/{name}/h2c-after/{tag()}"
        st2 = c.response(c.request("GET", path2), timeout=REQUEST + 5 * SLACK)
        assert st2.status == 200, st2
        j = json.loads(bytes(st2.body))
        assert j["path"] == path2 and j["upstream"] == f"f-{name}", j
    still_serving(g, name)


def test_gateway_survived_the_matrix(env):
    """Last: the process is alive, ready, and no upstream saw a protocol error from it."""
    g, ups = env
    g.assert_healthy()
    status, body = g.admin("GET", "/readyz")
    assert status == 200, body
    for u in ups.values():
        assert u.errors == [], (u.name, u.errors)
