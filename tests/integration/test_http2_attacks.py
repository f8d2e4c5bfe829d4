"""HTTP/2 abuse: rapid reset, CONTINUATION flood, HPACK bomb, oversized header lists, SETTINGS
and PING floods, streams over the advertised limit, zero-window stalls.

Each test starts its own gateway (workers: 1), attacks it from one connection and checks that
(a) a well-behaved client on another connection (curl --http2-prior-knowledge) is served with
200 during and after the attack, (b) the gateway's memory stays bounded (peak RSS under a bound
on release builds; growth under a larger bound with sanitizers), (c) an abusive connection ends
with GOAWAY or is closed, and the gateway is still alive and healthy.
"""
import subprocess
import threading
import time

import pytest

from support import gateway as gw
from support import h2client
from support.h2client import H2Client
from support.util import SANITIZED, SLACK, proc_status_kib, wait_until

MiB = 1 << 20
# Peak RSS of the whole process on a release build; with sanitizers (shadow memory, quarantine)
# only the growth over the baseline is bounded, and more loosely.
RSS_LIMIT_MIB = 150
SANITIZED_GROWTH_MIB = 600


# ----- harness -----------------------------------------------------------------------------------
def probe(port, path="/probe/ok", timeout=5.0):
    """One well-behaved HTTP/2 request on its own connection: (http code, http version)."""
    t = int(timeout * SLACK)
    try:
        p = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--max-time", str(t),
                            "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                            f"http://127.0.0.1:{port}{path}"],
                           capture_output=True, timeout=t + 5)
    except subprocess.TimeoutExpired:
        return ("timeout", None)
    parts = p.stdout.decode().split()
    if p.returncode != 0 or len(parts) != 2:
        return (f"curl rc={p.returncode} {p.stderr.decode()[-200:]}", None)
    return (int(parts[0]), parts[1])


