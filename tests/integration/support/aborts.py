"""Abnormal endings and early-error probes, for the review's C1 regression tests
(test_abnormal_endings.py) and the chaos test (test_chaos.py).

C1: a gateway Session is pooled; a request that ends abnormally (EOF or RST in the middle, a
timer, a write error, an HTTP/2 RST_STREAM or a dropped connection) must leave nothing behind
for the next user of the same object: no route, no identity, no request id, no byte counts.

    ab = aborts.rst_close(sock)                       # SO_LINGER 0: the peer sees a TCP RST
    resp = aborts.h1_early_error(port, "414")          # one of H1_EARLY, on a new connection
    st = aborts.h2_early_error(client, "400-bad-path") # one of H2_EARLY, on an open H2Client
    aborts.assert_alive(g, "after ...")                # with the exit signal and stderr tail

Every wait here is bounded; nothing asserts but the assert_* functions.
"""
import os
import signal
import socket
import struct
import subprocess
import time

from . import h2client
from . import jwt
from . import rawhttp
from .rawhttp import request_bytes
from .util import SLACK, wait_until

# Listener limits that make every early-error class cheap to provoke.
HEADER_TIMEOUT_S = 1.0
MAX_URI_BYTES = 1024
MAX_HEADER_BYTES = 4096
EARLY_LIMITS = {"max_uri_bytes": MAX_URI_BYTES, "max_header_bytes": MAX_HEADER_BYTES,
                "header_timeout": "1s"}

# What the gateway sends upstream to say who the client is (with forward_claims {sub: X-User-Id}).
IDENTITY_HEADERS = ("x-consumer-name", "x-consumer-groups", "x-user-id")

# Two consumers, each with an API key and JWT subject; providers "keys" and "jwt".
JWT_SECRET = "portico-abnormal-endings-secret-0123456789"
JWT_ISSUER = "https://idp.test/"
KEYS = {"alice": "k-ae-alice-0123456789", "bob": "k-ae-bob-9876543210"}
GROUPS = {"alice": "admins", "bob": "users"}
AUTH_PROVIDERS = {
    "keys": {"type": "api_key", "from": ["header:X-API-Key"]},
    "jwt": {"type": "jwt", "algorithms": ["HS256"], "secret": JWT_SECRET, "issuer": JWT_ISSUER,
            "audiences": ["api"], "forward_claims": {"sub": "X-User-Id"}},
}
CONSUMERS = [{"name": who, "groups": [GROUPS[who]], "api_keys": [KEYS[who]],
              "jwt_subjects": [who]} for who in ("alice", "bob")]


def credentials(auth, who, h2=False):
    """The header carrying `who`'s credential: auth "key" or "jwt"; lower case for HTTP/2."""
    if auth == "key":
        name, value = "X-API-Key", KEYS[who]
    else:
        name, value = "Authorization", "Bearer " + jwt.hs(jwt.claims(sub=who), JWT_SECRET)
    return [(name.lower() if h2 else name, value)]


def expected_identity(auth, who):
    """The identity headers (lower-case names) an upstream must get for `who` via `auth`."""
    ident = {"x-consumer-name": who, "x-consumer-groups": GROUPS[who]}
    if auth == "jwt":
        ident["x-user-id"] = who
    return ident


# ----- cutting a connection -----------------------------------------------------------------------
def rst_close(sock):
    """Closes with SO_LINGER {on, 0}: the kernel sends RST instead of FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def fin_close(sock):
    """shutdown(SHUT_WR) then close: the gateway sees EOF (a later write of its gets RST)."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def cut(sock, how):
    """how: "fin" or "rst"."""
    if how == "rst":
        rst_close(sock)
    else:
        fin_close(sock)


