"""Bodies both ways: chunked requests and responses, Expect: 100-continue, large streamed
uploads and downloads with bounded gateway memory."""
import hashlib
import http.client
import socket
import time

import pytest

from support import gateway as gw
from support import rawhttp
from support.rawhttp import RawConn, request_bytes
from support.util import SLACK, pattern_chunks, pattern_sha256, proc_status_kib

MiB = 1 << 20


@pytest.fixture(scope="module")
def env(module_gateway, module_upstreams):
    u = module_upstreams("stream")
    limits = {"max_body_bytes": "1GiB"}
    g = module_gateway(gw.config([gw.route("all", {"path_prefix": "/"}, "u")],
                                 {"u": gw.up(u, timeouts={"request": "60s"})}, limits=limits))
    return g, u


def test_chunked_request_body_arrives_intact(env):
    g, u = env
    payload = b"".join(pattern_chunks(1 * MiB + 12345))
    # Irregular chunk sizes, a chunk extension, and trailers.
    pieces, pos, size = [], 0, 1
    while pos < len(payload):
        pieces.append(payload[pos:pos + size])
        pos += size
        size = (size * 7 + 13) % 70000 + 1
    body = rawhttp.chunked(pieces, ext="name=value")
    head = b"POST /chunked-up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    with RawConn(g.port, timeout=20) as c:
        c.send(head + body)
        resp = c.read_response()
    assert resp.status == 200
    rec = u.last()
    assert rec.path == "/chunked-up" and rec.complete
    assert rec.body_len == len(payload)
    assert rec.body_sha256 == hashlib.sha256(payload).hexdigest()
    assert resp.json()["body_sha256"] == rec.body_sha256


def test_chunked_request_with_trailers(env):
    g, u = env
    body = rawhttp.chunked([b"hello ", b"world"], trailers=b"X-Checksum: abc\r\n")
    head = b"POST /trailers HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    resp = rawhttp.exchange(g.port, head + body)
    assert resp.status == 200
    assert u.last().body == b"hello world"


def test_chunked_request_sent_slowly(env):
    """Chunks arriving over time are forwarded as they come."""
    g, u = env
    with RawConn(g.port, timeout=10) as c:
        c.send(b"POST /slow-chunks HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(5):
            c.send(f"3\r\nab{i}\r\n".encode())
            time.sleep(0.05)
        c.send(b"0\r\n\r\n")
        resp = c.read_response()
    assert resp.status == 200
    assert u.last().body == b"ab0ab1ab2ab3ab4"


def test_empty_chunked_request(env):
    g, u = env
    head = b"POST /empty-chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    resp = rawhttp.exchange(g.port, head)
    assert resp.status == 200
    assert u.last().body_len == 0 and u.last().complete


def test_chunked_response_reaches_client(env):
    g, u = env
    resp = rawhttp.exchange(g.port, request_bytes("GET", "/chunked"))
    assert resp.status == 200
    assert resp.body == b"hello chunked world"


def test_chunked_response_then_keepalive(env):
    g, u = env
    with RawConn(g.port) as c:
        for i in range(3):
            c.send(request_bytes("GET", "/chunked"))
            assert c.read_response().body == b"hello chunked world"
        c.send(request_bytes("GET", "/after-chunked"))
        assert c.read_response().json()["path"] == "/after-chunked"


@pytest.mark.parametrize("path", [
    "/eof-body",  # the last data and the FIN in one segment
    "/eof-body-late",
])
def test_close_delimited_response_reaches_client(env, path):
    """An upstream response without Content-Length or chunking ends at the upstream's close."""
    g, u = env
    with RawConn(g.port, timeout=10) as c:
        c.send(request_bytes("GET", path))
        raw, closed = c.read_until_close(3)
    responses = rawhttp.parse_all(raw)
    assert responses and responses[0].status == 200, raw[:300]
    assert responses[0].body == b"until-eof " * 100
    # Either re-framed (chunked / Content-Length) or delimited by closing the client too.
    framed = responses[0].has_header("Content-Length") or \
        "chunked" in responses[0].header("Transfer-Encoding", "").lower()
    assert framed or closed, "the client cannot tell where the body ends"


@pytest.mark.parametrize("chunked", [False, True])
def test_medium_download_intact(env, chunked):
    g, u = env
    n = 5 * MiB + 7
    c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=20)
    c.request("GET", f"/bytes/{n}" + ("?chunked=1" if chunked else ""))
    r = c.getresponse()
    assert r.status == 200
    if not chunked:
        assert r.getheader("Content-Length") == str(n)
    h = hashlib.sha256()
    total = 0
    while True:
        piece = r.read(256 * 1024)
        if not piece:
            break
        h.update(piece)
        total += len(piece)
    c.close()
    assert total == n
    assert h.hexdigest() == pattern_sha256(n)


