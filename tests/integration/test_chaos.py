"""Seeded chaos on one worker: aborted exchanges at every point, interleaved with probes whose
answers are known (REVIEW-2026-12.md C1, and whatever else such sequences shake loose).

With workers: 1 every connection and HTTP/2 stream is served by a Session taken from one LIFO free
list, so whatever an aborted exchange leaves behind is met by the very next client. The steps:

  aborts  HTTP/1.1 FIN or RST during the request line, the headers, the body, the wait for the
          upstream, the response; connections abandoned mid-head or mid-body (the gateway's
          header and idle timers end them); HTTP/2 RST_STREAM (at once, mid-body, while the
          upstream thinks, mid-response), GOAWAY, a dropped connection, a header block that
          never ends; a TLS handshake cut (part of the ClientHello, no Finished) or a TLS
          connection cut mid-request;
  probes  public requests, requests authenticated as alice or bob (API key or JWT), a request
          without credentials (401), early errors (400 parse, 400 bad path, 408, 414, 431) over
          HTTP/1.1, HTTP/2 (a new connection or one shared with the aborts) and TLS.

After every step: the process is up; the public upstream never saw an identity header; each
request the private upstream saw carries exactly the identity of the credential it was sent
with (never another consumer's, never one on an anonymous request); every probe got its status;
the gateway's VmRSS stays below its value after warm-up + 64 MiB (more with sanitizers).

Runs 30 s on a release build, about 8 s with PORTICO_SANITIZED=1 (PORTICO_CHAOS_SECONDS
overrides). The seed comes from PORTICO_CHAOS_SEED or is random; a failure prints it with the
last 50 steps, and the same seed replays the same sequence of decisions.
"""
import collections
import os
import random
import socket
import ssl
import time
import uuid

import pytest

from support import aborts
from support import certs
from support import gateway as gw
from support import h2client
from support import rawhttp
from support.aborts import credentials, expected_identity
from support.rawhttp import RawConn, request_bytes
from support.util import SANITIZED, SLACK, free_port, proc_status_kib

DURATION_S = float(os.environ.get("PORTICO_CHAOS_SECONDS") or (8.0 if SANITIZED else 30.0))
RSS_BUDGET_MIB = 256 if SANITIZED else 64
MAX_STEPS = 20000
MAX_ABANDONED = 16
MAX_PENDING_408 = 2
WHO = ("alice", "bob")
AUTHS = ("key", "jwt")
PROBE_KINDS = ("h1", "h2-new", "h2-shared", "tls-h1", "tls-h2")


def chaos_config(pub, priv, cert):
    limits = dict(aborts.EARLY_LIMITS, idle_timeout="3s", max_body_bytes="8MiB")
    strip = {"strip_prefix": True}
    routes = [
        gw.route("public", {"path_prefix": "/public"}, "pub", rewrite=strip),
        gw.route("private", {"path_prefix": "/private"}, "priv", auth=["keys", "jwt"],
                 rewrite=strip),
        gw.route("hello", {"path_prefix": "/hello"}, "echo"),
    ]
    tls_listener = {"name": "tls", "address": "127.0.0.1:@TLS@", "http2": True,
                    "tls": {"certificates": [{"cert": cert.cert, "key": cert.key}]},
                    "limits": limits}
    return gw.config(routes, {"pub": gw.up(pub), "priv": gw.up(priv),
                              "echo": {"builtin": "echo"}},
                     limits=limits, listener={"http2": True}, extra_listeners=[tls_listener],
                     workers=1, auth_providers=aborts.AUTH_PROVIDERS, consumers=aborts.CONSUMERS)


def tag_of(path):
    """The tag value in a path made with Chaos.tag()."""
    return path.split("tag=", 1)[1].split("&", 1)[0]


def query_fields(rec):
    out = {}
    for part in rec.query.split("&"):
        k, _, v = part.partition("=")
        out[k] = v
    return out


