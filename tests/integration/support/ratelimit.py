"""Helpers for the rate-limit suites (docs/rate-limiting.md): clients bound to a chosen loopback
source address, the RateLimit / RateLimit-Policy structured fields, the 429 / 503 checks, and
load generators that record when every request was sent and answered.

Everything talks to 127.0.0.1 only; every socket has a timeout.
"""
import re
import socket
import threading
import time

from . import rawhttp
from .rawhttp import RawConn, request_bytes
from .util import SLACK

HOST = "rl.test"


# ----- clients ----------------------------------------------------------------------------------
def connect(port, source="127.0.0.1", timeout=5.0):
    """A RawConn to 127.0.0.1:port from `source` (any 127/8 address works on Linux loopback)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return RawConn.from_socket(sock, timeout)


def req(path, headers=(), method="GET", body=b""):
    return request_bytes(method, path, host=HOST, headers=list(headers), body=body)


def get(port, path, headers=(), source="127.0.0.1", timeout=5.0, method="GET"):
    """One request on a new connection from `source`; returns a rawhttp.Response."""
    with connect(port, source, timeout) as c:
        c.send(req(path, headers, method))
        return c.read_response(method)


# ----- the structured fields --------------------------------------------------------------------
_ITEM = re.compile(r'^"([^"]*)"((?:\s*;\s*[a-z]+=-?[0-9]+)*)$')


def parse_items(value):
    """`"a";q=1;w=2, "b";q=3;w=4` -> [("a", {"q": 1, "w": 2}), ("b", {...})]; raises on junk."""
    out = []
    if value is None:
        return out
    for raw in value.split(","):
        item = raw.strip()
        m = _ITEM.match(item)
        assert m, f"not a structured-field item: {item!r} in {value!r}"
        params = {}
        for p in m.group(2).split(";"):
            p = p.strip()
            if p:
                k, _, v = p.partition("=")
                assert k not in params, f"parameter {k} twice in {item!r}"
                params[k] = int(v)
        out.append((m.group(1), params))
    return out


def _joined(resp, name):
    values = resp.header_all(name)
    return ", ".join(values) if values else None


def policies(resp):
    """RateLimit-Policy of a response (rawhttp.Response or h2 StreamResult), as parse_items."""
    return parse_items(_joined(resp, "RateLimit-Policy"))


def states(resp):
    """RateLimit of a response, as parse_items."""
    return parse_items(_joined(resp, "RateLimit"))


def state(resp, name):
    """The parameters of the RateLimit item `name` (AssertionError when absent)."""
    items = dict(states(resp))
    assert name in items, f"no RateLimit item {name!r}: {resp!r}"
    return items[name]


def retry_after(resp):
    v = resp.header("Retry-After")
    assert v is not None, f"no Retry-After: {resp!r}"
    assert re.fullmatch(r"[0-9]+", v), f"Retry-After is not whole seconds: {v!r}"
    return int(v)


def assert_gateway_error(resp, status, code, message=None):
    """SPEC §4: the JSON error body, its request_id equal to X-Request-Id."""
    assert resp.status == status, resp
    ctype = resp.header("Content-Type") or ""
    assert ctype.startswith("application/json"), resp
    rid = resp.header("X-Request-Id")
    assert rid, f"no X-Request-Id: {resp!r}"
    err = resp.json()["error"]
    assert err["status"] == status and err["code"] == code, err
    assert err.get("request_id") == rid, (err, rid)
    if message is not None:
        assert err["message"] == message, err
    return err


def assert_rate_limited(resp, message=None, code="rate_limited", max_retry=None):
    """429 with the JSON body, Retry-After >= 1 (<= max_retry when given); returns Retry-After."""
    assert_gateway_error(resp, 429, code, message)
    ra = retry_after(resp)
    assert ra >= 1, resp
    if max_retry is not None:
        assert ra <= max_retry, (ra, max_retry, resp)
    return ra


# ----- load -------------------------------------------------------------------------------------
class Sample:
    __slots__ = ("tag", "sent", "recv", "status", "resp", "error", "wall")

    def __init__(self, tag, sent, recv, status, resp, error=None, wall=None):
        self.tag, self.sent, self.recv, self.status = tag, sent, recv, status
        self.resp, self.error, self.wall = resp, error, wall

    def __repr__(self):
        return f"<Sample {self.tag} {self.status} sent={self.sent:.3f} recv={self.recv:.3f}>"


def hammer(port, plans, duration, pace=0.003, timeout=5.0):
    """Sends requests until `duration` seconds have passed.

    plans: list of (tag, path, headers, keepalive): one thread each. A keep-alive thread uses one
    connection (a closed connection is counted in `reconnects` and reopened); the others open a
    new connection per request. Returns (samples, reconnects, errors) where samples are Sample
    with monotonic `sent`/`recv` and wall-clock `wall` (time.time() at sending).
    """
    samples = []
    errors = []
    reconnects = [0]
    lock = threading.Lock()
    start = threading.Barrier(len(plans) + 1)
    deadline_box = [0.0]

    def worker(tag, path, headers, keepalive):
        data = req(path, headers)
        conn = None
        mine = []
        try:
            start.wait(timeout=30)
            deadline = deadline_box[0]
            while time.monotonic() < deadline:
                try:
                    if conn is None:
                        conn = connect(port, timeout=timeout)
                    wall = time.time()
                    t0 = time.monotonic()
                    conn.send(data)
                    r = conn.read_response()
                    t1 = time.monotonic()
                    mine.append(Sample(tag, t0, t1, r.status, None, wall=wall))
                    if not keepalive or (r.header("Connection") or "").lower() == "close":
                        if keepalive:
                            with lock:
                                reconnects[0] += 1
                        conn.close()
                        conn = None
                except (OSError, rawhttp.IncompleteResponse) as e:
                    with lock:
                        errors.append(f"{tag}: {e!r}")
                    if conn is not None:
                        conn.close()
                        conn = None
                    time.sleep(0.01)
                if pace:
                    time.sleep(pace)
        finally:
            if conn is not None:
                conn.close()
            with lock:
                samples.extend(mine)

    threads = [threading.Thread(target=worker, args=p, daemon=True) for p in plans]
    for t in threads:
        t.start()
    deadline_box[0] = time.monotonic() + duration
    start.wait(timeout=30)
    for t in threads:
        t.join(timeout=duration + 30 * SLACK)
    assert not any(t.is_alive() for t in threads), "a load thread is stuck"
    samples.sort(key=lambda s: s.sent)
    return samples, reconnects[0], errors


def fire_together(port, specs, timeout=10.0):
    """Opens one connection per spec first, then sends every request at the same moment.

    specs: list of dicts {path, headers=(), source="127.0.0.1", tag=None}. Returns Samples in
    spec order (resp set, or error set when no complete response came).
    """
    threads, out = start_together(port, specs, timeout)
    for t in threads:
        t.join(timeout=timeout + 30)
    assert all(o is not None for o in out), "a client thread did not finish"
    return out


def start_together(port, specs, timeout=10.0):
    """Like fire_together, but returns at once: (threads, results list filled in as they end)."""
    conns = [connect(port, s.get("source", "127.0.0.1"), timeout) for s in specs]
    out = [None] * len(specs)
    barrier = threading.Barrier(len(specs) + 1)

    def one(i):
        s = specs[i]
        c = conns[i]
        data = req(s["path"], s.get("headers", ()))
        try:
            barrier.wait(timeout=30)
            t0 = time.monotonic()
            c.send(data)
            r = c.read_response(timeout=timeout)
            out[i] = Sample(s.get("tag"), t0, time.monotonic(), r.status, r)
        except (OSError, rawhttp.IncompleteResponse, threading.BrokenBarrierError) as e:
            out[i] = Sample(s.get("tag"), 0.0, time.monotonic(), None, None, error=repr(e))
        finally:
            c.close()

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(specs))]
    for t in threads:
        t.start()
    barrier.wait(timeout=30)
    return threads, out


def join_all(threads, timeout):
    for t in threads:
        t.join(timeout=timeout)
    assert not any(t.is_alive() for t in threads), "a client thread did not finish"


def max_in_span(times, span):
    """The largest number of the (sorted) times inside any half-open interval of length span."""
    best = 0
    j = 0
    for i in range(len(times)):
        while times[i] - times[j] >= span:
            j += 1
        best = max(best, i - j + 1)
    return best


def bursts(times, gap):
    """Splits sorted times into runs separated by more than `gap`."""
    out = []
    for t in times:
        if out and t - out[-1][-1] <= gap:
            out[-1].append(t)
        else:
            out.append([t])
    return out