def test_expect_100_continue(env):
    g, u = env
    body = b"x" * 5000
    with RawConn(g.port, timeout=10) as c:
        c.send(f"POST /expect HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n"
               "Expect: 100-continue\r\n\r\n".encode())
        # The interim response comes before we send any body byte.
        deadline = time.monotonic() + 5 * SLACK
        while b"\r\n\r\n" not in c.buf and time.monotonic() < deadline:
            c.buf += c._recv(deadline)
        assert c.buf.startswith(b"HTTP/1.1 100 Continue\r\n"), c.buf
        c.send(body)
        resp = c.read_response()
    assert 100 in resp.interim
    assert resp.status == 200
    assert resp.json()["body_len"] == len(body)
    assert u.last().body == body


def test_expect_100_continue_refused_by_limit(gateway, upstream):
    """A too-large body with Expect gets the final 413 without a 100 Continue."""
    g = gateway(gw.config([gw.route("all", {"path_prefix": "/"}, "u")], {"u": gw.up(upstream)},
                          limits={"max_body_bytes": 100}))
    with RawConn(g.port) as c:
        c.send(b"POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
        resp = c.read_response()
    assert resp.status == 413
    assert 100 not in resp.interim
    assert upstream.count() == 0


def _rss_guard(g):
    return proc_status_kib(g.pid, "VmHWM")


@pytest.mark.slow
def test_large_streamed_upload_bounded_memory(env):
    g, u = env
    n = 200 * MiB
    hwm_before = _rss_guard(g)
    sock = socket.create_connection(("127.0.0.1", g.port), timeout=60)
    try:
        # The sink pauses after the first MiB: a gateway that buffers instead of applying
        # backpressure would swallow the upload into memory meanwhile.
        sock.sendall(f"POST /upload?pause_ms=1000 HTTP/1.1\r\nHost: t\r\n"
                     f"Content-Length: {n}\r\n\r\n".encode())
        h = hashlib.sha256()
        for piece in pattern_chunks(n, 256 * 1024):
            h.update(piece)
            sock.sendall(piece)
        resp = RawConn.from_socket(sock, 60).read_response()
    finally:
        sock.close()
    assert resp.status == 200, resp
    body = resp.json()
    assert body["body_len"] == n
    assert body["body_sha256"] == h.hexdigest()
    grown_mib = (_rss_guard(g) - hwm_before) / 1024
    assert grown_mib < 100, f"gateway peak RSS grew by {grown_mib:.0f} MiB for a {n >> 20} MiB upload"


@pytest.mark.slow
def test_large_chunked_upload(env):
    g, u = env
    n = 64 * MiB
    sock = socket.create_connection(("127.0.0.1", g.port), timeout=60)
    try:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        h = hashlib.sha256()
        for piece in pattern_chunks(n, 100000):
            h.update(piece)
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        sock.sendall(b"0\r\n\r\n")
        resp = RawConn.from_socket(sock, 60).read_response()
    finally:
        sock.close()
    assert resp.status == 200
    assert resp.json()["body_len"] == n
    assert resp.json()["body_sha256"] == h.hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_large_streamed_download_bounded_memory(env, chunked):
    g, u = env
    n = 200 * MiB
    hwm_before = _rss_guard(g)
    c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=60)
    c.request("GET", f"/bytes/{n}" + ("?chunked=1" if chunked else ""))
    r = c.getresponse()
    assert r.status == 200
    h = hashlib.sha256()
    total = 0
    paused = False
    while True:
        piece = r.read(1 << 20)
        if not piece:
            break
        h.update(piece)
        total += len(piece)
        if not paused and total >= 2 * MiB:
            # A slow client: the gateway must stop reading from the upstream meanwhile.
            paused = True
            time.sleep(1.0)
    c.close()
    assert total == n
    assert h.hexdigest() == pattern_sha256(n)
    grown_mib = (_rss_guard(g) - hwm_before) / 1024
    assert grown_mib < 100, f"gateway peak RSS grew by {grown_mib:.0f} MiB for a {n >> 20} MiB download"


def test_chunked_response_with_trailers(env):
    g, u = env
    with RawConn(g.port) as c:
        c.send(request_bytes("GET", "/chunked-trailers"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"with trailers"
        c.send(request_bytes("GET", "/after-trailers"))
        assert c.read_response().json()["path"] == "/after-trailers"


def test_upstream_interim_response_then_final(env):
    g, u = env
    with RawConn(g.port) as c:
        c.send(request_bytes("GET", "/interim"))
        r = c.read_response()
        assert r.status == 200 and r.json()["path"] == "/interim"
        assert set(r.interim) <= {103}
        c.send(request_bytes("GET", "/after-interim"))
        assert c.read_response().json()["path"] == "/after-interim"