def small_rcvbuf_socket(port, rcvbuf=8192, timeout=5.0):
    """A connected socket with a small receive buffer (the gateway's writes block early)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    return s


def recv_at_least(sock, n, timeout=5.0):
    """Reads until n bytes came (or EOF/timeout); returns what was read."""
    deadline = time.monotonic() + timeout
    got = bytearray()
    while len(got) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not data:
            break
        got += data
    return bytes(got)


# ----- the gateway process ------------------------------------------------------------------------
def exit_description(g):
    rc = g.proc.poll()
    if rc is None:
        return "still running"
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name} (exit code {rc})"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exited with code {rc}"


def settle(g, timeout=1.0):
    """Gives a dying process a moment to finish dying (a crash right after its last write)."""
    try:
        g.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass


def assert_alive(g, what):
    """The gateway process is still running; else fails naming the signal, with stderr."""
    if g.alive():
        return
    g.health_checked_by_test = True  # reported here, once, with the context
    raise AssertionError(f"the gateway died ({exit_description(g)}) {what}; stderr tail:\n"
                         f"{g.stderr()[-3000:]}")


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def quiet_fd_count(g, timeout=1.0):
    """The gateway's descriptor count once it stopped changing for 50 ms (a fresh gateway still
    closes the connections of its readiness checks for a moment)."""
    deadline = time.monotonic() + timeout * SLACK
    last = fd_count(g.pid)
    while time.monotonic() < deadline:
        time.sleep(0.05)
        n = fd_count(g.pid)
        if n == last:
            return n
        last = n
    return last


def wait_fds(g, at_most, timeout=2.0):
    """Waits (bounded) until the gateway holds at most `at_most` descriptors: the sockets of an
    aborted exchange are closed, so its Session is back on the free list. Never asserts."""
    deadline = time.monotonic() + timeout * SLACK
    while time.monotonic() < deadline:
        n = fd_count(g.pid)
        if n < 0 or n <= at_most:
            time.sleep(0.02)  # the end of the event batch that closed it
            return True
        time.sleep(0.01)
    return False


def h2_sync(c, timeout=5.0):
    """A PING round trip, then a moment: everything sent before it was processed, and its event
    batch is over (Sessions closed in a batch go back on the free list when the batch ends; a
    frame sent the instant the ACK arrives can still be read by the same drive loop)."""
    before = c.pings_acked
    c.ping(b"sync0001")
    c.wait(lambda: c.pings_acked > before, timeout * SLACK, "PING ACK")
    time.sleep(0.03 * SLACK)


# ----- upstream records ---------------------------------------------------------------------------
def identity_headers(rec):
    """The identity headers a recorded upstream request carried: [(name, value)]."""
    return [(k, v) for k, v in rec.headers if k.lower() in IDENTITY_HEADERS]


def find_record(up, tag):
    for r in up.snapshot():
        if f"tag={tag}" in r.query.split("&"):
            return r
    return None


def wait_record(up, tag, timeout=5.0):
    """The upstream's record whose query has tag=TAG; AssertionError after timeout."""
    return wait_until(lambda: find_record(up, tag), timeout * SLACK,
                      message=f"the upstream {up.name} to receive tag={tag}")


def poll_record(up, tag, timeout=1.0):
    """Like wait_record but returns None instead of failing."""
    deadline = time.monotonic() + timeout * SLACK
    while time.monotonic() < deadline:
        r = find_record(up, tag)
        if r is not None:
            return r
        time.sleep(0.01)
    return None


# ----- early errors -------------------------------------------------------------------------------
def _big_headers():
    return [(f"X-H{i}", "v" * 100) for i in range(50)]  # ~5.4 KiB > MAX_HEADER_BYTES