class Watch:
    """While the attack runs: a prober thread (curl every ~100 ms) and an RSS sampler."""

    def __init__(self, g):
        self.g = g
        self.results = []
        self.stop = threading.Event()
        self.base_rss = proc_status_kib(g.pid, "VmRSS") // 1024
        self.max_rss = self.base_rss
        self.t_probe = threading.Thread(target=self._probe_loop, daemon=True)
        self.t_rss = threading.Thread(target=self._rss_loop, daemon=True)

    def _probe_loop(self):
        while not self.stop.is_set():
            self.results.append(probe(self.g.port))
            self.stop.wait(0.1)

    def _rss_loop(self):
        while not self.stop.is_set():
            try:
                self.max_rss = max(self.max_rss, proc_status_kib(self.g.pid, "VmRSS") // 1024)
            except (OSError, KeyError):
                return
            self.stop.wait(0.02)

    def __enter__(self):
        assert probe(self.g.port) == (200, "2"), "the gateway does not serve HTTP/2 at all"
        self.t_probe.start()
        self.t_rss.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t_probe.join(30 * SLACK)
        self.t_rss.join(5)

    def check(self, after=True):
        """(a), (b) and the process part of (c)."""
        self.g.assert_healthy()
        if after:
            final = probe(self.g.port, "/probe/after")
            assert final == (200, "2"), f"not served after the attack: {final}"
        bad = [r for r in self.results if r != (200, "2")]
        assert not bad, f"well-behaved client not served during the attack: {bad[:5]} " \
                        f"of {len(self.results)} probes"
        assert self.results, "no probe ran during the attack"
        self.check_memory()

    def check_memory(self):
        try:
            self.max_rss = max(self.max_rss, proc_status_kib(self.g.pid, "VmRSS") // 1024)
            hwm = proc_status_kib(self.g.pid, "VmHWM") // 1024
        except (OSError, KeyError):
            hwm = self.max_rss
        if SANITIZED:
            grow = self.max_rss - self.base_rss
            assert grow < SANITIZED_GROWTH_MIB, \
                f"RSS grew by {grow} MiB during the attack (from {self.base_rss} MiB)"
        else:
            peak = max(hwm, self.max_rss)
            assert peak < RSS_LIMIT_MIB, f"peak RSS {peak} MiB >= {RSS_LIMIT_MIB} MiB"


def assert_ended(c, timeout, what):
    """(c): the attacking connection got GOAWAY or was closed."""
    end = c.wait_end(timeout * SLACK)
    assert end is not None, f"{what}: the attacking connection is still open (no GOAWAY, " \
                            f"not closed) {timeout * SLACK}s after the attack"
    return end


def attack_gateway(gateway, upstreams, limits=None, listener_extra=None, request_timeout="30s"):
    """A gateway with workers: 1, HTTP/2 on; /probe -> upstream "probe", the rest -> "target"."""
    probe_up, target = upstreams("probe"), upstreams("target")
    routes = [gw.route("probe", {"path_prefix": "/probe"}, "probe"),
              gw.route("all", {"path_prefix": "/"}, "target")]
    ups = {"probe": gw.up(probe_up),
           "target": gw.up(target, timeouts={"request": request_timeout})}
    listener = {"http2": True}
    listener.update(listener_extra or {})
    lim = {"max_body_bytes": "1GiB"}
    lim.update(limits or {})
    g = gateway(gw.config(routes, ups, limits=lim, listener=listener, workers=1,
                          access_log={"path": "off"}))
    return g, target


# ----- rapid reset (CVE-2023-44487) --------------------------------------------------------------
def test_rapid_reset(gateway, upstreams):
    g, target = attack_gateway(gateway, upstreams)
    pairs = 10000
    with Watch(g) as w:
        c = H2Client(g.port, timeout=10 * SLACK)
        with c:
            c.wait_settings()
            sent = 0
            batch = []
            for i in range(pairs):
                sid = c.new_sid()
                block = c.encode(c.request_headers("GET", "/rr/x"))
                batch.append(h2client.headers_frame(sid, block, end_stream=True))
                batch.append(h2client.rst_frame(sid, h2client.CANCEL))
                if len(batch) >= 400:
                    if not c.try_send(b"".join(batch)):
                        break
                    sent += len(batch) // 2
                    batch = []
            else:
                if batch and c.try_send(b"".join(batch)):
                    sent += len(batch) // 2
            end = assert_ended(c, 10, f"rapid reset ({sent} pairs sent)")
        time.sleep(0.5)  # anything still in flight towards the upstream
    seen = sum(1 for r in target.snapshot() if r.path == "/rr/x")
    assert seen < 1000, f"the upstream saw {seen} of {pairs} reset requests (end: {end})"
    w.check()


# ----- CONTINUATION flood --------------------------------------------------------------------------
def _literal(name, value):
    """A never-indexed literal header field with a literal name (no Huffman): no table change."""
    assert len(name) < 127 and len(value) < 127
    return b"\x10" + bytes([len(name)]) + name + bytes([len(value)]) + value


def test_continuation_flood(gateway, upstreams):
    g, target = attack_gateway(gateway, upstreams)
    unit = _literal(b"x-flood", b"a" * 100)
    piece = unit * (16000 // len(unit))
    cont = h2client.continuation_frame(1, piece, end_headers=False)
    total_limit = 64 * MiB
    with Watch(g) as w:
        c = H2Client(g.port, timeout=5 * SLACK)
        with c:
            c.wait_settings()
            head = c.encode(c.request_headers("GET", "/cont/x"))
            c.send(h2client.headers_frame(1, head, end_stream=True, end_headers=False))
            sent = 0
            burst = cont * 32
            t0 = time.monotonic()
            while sent < total_limit and time.monotonic() - t0 < 30 * SLACK:
                if not c.try_send(burst):
                    break
                sent += len(burst)
            took = time.monotonic() - t0
            end = assert_ended(c, 5, f"CONTINUATION flood ({sent >> 20} MiB sent)")
    assert not [r for r in target.snapshot() if r.path == "/cont/x"], \
        "a request whose header block never ended reached the upstream"
    assert sent < total_limit, f"the gateway accepted {sent >> 20} MiB of CONTINUATION frames " \
                               f"for one header block in {took:.2f}s (end: {end}, " \
                               f"probes during the attack: {len(w.results)})"
    w.check()


# ----- HPACK bomb ------------------------------------------------------------------------------------
def test_hpack_bomb(gateway, upstreams):
    """One 4000-byte header inserted in the dynamic table, then referenced 65536 times (one
    byte each): 64 KiB on the wire, 256 MiB decoded, per stream."""
    g, target = attack_gateway(gateway, upstreams)
    refs = 65536
    with Watch(g) as w:
        c = H2Client(g.port, timeout=10 * SLACK)
        with c:
            c.wait_settings()
            outcomes = []
            for i in range(5):
                sid = c.new_sid()
                hdrs = c.request_headers("GET", f"/bomb/{i}") + [("x-bomb", "v" * 4000)]
                block = c.encode(hdrs, huffman=False) + b"\xbe" * refs  # index 62: x-bomb
                limit = c.peer_max_frame
                frames = [h2client.headers_frame(sid, block[:limit], end_stream=True,
                                                 end_headers=False)]
                for pos in range(limit, len(block), limit):
                    frames.append(h2client.continuation_frame(
                        sid, block[pos:pos + limit], end_headers=pos + limit >= len(block)))
                c._register(sid)  # noqa: SLF001
                if not c.try_send(b"".join(frames)):
                    break
                try:
                    c.wait(lambda: c.streams[sid].done or c.goaway is not None,
                           10 * SLACK, f"the bomb on stream {sid} to be answered")
                except h2client.Closed:
                    break
                st = c.streams[sid]
                outcomes.append((st.status, st.reset))
                if c.goaway is not None:
                    break
                assert st.reset is not None or st.status in (400, 431), \
                    f"a 256 MiB header list was not refused: {st!r}"
            if not c.closed and c.goaway is None:
                # The connection survived: its HPACK state must still be in sync.
                st = c.response(c.request("GET", "/probe/same-connection"))
                assert st.status == 200, st
    assert not [r for r in target.snapshot() if r.path.startswith("/bomb/")], \
        "a request with a 256 MiB header list reached the upstream"
    w.check()


# ----- oversized header list ----------------------------------------------------------------------
@pytest.mark.parametrize("total", [40 * 1024, 33 * 1024, 1024 * 1024])
def test_oversized_header_list(gateway, upstreams, total):
    g, target = attack_gateway(gateway, upstreams)  # max_header_bytes: default 32 KiB
    with Watch(g) as w:
        with H2Client(g.port, timeout=10 * SLACK) as c:
            c.wait_settings()
            n = total // 1000
            hdrs = [(f"x-big-{i}", f"{i:04d}" + "b" * 990) for i in range(n)]
            try:
                sid = c.request("GET", "/big-headers/x", headers=hdrs)
                c.wait(lambda: c.streams[sid].done or c.goaway is not None, 10 * SLACK,
                       "an answer to the oversized header list")
                st = c.streams[sid]
                assert st.reset is not None or st.status == 431 or c.goaway is not None, st
                if st.status == 431:
                    err = st.json()["error"]
                    assert err["code"] == "headers_too_large", err
            except h2client.Closed:
                pass  # closing the connection is an acceptable answer too
            # Just under the limit is served (on this connection if it survived).
            ok_hdrs = [(f"x-ok-{i}", "c" * 990) for i in range(20)]
            st = None
            if not c.closed and c.goaway is None:
                try:
                    st = c.response(c.request("GET", "/big-headers/ok", headers=ok_hdrs))
                except h2client.Closed:
                    pass  # the connection error came a little later: that is fine too
            if st is None:
                with H2Client(g.port) as c2:
                    st = c2.response(c2.request("GET", "/big-headers/ok", headers=ok_hdrs))
            assert st.status == 200, st
    assert [r.path for r in target.snapshot()] == ["/big-headers/ok"]
    w.check()


# ----- SETTINGS and PING floods ----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["settings", "ping"])
def test_control_frame_flood_without_reading(gateway, upstreams, kind):
    """100k SETTINGS (each wants an ACK) or PING frames in a burst, never reading the answers
    (a tiny receive buffer). The gateway must not queue answers without bound, and must end the
    connection promptly (flood detection), not keep serving it until the 60 s idle timeout."""
    g, target = attack_gateway(gateway, upstreams)
    if kind == "settings":
        frame = h2client.settings_frame({h2client.INITIAL_WINDOW_SIZE: 65535,
                                         h2client.MAX_HEADER_LIST_SIZE: 65536})
    else:
        frame = h2client.ping_frame(b"floodflo")
    count = 100000
    batch = frame * 1000
    with Watch(g) as w:
        c = H2Client(g.port, timeout=3 * SLACK, rcvbuf=4096, auto_ack=False)
        with c:
            sent = 0
            while sent < count:
                if not c.try_send(batch):
                    break
                sent += 1000
            time.sleep(1.0)  # still not reading
            closed = c.drain_until_closed(10 * SLACK)
            assert closed, f"{kind} flood: {sent} frames sent, the connection is still open " \
                           f"{10 * SLACK + 1}s later (goaway: {c.goaway})"
    w.check()


# ----- too many concurrent streams ------------------------------------------------------------------
@pytest.mark.parametrize("ack_first", [True, False], ids=["after-settings-ack",
                                                           "before-settings-ack"])
def test_streams_over_max_concurrent_are_refused(gateway, upstreams, ack_first):
    """15 streams at once against an advertised limit of 10: RFC 9113 §5.1.2 makes the excess a
    *stream* error (REFUSED_STREAM or PROTOCOL_ERROR); the first 10 are served and the
    connection stays usable. Both when the client has acknowledged the server's SETTINGS (the
    limit is then in force) and when it opens the streams right after its preface."""
    g, target = attack_gateway(gateway, upstreams,
                               limits={"http2_max_concurrent_streams": 10})
    with Watch(g) as w:
        with H2Client(g.port, timeout=15 * SLACK) as c:
            if ack_first:
                c.wait_settings()   # and ACKs it
                c.read_some(0.2)    # our ACK has arrived
            sids = [c.new_sid() for _ in range(15)]
            out = b"".join(h2client.headers_frame(
                sid, c.encode(c.request_headers("GET", f"/slow/1500/{i}")), end_stream=True)
                for i, sid in enumerate(sids))
            for sid in sids:
                c._register(sid)  # noqa: SLF001
            c.send(out)
            try:
                c.wait(lambda: all(c.streams[sid].done for sid in sids) or c.goaway is not None,
                       20 * SLACK, "all 15 streams to finish")
            except h2client.Closed:
                pass
            assert c.server_settings.get(h2client.MAX_CONCURRENT_STREAMS) == 10, \
                c.server_settings
            if c.goaway is not None:
                # For the report: are the streams under the limit still served after it?
                try:
                    c.wait(lambda: all(c.streams[sid].done for sid in sids[:10]), 5 * SLACK)
                except (AssertionError, h2client.Closed):
                    pass
            assert c.goaway is None and not c.closed, \
                f"the connection was ended (goaway {c.goaway}, closed {c.closed}) instead of " \
                f"refusing the streams over the limit: {[c.streams[s] for s in sids]}"
            served = [sid for sid in sids if c.streams[sid].status == 200]
            refused = [sid for sid in sids if c.streams[sid].reset in
                       (h2client.REFUSED_STREAM, h2client.PROTOCOL_ERROR)]
            assert served == sids[:10], [c.streams[s] for s in sids]
            assert refused == sids[10:], [c.streams[s] for s in sids]
            # The connection is still usable.
            assert c.response(c.request("GET", "/probe/after-refused")).status == 200
    paths = sorted(r.path for r in target.snapshot())
    assert paths == sorted(f"/slow/1500/{i}" for i in range(10)), paths
    w.check()


def test_streams_over_the_worker_budget_are_refused(gateway, upstreams):
    """Review M4: streams are counted per worker, not only per connection, so many connections
    cannot multiply the per-connection limit. A budget of 6 streams per worker, two connections
    of 4 slow streams each: the first connection's 4 and the second's first 2 are served, the
    last 2 are refused with REFUSED_STREAM, and both connections stay usable; once the slow ones
    are done, the budget is free again."""
    g, target = attack_gateway(gateway, upstreams,
                               limits={"http2_max_concurrent_streams": 10,
                                       "http2_max_streams_per_worker": 6})
    # No Watch here: its probes would share the budget that this test fills.
    with H2Client(g.port, timeout=15 * SLACK) as a, H2Client(g.port, timeout=15 * SLACK) as b:
        a.wait_settings()
        b.wait_settings()
        first = [a.request("GET", f"/slow/1500/a{i}") for i in range(4)]
        wait_until(lambda: target.count() >= 4, 5 * SLACK, message="a's 4 streams upstream")
        second = [b.request("GET", f"/slow/1500/b{i}") for i in range(4)]
        responses = [b.response(sid) for sid in second[:2]] + \
                    [a.response(sid) for sid in first]
        assert all(r.status == 200 for r in responses), responses
        refused = [b.streams[sid] for sid in second[2:]]
        assert all(st.reset == h2client.REFUSED_STREAM for st in refused), refused
        assert a.goaway is None and b.goaway is None
        # The budget is free again: both connections are served.
        assert a.response(a.request("GET", "/probe/after-a")).status == 200
        assert b.response(b.request("GET", "/probe/after-b")).status == 200
    paths = sorted(r.path for r in target.snapshot())
    assert paths == sorted([f"/slow/1500/a{i}" for i in range(4)] +
                           [f"/slow/1500/b{i}" for i in range(2)]), paths
    g.assert_healthy()


def test_many_streams_opened_and_closed_over_time_are_fine(gateway, upstreams):
    """Not an attack: 2000 sequential streams, 10 at a time, all served, connection kept."""
    g, target = attack_gateway(gateway, upstreams,
                               limits={"http2_max_concurrent_streams": 10})
    with H2Client(g.port, timeout=15 * SLACK) as c:
        c.wait_settings()
        for round_ in range(200):
            sids = [c.request("GET", f"/seq/{round_}/{i}") for i in range(10)]
            for sid in sids:
                assert c.response(sid).status == 200
        assert c.goaway is None
    assert target.count() == 2000


# ----- zero-window stall ------------------------------------------------------------------------------
def test_zero_window_stall(gateway, upstreams):
    """The client advertises a 0 initial window and asks for 200 MiB: the gateway must not read
    the whole body into memory, and frees the stream after idle_timeout (2 s)."""
    g, target = attack_gateway(gateway, upstreams, limits={"idle_timeout": "2s"})
    size = 200 * MiB
    with Watch(g) as w:
        with H2Client(g.port, timeout=10 * SLACK, auto_window=False,
                      settings={h2client.INITIAL_WINDOW_SIZE: 0}) as c:
            c.wait_settings()
            c.read_some(0.2)
            t0 = time.monotonic()
            sid = c.request("GET", f"/bytes/{size}")
            st = c.streams[sid]
            c.wait(lambda: st.headers is not None or st.done or c.goaway is not None,
                   10 * SLACK, "the response head (HEADERS are not flow-controlled)")
            assert st.status in (200, None), st
            # Nothing to send without window: wait for the stream to be reset or the connection
            # to end, about idle_timeout later.
            try:
                c.wait(lambda: st.done or c.goaway is not None, 15 * SLACK,
                       "the stalled stream to be freed")
            except h2client.Closed:
                pass
            elapsed = time.monotonic() - t0
            assert st.body_len == 0, st
            assert not st.ended, st
            assert elapsed >= 1.5, f"freed after {elapsed:.1f}s, before the 2s idle timeout"
        # The upstream connection serving the stalled body is released too.
        wait_until(lambda: target.open_connections == 0, 10 * SLACK,
                   message="the gateway to release the stalled upstream connection")
    w.check()
    rec = [r for r in target.snapshot() if r.path == f"/bytes/{size}"]
    assert len(rec) == 1


# ----- sanity: the harness itself ---------------------------------------------------------------------
def test_well_behaved_connection_is_not_mistaken_for_an_attack(gateway, upstreams):
    """Pings, settings and resets at a normal pace keep the connection open."""
    g, target = attack_gateway(gateway, upstreams)
    with H2Client(g.port, timeout=10 * SLACK) as c:
        c.wait_settings()
        for i in range(20):
            c.ping(f"ping{i:04d}".encode())
            sid = c.request("GET", f"/slow/5000/{i}") if i % 2 else c.request("GET", f"/ok/{i}")
            if i % 2:
                time.sleep(0.05)
                c.rst(sid)
            else:
                assert c.response(sid).status == 200
        c.wait(lambda: c.pings_acked == 20, message="20 PING ACKs")
        assert c.goaway is None and not c.closed