class Chaos:
    def __init__(self, g, pub, priv, tls_port, ca, seed):
        self.g, self.pub, self.priv = g, pub, priv
        self.port, self.tls_port = g.port, tls_port
        self.seed = seed
        self.rng = random.Random(seed)
        self.history = collections.deque(maxlen=50)
        self.counts = collections.Counter()
        self.step_no = 0
        self.abandoned = []      # (close at step, how, socket-like, what)
        self.pending_408 = []    # (RawConn, started, step)
        self.shared = None       # an HTTP/2 connection used by aborts and probes alike
        self.shared_used = 0.0
        self.seen = {"pub": 0, "priv": 0}
        self.rss_start = None
        self.rss_max = 0
        self.ctx = {}
        for alpn in ("http/1.1", "h2", None):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(ca.cert)
            ctx.check_hostname = True
            if alpn:
                ctx.set_alpn_protocols([alpn])
            self.ctx[alpn] = ctx
        self.steps = [
            # (weight, name, function)
            (16, "h1-cut", self.h1_cut),
            (4, "h1-abandon", self.h1_abandon),
            (10, "h2-rst-stream", self.h2_rst_stream),
            (3, "h2-rst-mid-response", self.h2_rst_mid_response),
            (4, "h2-goaway", lambda: self.h2_end_connection(goaway=True)),
            (4, "h2-drop", lambda: self.h2_end_connection(goaway=False)),
            (3, "h2-unfinished-headers", self.h2_unfinished_headers),
            (5, "tls-cut", self.tls_cut),
            (10, "probe-public", self.probe_public),
            (10, "probe-private", self.probe_private),
            (3, "probe-unauthenticated", self.probe_unauthenticated),
            (8, "probe-early-h1", self.probe_early_h1),
            (5, "probe-early-h2", self.probe_early_h2),
            (2, "probe-408", self.probe_408),
        ]
        self.weights = [w for w, _, _ in self.steps]

    # ----- bookkeeping ----------------------------------------------------------------------------
    def note(self, text):
        self.history.append(f"#{self.step_no} {text}")

    def tag(self, who="anon", auth="none"):
        return f"tag=s{self.step_no}-{uuid.uuid4().hex[:6]}&c={who}&a={auth}"

    def report(self, exc):
        state = aborts.exit_description(self.g)
        steps = "\n".join(self.history)
        return (f"chaos failure at step {self.step_no} after {self.counts.total()} steps "
                f"(seed {self.seed}; replay with PORTICO_CHAOS_SEED={self.seed}); gateway "
                f"{state}:\n  {type(exc).__name__}: {exc}\nthe last {len(self.history)} steps:\n"
                f"{steps}\nsteps by kind: {dict(self.counts)}")

    def target(self, point=None):
        """(path prefix, who, auth) of a random route: public, private as alice/bob, or echo."""
        route = self.rng.choice(["public", "private", "private", "hello"])
        if route == "hello" and point in ("waiting-upstream", "response"):
            route = "public"
        if route == "private":
            return "/private", self.rng.choice(WHO), self.rng.choice(AUTHS)
        return f"/{route}", "anon", "none"

    def suffix(self, point):
        if point == "waiting-upstream":
            return f"/slow/{self.rng.choice([300, 700, 1500])}"
        if point == "response":
            return f"/bytes/{self.rng.choice([256 << 10, 1 << 20, 4 << 20])}"
        return f"/{self.rng.choice(['x', 'upload', 'a/b'])}"

    def upstream_of(self, prefix):
        return self.priv if prefix == "/private" else self.pub

    # ----- connections ----------------------------------------------------------------------------
    def h2_shared(self):
        """The shared HTTP/2 connection; renewed when it ended or idled near the idle timeout."""
        c = self.shared
        if c is None or c.closed or c.goaway is not None or \
                time.monotonic() - self.shared_used > 1.0:
            if c is not None:
                c.close()
            c = self.shared = aborts.h2_connect(self.port)
        self.shared_used = time.monotonic()
        return c

    def tls_socket(self, alpn):
        raw = socket.create_connection(("127.0.0.1", self.tls_port), timeout=5 * SLACK)
        try:
            return self.ctx[alpn].wrap_socket(raw, server_hostname="localhost")
        except BaseException:
            raw.close()
            raise

    def abandon(self, sock, how, what):
        self.abandoned.append((self.step_no + self.rng.randint(1, 30), how, sock, what))
        while len(self.abandoned) > MAX_ABANDONED:
            _, how0, s0, _ = self.abandoned.pop(0)
            aborts.cut(s0, how0)

    def close_due(self, final=False):
        keep = []
        for item in self.abandoned:
            at, how, sock, what = item
            if final or at <= self.step_no:
                aborts.cut(sock, how)
            else:
                keep.append(item)
        self.abandoned = keep

    # ----- requests (probes) ----------------------------------------------------------------------
    def request(self, kind, method, path, headers=(), body=None):
        """One request: (status, header getter, body bytes). Raises on no answer."""
        headers = list(headers)
        if kind in ("h1", "tls-h1"):
            data = request_bytes(method, path, host="chaos", headers=headers, body=body or b"")
            if kind == "h1":
                r = rawhttp.exchange(self.port, data, method, timeout=5 * SLACK)
            else:
                with RawConn.from_socket(self.tls_socket("http/1.1"), 5 * SLACK) as c:
                    c.send(data)
                    r = c.read_response(method)
            return r.status, r.header, r.body
        h2_headers = [(k.lower(), v) for k, v in headers]
        if kind == "h2-shared":
            c = self.h2_shared()
            st = c.response(c.request(method, path, headers=h2_headers, body=body),
                            timeout=5 * SLACK)
        else:
            tls = self.ctx["h2"] if kind == "tls-h2" else None
            port = self.tls_port if tls else self.port
            with aborts.h2_connect(port, tls=tls, server_hostname="localhost") as c:
                if tls:
                    assert c.alpn == "h2", f"ALPN gave {c.alpn!r}"
                st = c.response(c.request(method, path, headers=h2_headers, body=body),
                                timeout=5 * SLACK)
        return st.status, st.header, bytes(st.body)

    def probe_public(self):
        kind = self.rng.choice(PROBE_KINDS)
        path = f"/public/probe?{self.tag()}"
        self.note(f"probe public over {kind}: GET {path}")
        status, header, _ = self.request(kind, "GET", path)
        assert status == 200, f"public probe over {kind}: status {status}"
        rec = aborts.wait_record(self.pub, tag_of(path))
        leaked = aborts.identity_headers(rec)
        assert not leaked, f"public probe over {kind} reached the upstream with {leaked}"

    def probe_private(self):
        kind = self.rng.choice(PROBE_KINDS)
        who, auth = self.rng.choice(WHO), self.rng.choice(AUTHS)
        path = f"/private/probe?{self.tag(who, auth)}"
        self.note(f"probe private as {who} ({auth}) over {kind}: GET {path}")
        status, _, _ = self.request(kind, "GET", path, credentials(auth, who))
        assert status == 200, f"private probe as {who} over {kind}: status {status}"
        rec = aborts.wait_record(self.priv, tag_of(path))
        got = {k.lower(): v for k, v in aborts.identity_headers(rec)}
        assert got == expected_identity(auth, who), \
            f"private probe as {who} ({auth}) over {kind} reached the upstream with {got}"

    def probe_unauthenticated(self):
        kind = self.rng.choice(PROBE_KINDS)
        path = f"/private/anon?{self.tag()}"
        self.note(f"probe without credentials over {kind}: GET {path}")
        status, header, body = self.request(kind, "GET", path)
        assert status == 401, f"request without credentials over {kind}: status {status}"
        assert aborts.find_record(self.priv, tag_of(path)) is None, \
            "a request without credentials reached the private upstream"

    def probe_early_h1(self):
        kind = self.rng.choice(["400-parse", "400-fields", "400-bad-path", "414", "431"])
        tls = self.rng.random() < 0.2
        self.note(f"probe {kind} over HTTP/1.1{' (TLS)' if tls else ''}")
        if not tls:
            resp, raw, _ = aborts.h1_early_error(self.port, kind)
        else:
            with RawConn.from_socket(self.tls_socket("http/1.1"), 5 * SLACK) as c:
                try:
                    c.send(aborts.H1_EARLY[kind][0])
                    c.read_until_close()
                except OSError:  # ssl.SSLError included: a close without close_notify
                    pass
                raw = c.buf
            got = rawhttp.parse_all(raw)
            resp = got[0] if got else None
        if resp is None:
            aborts.settle(self.g)
        aborts.check_h1_early(resp, raw, kind)

    def probe_early_h2(self):
        kind = self.rng.choice(aborts.H2_EARLY_CLASSES)
        where = self.rng.choice(["shared", "new"])
        self.note(f"probe {kind} over HTTP/2 ({where} connection)")
        if where == "shared":
            st = aborts.h2_early_error(self.h2_shared(), kind)
        else:
            with aborts.h2_connect(self.port) as c:
                st = aborts.h2_early_error(c, kind)
        aborts.check_h2_early(st, kind)

    def probe_408(self):
        self.note("probe 408: a head that never ends (checked in later steps)")
        if len(self.pending_408) >= MAX_PENDING_408:
            # Wait for the oldest rather than choose another step: the sequence of decisions
            # must not depend on timing, so that a seed replays.
            self.check_408s(wait=True, only_first=True)
        c = RawConn(self.port, timeout=5 * SLACK)
        c.send(aborts.H1_EARLY["408"][0])
        self.pending_408.append((c, time.monotonic(), self.step_no))
        return None

    def check_408s(self, wait=False, only_first=False):
        keep = []
        limit = aborts.HEADER_TIMEOUT_S + 3 * SLACK
        for i, (c, started, step) in enumerate(self.pending_408):
            waiting = wait and (i == 0 or not only_first)
            left = max(0.0, started + limit - time.monotonic()) if waiting else 0.001
            raw, closed = c.read_until_close(left)
            if not closed:
                assert time.monotonic() - started < limit, \
                    f"the 408 probe of step {step} got no answer within {limit:.1f}s: {raw[:200]!r}"
                keep.append((c, started, step))
                continue
            c.close()
            got = rawhttp.parse_all(raw)
            aborts.check_h1_early(got[0] if got else None, raw, "408")
        self.pending_408 = keep

    # ----- aborts: HTTP/1.1 -----------------------------------------------------------------------
    def h1_head(self, point):
        prefix, who, auth = self.target(point)
        path = prefix + self.suffix(point) + "?" + self.tag(who, auth)
        headers = credentials(auth, who) if who != "anon" else []
        body_len = 0
        if point == "body":
            body_len = self.rng.choice([10, 5000, 200000])
            headers = headers + [("Content-Length", str(body_len))]
        data = request_bytes("POST" if point == "body" else "GET", path, host="chaos",
                             headers=headers)
        return prefix, path, data, body_len

    def h1_cut(self):
        point = self.rng.choice(["request-line", "headers", "body", "waiting-upstream",
                                 "response"])
        how = self.rng.choice(["fin", "rst"])
        delay = self.rng.choice([0, 0, 0.001, 0.01])
        prefix, path, data, body_len = self.h1_head(point)
        line_end = data.index(b"\r\n")
        if point == "request-line":
            n = self.rng.randint(1, line_end)
            self.note(f"h1 {how} in the request line after {n} bytes: {path}")
            payload = data[:n]
        elif point == "headers":
            n = self.rng.randint(line_end + 2, len(data) - 3)
            self.note(f"h1 {how} in the headers after {n} of {len(data)} bytes: {path}")
            payload = data[:n]
        elif point == "body":
            k = self.rng.randint(0, min(body_len - 1, 65536))
            self.note(f"h1 {how} in the body after {k} of {body_len} bytes: POST {path}")
            payload = data + b"b" * k
        else:
            self.note(f"h1 {how} while {point}: GET {path}")
            payload = data
        if point == "response":
            sock = aborts.small_rcvbuf_socket(self.port)
        else:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5 * SLACK)
        try:
            sock.sendall(payload)
            if point == "waiting-upstream":
                aborts.poll_record(self.upstream_of(prefix), tag_of(path), 1.0)
            elif point == "response":
                aborts.recv_at_least(sock, self.rng.randint(1, 96 * 1024), timeout=2 * SLACK)
            if delay:
                time.sleep(delay)
        except OSError:
            pass
        aborts.cut(sock, how)

    def h1_abandon(self):
        point = self.rng.choice(["headers", "body"])
        how = self.rng.choice(["fin", "rst"])
        prefix, path, data, body_len = self.h1_head(point)
        if point == "headers":
            payload = data[:self.rng.randint(data.index(b"\r\n") + 2, len(data) - 3)]
        else:
            payload = data + b"b" * self.rng.randint(0, min(body_len - 1, 4096))
        self.note(f"h1 abandoned mid-{point} (closed later with {how}): {path}")
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5 * SLACK)
        try:
            sock.sendall(payload)
        except OSError:
            pass
        self.abandon(sock, how, path)

    # ----- aborts: HTTP/2 -------------------------------------------------------------------------
    def h2_open_stream(self, c, point):
        """Opens a stream at `point` on c; returns (sid, path)."""
        prefix, who, auth = self.target(point)
        path = prefix + self.suffix(point) + "?" + self.tag(who, auth)
        headers = [(k.lower(), v) for k, v in credentials(auth, who)] if who != "anon" else []
        if point == "mid-request-body":
            n = self.rng.choice([10, 100000])
            sid = c.request("POST", path, headers=headers + [("content-length", str(n))],
                            end_stream=False)
            c.send(h2client.data_frame(sid, b"d" * self.rng.randint(0, min(n - 1, 16000))))
        else:
            sid = c.request("GET", path, headers=headers)
            if point == "waiting-upstream":
                aborts.poll_record(self.upstream_of(prefix), tag_of(path), 1.0)
        return sid, path

    def h2_rst_stream(self):
        point = self.rng.choice(["immediately", "mid-request-body", "waiting-upstream"])
        c = self.h2_shared()
        if point == "immediately":
            prefix, who, auth = self.target()
            path = prefix + "/x?" + self.tag(who, auth)
            self.note(f"h2 HEADERS+RST_STREAM in one write on the shared connection: {path}")
            headers = [(k.lower(), v) for k, v in credentials(auth, who)] if who != "anon" else []
            sid = c.new_sid()
            block = c.encode(c.request_headers("GET", path, headers))
            c.send(h2client.headers_frame(sid, block, end_stream=True) + h2client.rst_frame(sid))
        else:
            sid, path = self.h2_open_stream(c, point)
            self.note(f"h2 RST_STREAM {point} on the shared connection: {path}")
            c.rst(sid)
        aborts.h2_sync(c)

    def h2_rst_mid_response(self):
        how = self.rng.choice(["fin", "rst", "keep"])
        c = aborts.h2_connect(self.port, auto_window=False)
        prefix, who, auth = self.target("response")
        path = prefix + self.suffix("response") + "?" + self.tag(who, auth)
        want = self.rng.randint(1, 60000)
        self.note(f"h2 RST_STREAM mid-response after {want} bytes, then {how}: {path}")
        headers = [(k.lower(), v) for k, v in credentials(auth, who)] if who != "anon" else []
        sid = c.request("GET", path, headers=headers)
        st = c.streams[sid]
        c.wait(lambda: st.body_len >= want or st.done, 5 * SLACK, "response DATA")
        c.rst(sid)
        if how == "keep":  # becomes the shared connection, its window given back
            c.window_update(0, 1 << 24)
            c.auto_window = True
            aborts.h2_sync(c)
            if self.shared is not None:
                self.shared.close()
            self.shared, self.shared_used = c, time.monotonic()
        else:
            aborts.cut(c.sock, how)

    def h2_end_connection(self, goaway):
        how = self.rng.choice(["fin", "rst"])
        c = aborts.h2_connect(self.port)
        opened = []
        for _ in range(self.rng.randint(1, 3)):
            point = self.rng.choice(["waiting-upstream", "mid-request-body", "plain"])
            opened.append(f"{point} {self.h2_open_stream(c, point)[1]}")
        self.note(f"h2 {'GOAWAY then ' if goaway else ''}{how} close with streams: "
                  + "; ".join(opened))
        try:
            if goaway:
                c.send(h2client.goaway_frame(0))
        except h2client.Closed:
            pass
        aborts.cut(c.sock, how)

    def h2_unfinished_headers(self):
        how = self.rng.choice(["fin", "rst", "abandon"])
        c = aborts.h2_connect(self.port)
        prefix, who, auth = self.target()
        path = prefix + "/x?" + self.tag(who, auth)
        headers = [(k.lower(), v) for k, v in credentials(auth, who)] if who != "anon" else []
        block = c.encode(c.request_headers("GET", path, headers))
        cut_at = self.rng.randint(1, len(block) - 1)
        self.note(f"h2 HEADERS without END_HEADERS ({cut_at} of {len(block)} bytes), then {how}: "
                  f"{path}")
        c.send(h2client.headers_frame(c.new_sid(), block[:cut_at], end_stream=True,
                                      end_headers=False))
        if how == "abandon":
            self.abandon(c.sock, "rst", path)
        else:
            aborts.cut(c.sock, how)

    # ----- aborts: TLS ----------------------------------------------------------------------------
    def client_hello(self, alpn):
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = self.ctx[alpn].wrap_bio(inc, out, server_hostname="localhost")
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return out.read()

    def tls_cut(self):
        point = self.rng.choice(["partial-hello", "hello-only", "mid-request", "h2-rst-stream"])
        how = self.rng.choice(["fin", "rst"])
        if point in ("partial-hello", "hello-only"):
            hello = self.client_hello(self.rng.choice(["h2", "http/1.1", None]))
            n = len(hello) if point == "hello-only" else self.rng.randint(1, len(hello) - 1)
            self.note(f"TLS {how} after {n} of {len(hello)} ClientHello bytes")
            sock = socket.create_connection(("127.0.0.1", self.tls_port), timeout=5 * SLACK)
            try:
                sock.sendall(hello[:n])
                if point == "hello-only":
                    aborts.recv_at_least(sock, 1, timeout=1.0 * SLACK)
            except OSError:
                pass
            aborts.cut(sock, how)
        elif point == "mid-request":
            prefix, path, data, body_len = self.h1_head(self.rng.choice(["headers", "body"]))
            n = self.rng.randint(1, len(data) - 3)
            self.note(f"TLS HTTP/1.1 {how} after {n} of {len(data)} head bytes: {path}")
            s = self.tls_socket("http/1.1")
            try:
                s.sendall(data[:n])
            except OSError:
                pass
            aborts.cut(s, how)
        else:
            c = aborts.h2_connect(self.tls_port, tls=self.ctx["h2"], server_hostname="localhost")
            point2 = self.rng.choice(["waiting-upstream", "mid-request-body"])
            sid, path = self.h2_open_stream(c, point2)
            self.note(f"TLS HTTP/2 RST_STREAM {point2}, then {how}: {path}")
            c.rst(sid)
            aborts.h2_sync(c)
            aborts.cut(c.sock, how)

    # ----- invariants -----------------------------------------------------------------------------
    def check(self):
        if not self.g.alive():
            aborts.settle(self.g)
        aborts.assert_alive(self.g, f"during chaos step {self.step_no}")
        for name, up in (("pub", self.pub), ("priv", self.priv)):
            records = up.snapshot()
            for rec in records[self.seen[name]:]:
                ident = {k.lower(): v for k, v in aborts.identity_headers(rec)}
                if name == "pub":
                    assert not ident, f"the public upstream got identity headers {ident}: {rec!r}"
                    continue
                q = query_fields(rec)
                who, auth = q.get("c", "anon"), q.get("a", "none")
                assert who in WHO and auth in AUTHS, \
                    f"a request without credentials reached the private upstream: {rec!r}"
                assert ident == expected_identity(auth, who), \
                    f"a request of {who} ({auth}) reached the upstream with {ident}: {rec!r}"
            self.seen[name] = len(records)
        rss = proc_status_kib(self.g.pid, "VmRSS") // 1024
        self.rss_max = max(self.rss_max, rss)
        if self.rss_start is not None:
            assert rss < self.rss_start + RSS_BUDGET_MIB, \
                f"VmRSS {rss} MiB, up from {self.rss_start} MiB after warm-up"
        self.check_408s()

    # ----- the run --------------------------------------------------------------------------------
    def warm_up(self):
        self.note("warm-up: each kind of probe once")
        for kind in PROBE_KINDS:
            assert self.request(kind, "GET", f"/public/warm?{self.tag()}")[0] == 200, kind
            for who in WHO:
                status = self.request(kind, "GET", f"/private/warm?{self.tag(who, 'key')}",
                                      credentials("key", who))[0]
                assert status == 200, (kind, who)
        self.check()
        self.rss_start = proc_status_kib(self.g.pid, "VmRSS") // 1024

    def run(self, duration):
        try:
            self.warm_up()
            deadline = time.monotonic() + duration
            while time.monotonic() < deadline and self.step_no < MAX_STEPS:
                self.step_no += 1
                _, name, fn = self.rng.choices(self.steps, weights=self.weights)[0]
                self.counts[name] += 1
                fn()
                self.close_due()
                self.check()
            self.finish()
        except Exception as e:  # noqa: BLE001 - everything is reported with the seed
            raise AssertionError(self.report(e)) from e
        finally:
            self.close_due(final=True)
            for c, _, _ in self.pending_408:
                c.close()
            if self.shared is not None:
                self.shared.close()

    def finish(self):
        self.step_no += 1
        self.note("final: abandoned connections closed, pending 408s answered, every probe once")
        self.close_due(final=True)
        self.check_408s(wait=True)
        assert not self.pending_408
        for kind in PROBE_KINDS:
            path = f"/public/final?{self.tag()}"
            assert self.request(kind, "GET", path)[0] == 200, kind
            for who in WHO:
                for auth in AUTHS:
                    path = f"/private/final?{self.tag(who, auth)}"
                    assert self.request(kind, "GET", path, credentials(auth, who))[0] == 200
        for kind in ("400-parse", "400-fields", "400-bad-path", "414", "431"):
            resp, raw, _ = aborts.h1_early_error(self.port, kind)
            aborts.check_h1_early(resp, raw, kind)
        with aborts.h2_connect(self.port) as c:
            for kind in aborts.H2_EARLY_CLASSES:
                aborts.check_h2_early(aborts.h2_early_error(c, kind), kind)
        self.check()
        self.g.assert_healthy()


@pytest.fixture(scope="module")
def server_cert(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("chaos-pki"))
    ca = certs.make_ca(d, "chaos-ca", "Portico Chaos CA")
    return ca, certs.issue(ca, d, "chaos-server", "localhost", dns=["localhost"])


def test_chaos(gateway, upstreams, server_cert):
    seed_text = os.environ.get("PORTICO_CHAOS_SEED")
    seed = int(seed_text) if seed_text else random.SystemRandom().randrange(1 << 32)
    print(f"chaos seed {seed} (replay with PORTICO_CHAOS_SEED={seed})")
    ca, cert = server_cert
    pub, priv = upstreams("pub"), upstreams("priv")
    tls_port = free_port()
    g = gateway(chaos_config(pub, priv, cert), subs={"TLS": tls_port})
    chaos = Chaos(g, pub, priv, tls_port, ca, seed)
    chaos.run(DURATION_S)
    print(f"chaos: {chaos.step_no} steps, {dict(chaos.counts)}; "
          f"{pub.count()} public and {priv.count()} private upstream requests; VmRSS "
          f"{chaos.rss_start} MiB after warm-up, at most {chaos.rss_max} MiB")