# name -> (bytes to send, status, error code). "408" is a head that never ends.
H1_EARLY = {
    "400-parse": (b"GET /hello HTTP/1.1\nHost: x\n\n", 400, "bad_request"),             # bare LF
    "400-fields": (b"GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "bad_request"),
    "400-bad-path": (b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"),
    "408": (b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Partial: ", 408, "request_timeout"),
    "414": (request_bytes("GET", "/hello/" + "a" * (MAX_URI_BYTES + 100), host="x"), 414,
            "uri_too_long"),
    "431": (request_bytes("GET", "/hello", host="x", headers=_big_headers()), 431,
            "headers_too_large"),
    # The same limits decided on a head that has not ended yet (the size alone is enough).
    "414-partial": (b"GET /hello/" + b"a" * (MAX_URI_BYTES + 200), 414, "uri_too_long"),
    "431-partial": (request_bytes("GET", "/hello", host="x", headers=_big_headers())[:-4], 431,
                    "headers_too_large"),
}
H1_EARLY_CLASSES = ["400-parse", "400-bad-path", "408", "414", "431"]


def h1_early_error(port, kind, timeout=5.0):
    """Sends one H1_EARLY request on a new connection and reads until the gateway closes.

    Returns (Response or None, raw bytes, closed). Never raises for a missing answer."""
    data = H1_EARLY[kind][0]
    wait = timeout + (HEADER_TIMEOUT_S + 2 * SLACK if kind == "408" else 0)
    with rawhttp.RawConn(port, timeout=wait) as c:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        raw, closed = c.read_until_close(wait)
    try:
        responses = rawhttp.parse_all(raw)
    except ValueError:
        responses = []
    return (responses[0] if responses else None), raw, closed


def h1_early_errors(port, kind, n=3, timeout=5.0):
    """n connections opened together (each takes the next Session off the worker's free list,
    so a stale one is met even when it is not on top), the same H1_EARLY request on each.
    Returns [(Response or None, raw bytes, closed)]."""
    data = H1_EARLY[kind][0]
    wait = timeout + (HEADER_TIMEOUT_S + 2 * SLACK if kind == "408" else 0)
    conns = []
    try:
        for _ in range(n):
            conns.append(rawhttp.RawConn(port, timeout=wait))
        for c in conns:
            try:
                c.send(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
        deadline = time.monotonic() + wait
        out = []
        for c in conns:
            raw, closed = c.read_until_close(max(0.01, deadline - time.monotonic()))
            try:
                responses = rawhttp.parse_all(raw)
            except ValueError:
                responses = []
            out.append((responses[0] if responses else None, raw, closed))
        return out
    finally:
        for c in conns:
            c.close()


def check_h1_early(resp, raw, kind, request_id_not=None):
    """The answer of h1_early_error: the right status and JSON code, its own request id."""
    status, code = H1_EARLY[kind][1], H1_EARLY[kind][2]
    assert resp is not None, f"no {status} for the {kind} probe; got {raw[:300]!r}"
    assert resp.status == status, f"{kind} probe: expected {status}, got {resp!r}"
    err = resp.json()["error"]
    assert err["status"] == status and err["code"] == code, (kind, err)
    rid = resp.header("X-Request-Id")
    assert rid and err["request_id"] == rid, (kind, resp)
    if request_id_not is not None:
        assert rid != request_id_not, \
            f"the {kind} answer carries the request id of an earlier, aborted request: {rid!r}"
    return resp


# name -> (method, :path, extra headers, status, code)
H2_EARLY = {
    "400-parse": ("GET", "/hello#frag", [], 400, "bad_request"),   # refused by the head parser
    "400-bad-path": ("GET", "/%zz", [], 400, "bad_request"),
    "414": ("GET", "/hello/" + "a" * (MAX_URI_BYTES + 100), [], 414, "uri_too_long"),
    "431": ("GET", "/hello", [("x-big", "v" * (MAX_HEADER_BYTES + 1000))], 431,
            "headers_too_large"),
}
H2_EARLY_CLASSES = list(H2_EARLY)


def h2_early_error(c, kind, timeout=5.0):
    """Sends one H2_EARLY request on the open connection; returns its StreamResult (or raises
    h2client.Closed / AssertionError when the connection ends first)."""
    method, path, headers, _, _ = H2_EARLY[kind]
    sid = c.request(method, path, headers=headers)
    return c.response(sid, timeout=timeout * SLACK)


def h2_early_errors(c, kind, n=3, timeout=5.0):
    """n streams with the same H2_EARLY request, opened together on c (each takes the next
    Session off the free list); returns their StreamResults."""
    method, path, headers, _, _ = H2_EARLY[kind]
    sids = [c.request(method, path, headers=headers) for _ in range(n)]
    return [c.response(sid, timeout=timeout * SLACK) for sid in sids]


def check_h2_early(st, kind, request_id_not=None):
    status, code = H2_EARLY[kind][3], H2_EARLY[kind][4]
    assert st.status == status, f"{kind} probe over HTTP/2: expected {status}, got {st!r}"
    err = st.json()["error"]
    assert err["status"] == status and err["code"] == code, (kind, err)
    rid = st.header("x-request-id")
    assert rid and err["request_id"] == rid, (kind, st)
    if request_id_not is not None:
        assert rid != request_id_not, \
            f"the {kind} answer carries the request id of an earlier, aborted request: {rid!r}"
    return st


def h2_connect(port, timeout=5.0, **kw):
    c = h2client.H2Client(port, timeout=timeout * SLACK, **kw)
    c.wait_settings()
    return c
