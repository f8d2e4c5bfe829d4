"""HTTP/2: h2c with prior knowledge and via Upgrade, h2 over TLS (ALPN), real clients (curl,
nghttp, h2load) and the raw frame client; streams proxied to HTTP/1.1 upstreams through the same
routing, auth and header rules; large bodies under flow control; HTTP/1.1 clients to an HTTP/2
upstream."""
import hashlib
import http.client
import json
import os
import re
import subprocess
import threading

import pytest

from support import gateway as gw
from support import h2client
from support import rawhttp
from support.h2client import H2Client
from support.h2upstream import H2Upstream
from support.util import SLACK, assert_error, pattern_chunks, pattern_sha256, wait_until

MiB = 1 << 20
HEX32 = re.compile(r"^[0-9a-f]{32}$")
ALICE_KEY = "k-h2-alice-0123456789"
# Connection-specific fields (RFC 9113 §8.2.2): never on an HTTP/2 message.
CONNECTION_SPECIFIC = ("connection", "keep-alive", "proxy-connection", "transfer-encoding",
                       "upgrade")
# Paths served by the recording upstream (everything else has no route: 404).
PREFIXES = ["/echo", "/bytes", "/upload", "/slow", "/hang", "/hop", "/chunked", "/status",
            "/x", "/nghttp", "/load"]


# ----- helpers ----------------------------------------------------------------------------------
def run(args, timeout=20, **kw):
    """A subprocess with a hard timeout (the tool's own timeout is set by the caller too)."""
    return subprocess.run(list(args), capture_output=True, timeout=timeout * SLACK + 10, **kw)


def curl(*args, timeout=20):
    t = str(int(timeout * SLACK))
    return run(["curl", "-sS", "--max-time", t, *args], timeout=timeout)


def parse_heads(raw):
    """curl --dump-header output: a list of (status line, [(name, value)]) heads."""
    heads = []
    for block in raw.decode("latin-1").split("\r\n\r\n"):
        lines = [ln for ln in block.split("\r\n") if ln]
        if not lines:
            continue
        hdrs = []
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs.append((k.strip().lower(), v.strip()))
        heads.append((lines[0].strip(), hdrs))
    return heads


def hget(hdrs, name):
    return next((v for k, v in hdrs if k == name.lower()), None)


class CurlResult:
    def __init__(self, proc, heads, body):
        self.proc = proc
        self.heads = heads
        self.status_line, self.headers = heads[-1] if heads else ("", [])
        self.body = body

    @property
    def status(self):
        parts = self.status_line.split()
        return int(parts[1]) if len(parts) > 1 else None

    def header(self, name):
        return hget(self.headers, name)

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return (f"<curl rc={self.proc.returncode} {self.status_line!r} {self.headers!r} "
                f"body={self.body[:300]!r} stderr={self.proc.stderr[-800:]!r}>")


def curl_fetch(tmp_path, *args, timeout=20, body_file=None):
    """Runs curl with headers and body to files; returns a CurlResult."""
    hfile = tmp_path / f"h{os.getpid()}-{threading.get_ident()}"
    bfile = body_file or tmp_path / f"b{os.getpid()}-{threading.get_ident()}"
    p = curl("-D", str(hfile), "-o", str(bfile), *args, timeout=timeout)
    heads = parse_heads(hfile.read_bytes()) if hfile.exists() else []
    body = b""
    if body_file is None and os.path.exists(bfile):
        body = open(bfile, "rb").read()
    return CurlResult(p, heads, body)


def self_signed_cert(directory):
    key, cert = os.path.join(directory, "k.pem"), os.path.join(directory, "c.pem")
    if not os.path.exists(cert):
        p = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=localhost", "-addext",
                 "subjectAltName=DNS:localhost", "-days", "2", "-keyout", key, "-out", cert],
                timeout=30)
        assert p.returncode == 0, p.stderr
    return cert, key


def assert_h2_error(st, status, code):
    """A gateway error on an HTTP/2 stream: status, JSON body with code and the request id."""
    assert st.status == status, st
    assert (st.header("content-type") or "").startswith("application/json"), st
    err = st.json()["error"]
    assert err["status"] == status and err["code"] == code, err
    assert err["request_id"] == st.header("x-request-id"), st


def no_pseudo_or_h2_headers(rec):
    names = rec.header_names()
    assert not [n for n in names if n.startswith(":")], rec.headers
    for n in ("http2-settings", "upgrade", "te", "keep-alive", "proxy-connection"):
        assert n not in names, (n, rec.headers)


# ----- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return self_signed_cert(str(tmp_path_factory.mktemp("h2certs")))


def _routes(upstream_name):
    routes = [gw.route("key", {"path_prefix": "/key"}, upstream_name, auth=["keys"]),
              gw.route("get-only", {"path_prefix": "/get-only", "methods": ["GET"]},
                       upstream_name)]
    routes += [gw.route(f"p{i}", {"path_prefix": p}, upstream_name,
                        **({"headers": {"response": {"remove": ["X-Remove-Me"]}}}
                           if p == "/echo" else {}))
               for i, p in enumerate(PREFIXES)]
    return routes


def _auth():
    return {"auth_providers": {"keys": {"type": "api_key", "from": ["header:X-API-Key"]}},
            "consumers": [{"name": "alice", "groups": ["admins"], "api_keys": [ALICE_KEY]}]}


@pytest.fixture(scope="module")
def env(module_gateway, module_upstreams):
    u = module_upstreams("h1")
    cfg = gw.config(_routes("u"), {"u": gw.up(u, timeouts={"request": "60s"})},
                    limits={"max_body_bytes": "1GiB"}, listener={"http2": True}, **_auth())
    g = module_gateway(cfg)
    return g, u


@pytest.fixture(scope="module")
def tls_env(module_gateway, module_upstreams, certs):
    u = module_upstreams("h1tls")
    cert, key = certs
    listener = {"http2": True, "tls": {"certificates": [{"cert": cert, "key": key}]}}
    g = module_gateway(gw.config(_routes("u"), {"u": gw.up(u)}, listener=listener, **_auth()))
    return g, u


# ----- 1. prior knowledge with curl ---------------------------------------------------------------
def test_curl_prior_knowledge_get(env, tmp_path):
    g, u = env
    n = u.count()
    r = curl_fetch(tmp_path, "--http2-prior-knowledge", g.url("/echo/a?q=1"),
                   "-H", "X-Client: yes")
    assert r.proc.returncode == 0, r
    assert r.status_line.startswith("HTTP/2 200"), r
    assert HEX32.match(r.header("x-request-id") or ""), r
    assert r.header("x-upstream-name") == "h1"
    assert r.header("x-remove-me") is None  # route response rules apply on HTTP/2 too
    for name in CONNECTION_SPECIFIC:
        assert r.header(name) is None, (name, r)
    assert u.count() == n + 1
    rec = u.last()
    assert rec.version == "HTTP/1.1" and rec.method == "GET" and rec.target == "/echo/a?q=1"
    assert rec.header_all("Host") == [f"127.0.0.1:{g.port}"]
    assert rec.header("X-Forwarded-Proto") == "http"
    assert rec.header("X-Forwarded-For") == "127.0.0.1"
    assert rec.header("X-Client") == "yes"
    assert rec.header_all("X-Request-Id") == [r.header("x-request-id")]
    no_pseudo_or_h2_headers(rec)
    assert r.json()["path"] == "/echo/a"


def test_curl_prior_knowledge_post(env, tmp_path):
    g, u = env
    payload = os.urandom(3 * MiB + 17)
    f = tmp_path / "post.bin"
    f.write_bytes(payload)
    r = curl_fetch(tmp_path, "--http2-prior-knowledge", "--data-binary", f"@{f}",
                   "-H", "Content-Type: application/octet-stream", g.url("/echo/post"))
    assert r.proc.returncode == 0, r
    assert r.status_line.startswith("HTTP/2 200"), r
    rec = u.last()
    assert rec.method == "POST" and rec.path == "/echo/post" and rec.complete
    assert rec.body_len == len(payload)
    assert rec.body_sha256 == hashlib.sha256(payload).hexdigest()
    assert rec.header("Content-Type") == "application/octet-stream"
    no_pseudo_or_h2_headers(rec)
    assert r.json()["body_sha256"] == rec.body_sha256


def test_server_settings_default_max_concurrent_streams(env):
    g, _ = env
    with H2Client(g.port) as c:
        s = c.wait_settings()
        assert s.get(h2client.MAX_CONCURRENT_STREAMS) == 100, s
        sid = c.request("GET", "/echo/settings")
        assert c.response(sid).status == 200


def test_http1_still_served_on_an_http2_listener(env):
    g, u = env
    status, headers, body = g.request("GET", "/echo/h1")
    assert status == 200
    assert u.last().path == "/echo/h1"


# ----- 2. Upgrade: h2c --------------------------------------------------------------------------
def test_curl_upgrade_h2c(env, tmp_path):
    g, u = env
    n = u.count()
    r = curl_fetch(tmp_path, "--http2", "-v", g.url("/echo/upgrade"))
    assert r.proc.returncode == 0, r
    assert [h[0].split()[1] for h in r.heads] == ["101", "200"], r.heads
    assert r.heads[0][0].startswith("HTTP/1.1 101"), r.heads
    assert r.status_line.startswith("HTTP/2 200"), r
    assert b"HTTP/2 200" in r.proc.stderr
    assert u.count() == n + 1
    rec = u.last()
    assert rec.path == "/echo/upgrade" and rec.version == "HTTP/1.1"
    no_pseudo_or_h2_headers(rec)
    assert rec.header_all("Host") == [f"127.0.0.1:{g.port}"]
    assert "http2-settings" not in rec.header_names()


def test_upgrade_h2c_then_more_streams_with_nghttp(env):
    """nghttp -u: the first request upgrades, then the other URIs go as streams 3, 5, ..."""
    g, u = env
    n = u.count()
    p = run(["nghttp", "-u", "-n", "-s", "-t", str(int(10 * SLACK)),
             g.url("/echo/u1"), g.url("/echo/u2"), g.url("/echo/u3")], timeout=20)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert u.count() == n + 3
    assert sorted(r.path for r in u.since(n)) == ["/echo/u1", "/echo/u2", "/echo/u3"]


# ----- 3. TLS, ALPN h2 --------------------------------------------------------------------------
def test_curl_tls_negotiates_h2(tls_env, tmp_path):
    g, u = tls_env
    url = f"https://localhost:{g.port}/echo/tls"
    r = curl_fetch(tmp_path, "-k", "--http2", "--resolve", f"localhost:{g.port}:127.0.0.1", url)
    assert r.proc.returncode == 0, r
    assert r.status_line.startswith("HTTP/2 200"), r
    rec = u.last()
    assert rec.path == "/echo/tls"
    assert rec.header("X-Forwarded-Proto") == "https"
    assert rec.header_all("Host") == [f"localhost:{g.port}"]
    no_pseudo_or_h2_headers(rec)


def test_tls_alpn_http11_still_works(tls_env, tmp_path):
    g, _ = tls_env
    r = curl_fetch(tmp_path, "-k", "--http1.1", "--resolve", f"localhost:{g.port}:127.0.0.1",
                   f"https://localhost:{g.port}/echo/tls11")
    assert r.proc.returncode == 0, r
    assert r.status_line.startswith("HTTP/1.1 200"), r


def test_tls_raw_client_alpn_h2(tls_env):
    g, u = tls_env
    with H2Client(g.port, tls=True, authority=f"localhost:{g.port}") as c:
        assert c.alpn == "h2"
        sid = c.request("GET", "/echo/raw-tls")
        st = c.response(sid)
        assert st.status == 200, st
        assert st.json()["path"] == "/echo/raw-tls"


def test_nghttp_over_tls(tls_env, certs):
    g, u = tls_env
    n = u.count()
    p = run(["nghttp", "-n", "-s", "-t", str(int(10 * SLACK)),
             f"https://127.0.0.1:{g.port}/echo/n1", f"https://127.0.0.1:{g.port}/bytes/100000"],
            timeout=20)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert u.count() == n + 2


# ----- 4. nghttp ----------------------------------------------------------------------------------
def test_nghttp_verbose_single(env):
    g, u = env
    n = u.count()
    p = run(["nghttp", "-nv", "-t", str(int(10 * SLACK)), g.url("/nghttp/one")], timeout=20)
    out = p.stdout.decode("latin-1")
    assert p.returncode == 0, out[-3000:] + p.stderr.decode("latin-1")
    assert re.search(r"recv \(stream_id=\d+\) :status: 200", out), out[-3000:]
    # The request id is sent never-indexed ("sensitive" in nghttp's words): a value no other
    # response repeats is kept out of the HPACK dynamic table.
    assert re.search(r"recv \(stream_id=\d+(, sensitive)?\) x-request-id: [0-9a-f]{32}", out), \
        out[-3000:]
    assert "recv SETTINGS frame" in out
    assert u.count() == n + 1 and u.last().path == "/nghttp/one"


def test_nghttp_many_streams_one_connection(env):
    g, u = env
    n = u.count()
    p = run(["nghttp", "-n", "-s", "-m", "10", "-t", str(int(10 * SLACK)),
             g.url("/nghttp/many")], timeout=20)
    out = p.stdout.decode("latin-1")
    assert p.returncode == 0, out[-3000:] + p.stderr.decode("latin-1")
    # The statistics table: one line per request, with the status code.
    rows = re.findall(r"^\s*\d+\s+\S+\s+\S+\s+\S+\s+(\d{3})\s+\S+\s+/nghttp/many$", out, re.M)
    assert rows == ["200"] * 10, out[-3000:]
    assert u.count() == n + 10
    assert {r.path for r in u.since(n)} == {"/nghttp/many"}


def test_nghttp_different_uris_one_connection(env):
    g, u = env
    n = u.count()
    uris = [g.url(p) for p in ("/nghttp/a", "/bytes/70000", "/slow/100", "/nghttp/b")]
    p = run(["nghttp", "-n", "-s", "-t", str(int(10 * SLACK)), *uris], timeout=20)
    out = p.stdout.decode("latin-1")
    assert p.returncode == 0, out[-3000:]
    assert len(re.findall(r"^\s*\d+\s+\S+\s+\S+\s+\S+\s+200\s", out, re.M)) == 4, out[-3000:]
    assert sorted(r.path for r in u.since(n)) == sorted(["/nghttp/a", "/bytes/70000",
                                                        "/slow/100", "/nghttp/b"])


# ----- 5. h2load ----------------------------------------------------------------------------------
def test_h2load_2000_requests(env):
    g, u = env
    n = u.count()
    p = run(["h2load", "-n", "2000", "-c", "4", "-m", "10", g.url("/load/x")], timeout=60)
    out = p.stdout.decode("latin-1")
    assert p.returncode == 0, out[-3000:] + p.stderr.decode("latin-1")[-2000:]
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    assert m, out
    assert m.groups() == ("2000", "2000", "2000", "2000", "0", "0", "0"), out
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    assert codes and codes.groups() == ("2000", "0", "0", "0"), out
    wait_until(lambda: u.count() >= n + 2000, 5 * SLACK, message="2000 upstream requests")
    assert u.count() == n + 2000


# ----- 6. large bodies ------------------------------------------------------------------------------
def test_20mib_download_with_curl(env, tmp_path):
    g, u = env
    size = 20 * MiB + 3
    out = tmp_path / "down.bin"
    r = curl_fetch(tmp_path, "--http2-prior-knowledge", g.url(f"/bytes/{size}"), body_file=out,
                   timeout=60)
    assert r.proc.returncode == 0, r
    assert r.status_line.startswith("HTTP/2 200"), r
    assert out.stat().st_size == size
    h = hashlib.sha256()
    with open(out, "rb") as f:
        for piece in iter(lambda: f.read(MiB), b""):
            h.update(piece)
    assert h.hexdigest() == pattern_sha256(size)


def test_20mib_upload_with_curl(env, tmp_path):
    g, u = env
    size = 20 * MiB + 5
    f = tmp_path / "up.bin"
    with open(f, "wb") as fh:
        for piece in pattern_chunks(size):
            fh.write(piece)
    r = curl_fetch(tmp_path, "--http2-prior-knowledge", "--data-binary", f"@{f}",
                   "-H", "Content-Type: application/octet-stream", g.url("/upload/big"),
                   timeout=60)
    assert r.proc.returncode == 0, r
    assert r.status_line.startswith("HTTP/2 200"), r
    rec = u.last()
    assert rec.path == "/upload/big" and rec.complete
    assert rec.body_len == size
    assert rec.body_sha256 == pattern_sha256(size)


def test_20mib_download_small_client_windows_nghttp(env, tmp_path):
    """nghttp -w 14 -W 14: 16 KiB stream and connection windows; the body still arrives whole."""
    g, u = env
    size = 20 * MiB + 1
    saved = tmp_path / "nghttp.out"
    with open(saved, "wb") as out:
        p = subprocess.run(["nghttp", "-w", "14", "-W", "14", "-t", str(int(60 * SLACK)),
                            g.url(f"/bytes/{size}")], stdout=out, stderr=subprocess.PIPE,
                           timeout=90 * SLACK)
    assert p.returncode == 0, p.stderr[-2000:]
    assert saved.stat().st_size == size
    h = hashlib.sha256()
    with open(saved, "rb") as f:
        for piece in iter(lambda: f.read(MiB), b""):
            h.update(piece)
    assert h.hexdigest() == pattern_sha256(size)
    # And an upload with nghttp -d under the same small windows.
    up = tmp_path / "up.bin"
    with open(up, "wb") as fh:
        for piece in pattern_chunks(size):
            fh.write(piece)
    p = run(["nghttp", "-n", "-w", "14", "-W", "14", "-t", str(int(60 * SLACK)), "-d", str(up),
             g.url("/upload/nghttp")], timeout=90)
    assert p.returncode == 0, p.stderr[-2000:]
    rec = u.last()
    assert rec.path == "/upload/nghttp" and rec.method == "POST" and rec.complete
    assert rec.body_len == size and rec.body_sha256 == pattern_sha256(size)


def test_upload_and_download_with_raw_client_tiny_windows(env):
    """The raw client with 1 KiB receive windows, downloading and uploading at once."""
    g, u = env
    down = 2 * MiB + 9
    up = b"".join(pattern_chunks(3 * MiB + 1))
    with H2Client(g.port, timeout=30 * SLACK,
                  settings={h2client.INITIAL_WINDOW_SIZE: 1024}) as c:
        c.wait_settings()
        s1 = c.request("GET", f"/bytes/{down}")
        s2 = c.request("POST", "/upload/raw", body=up, timeout=30 * SLACK)
        r2 = c.response(s2, timeout=30 * SLACK)
        r1 = c.response(s1, timeout=60 * SLACK)
    assert r1.status == 200 and r1.body_len == down
    assert r1.body_sha256 == pattern_sha256(down)
    assert r2.status == 200, r2
    assert r2.json()["body_len"] == len(up)
    assert r2.json()["body_sha256"] == hashlib.sha256(up).hexdigest()


# ----- 7. errors and auth ---------------------------------------------------------------------------
def test_404_405_json_over_h2(env):
    g, u = env
    n = u.count()
    with H2Client(g.port) as c:
        s = c.request("GET", "/nope/none", headers=[("x-request-id", "h2-err-1")])
        st = c.response(s)
        assert_h2_error(st, 404, "no_route")
        assert st.header("x-request-id") == "h2-err-1"
        s = c.request("POST", "/get-only/x", body=b"abc")
        st = c.response(s)
        assert_h2_error(st, 405, "method_not_allowed")
        assert [m.strip() for m in st.header("allow").split(",")] == ["GET"]
        s = c.request("GET", "/get-only/x")
        assert c.response(s).status == 200
    assert u.count() == n + 1


def test_auth_api_key_over_h2(env):
    g, u = env
    n = u.count()
    with H2Client(g.port) as c:
        st = c.response(c.request("GET", "/key/a"))
        assert_h2_error(st, 401, "unauthenticated")
        assert st.header_all("www-authenticate"), st
        st = c.response(c.request("GET", "/key/a", headers=[("x-api-key", "wrong")]))
        assert_h2_error(st, 401, "unauthenticated")
        assert u.count() == n
        st = c.response(c.request("GET", "/key/b", headers=[("x-api-key", ALICE_KEY)]))
        assert st.status == 200, st
    assert u.count() == n + 1
    rec = u.last()
    assert rec.path == "/key/b"
    assert rec.header_all("X-Consumer-Name") == ["alice"]


# ----- 8. RST_STREAM from the client -----------------------------------------------------------------
def test_client_reset_mid_response_leaves_other_streams_alone(env):
    g, u = env
    big = 50 * MiB
    other = 3 * MiB + 1
    with H2Client(g.port, timeout=30 * SLACK) as c:
        s1 = c.request("GET", f"/bytes/{big}")
        s2 = c.request("GET", f"/bytes/{other}")
        st1 = c.streams[s1]
        c.wait(lambda: st1.body_len > 100000, message="the first stream's body to flow")
        c.rst(s1, h2client.CANCEL)
        st2 = c.response(s2, timeout=30 * SLACK)
        assert st2.status == 200 and st2.body_len == other
        assert st2.body_sha256 == pattern_sha256(other)
        # A new stream on the same connection works too.
        st3 = c.response(c.request("GET", "/echo/after-reset"))
        assert st3.status == 200 and st3.json()["path"] == "/echo/after-reset"
        assert c.goaway is None and not c.closed
        assert not st1.ended and st1.body_len < big
    g.assert_healthy()


# ----- 9. connection-specific response headers ------------------------------------------------------
@pytest.mark.parametrize("path,body", [("/hop", b"hop\n"), ("/chunked", b"hello chunked world")])
def test_connection_specific_response_headers_not_sent(env, path, body):
    g, u = env
    with H2Client(g.port) as c:
        st = c.response(c.request("GET", path))
    assert st.status == 200, st
    assert bytes(st.body) == body
    names = [k for k, _ in st.headers]
    for name in CONNECTION_SPECIFIC + ("x-hop-custom", "trailer"):
        assert name not in names, (name, st.headers)
    if path == "/hop":
        assert st.header("x-end-to-end") == "kept"
    # curl would refuse a malformed HTTP/2 response; check it is happy too.
    p = curl("--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}", g.url(path))
    assert p.returncode == 0 and p.stdout == b"200", p


# ----- 10. HTTP/1.1 clients to an HTTP/2 upstream ---------------------------------------------------
@pytest.fixture
def h2up_env(gateway):
    up = H2Upstream("h2", lifetime=120)
    try:
        cfg = gw.config([gw.route("all", {"path_prefix": "/"}, "h2u")],
                        {"h2u": gw.up(up, protocol="http2", timeouts={"request": "30s"})},
                        limits={"max_body_bytes": "1GiB"})
        g = gateway(cfg)
        yield g, up
    finally:
        up.stop()


def test_h1_client_to_h2_upstream_get(h2up_env):
    g, up = h2up_env
    c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10 * SLACK)
    c.request("GET", "/echo/h2?x=1", headers={"Host": "svc.example", "X-Client": "1",
                                              "Connection": "keep-alive, X-Private",
                                              "X-Private": "p", "TE": "gzip"})
    r = c.getresponse()
    body = r.read()
    c.close()
    assert r.status == 200, body
    j = json.loads(body)
    assert j["version"] == "HTTP/2" and j["path"] == "/echo/h2" and j["query"] == "x=1"
    rec = up.last()
    assert rec.method == "GET" and rec.target == "/echo/h2?x=1"
    assert rec.scheme == "http"
    assert rec.authority == "svc.example" or rec.header("host") == "svc.example", rec.raw_headers
    names = rec.header_names()
    for n in CONNECTION_SPECIFIC + ("x-private", "te"):
        assert n not in names, (n, rec.raw_headers)
    if rec.authority and rec.header("host"):
        assert rec.header_all("host") == [rec.authority], rec.raw_headers
    assert rec.header("x-client") == "1"
    assert rec.header("x-forwarded-proto") == "http"
    assert HEX32.match(rec.header("x-request-id") or ""), rec.raw_headers
    assert r.getheader("X-Upstream-Name") == "h2"
    assert up.errors == []


def test_answers_that_end_before_they_are_read_give_their_window_back(h2up_env):
    # Each 60 KB answer arrives whole (HEADERS, DATA, END_STREAM) before the session reads it.
    # The stream is closed by then, but its bytes still count against the connection's 1 MiB
    # window until acknowledged: that was never done, so ~17 such answers stalled the upstream
    # connection for good (found by bench/transcode-cost with small gRPC answers).
    g, up = h2up_env
    c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=5 * SLACK)
    for i in range(60):
        c.request("GET", f"/bytes/60000?i={i}")
        r = c.getresponse()
        body = r.read()
        assert r.status == 200 and len(body) == 60000, (i, r.status, len(body))
    c.close()
    assert up.connection_count() == 1  # all of them over one upstream connection
    assert up.errors == []


def test_h1_client_to_h2_upstream_streamed_bodies(h2up_env):
    g, up = h2up_env
    size = 8 * MiB + 3
    # Chunked upload (http.client chunks an iterable body).
    c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=30 * SLACK)
    c.request("POST", "/echo/upload", body=pattern_chunks(size, 50000),
              headers={"Content-Type": "application/octet-stream"}, encode_chunked=True)
    r = c.getresponse()
    j = json.loads(r.read())
    assert r.status == 200, j
    assert j["body_len"] == size and j["body_sha256"] == pattern_sha256(size)
    rec = up.last()
    assert rec.complete and rec.body_len == size
    assert "transfer-encoding" not in rec.header_names()
    # Content-Length upload.
    payload = os.urandom(2 * MiB + 1)
    c.request("POST", "/echo/cl", body=payload)
    r = c.getresponse()
    j = json.loads(r.read())
    assert r.status == 200 and j["body_len"] == len(payload)
    assert j["body_sha256"] == hashlib.sha256(payload).hexdigest()
    # Download, read in pieces.
    dsize = 20 * MiB + 7
    c.request("GET", f"/bytes/{dsize}")
    r = c.getresponse()
    assert r.status == 200
    h, total = hashlib.sha256(), 0
    while True:
        piece = r.read(MiB)
        if not piece:
            break
        h.update(piece)
        total += len(piece)
    assert total == dsize and h.hexdigest() == pattern_sha256(dsize)
    # Without content-length from the upstream: the client still gets a delimited body.
    c.request("GET", "/bytes/100000?nocl=1")
    r = c.getresponse()
    data = r.read()
    assert r.status == 200 and len(data) == 100000
    c.close()
    assert up.errors == []


def test_h1_clients_to_h2_upstream_share_connections(h2up_env):
    g, up = h2up_env
    n_threads, per_thread = 40, 5
    results, errors = [], []

    def worker(i):
        try:
            c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=20 * SLACK)
            for k in range(per_thread):
                c.request("GET", f"/slow/100/{i}/{k}")
                r = c.getresponse()
                results.append((r.status, json.loads(r.read())["path"]))
            c.close()
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60 * SLACK)
    assert not errors, errors[:5]
    assert len(results) == n_threads * per_thread
    assert all(s == 200 for s, _ in results)
    assert up.count() == n_threads * per_thread
    # 40 concurrent requests, a peer limit of 100 streams: multiplexed on a few connections.
    assert up.connection_count() <= 4, up.connection_count()
    assert up.max_streams_in_flight > 1
    assert up.errors == []


def test_h1_client_to_h2_upstream_over_tls(gateway, certs):
    cert, key = certs
    up = H2Upstream("h2tls", lifetime=60, tls=(cert, key))
    try:
        upcfg = gw.up(up, protocol="http2", tls={"verify": True, "ca": cert, "sni": "localhost"})
        g = gateway(gw.config([gw.route("all", {"path_prefix": "/"}, "h2u")], {"h2u": upcfg}))
        status, headers, body = g.request("GET", "/echo/tls-up")
        assert status == 200, body
        assert json.loads(body)["version"] == "HTTP/2"
        assert up.last().path == "/echo/tls-up" and up.last().scheme == "https"
    finally:
        up.stop()


def test_h2_client_to_h2_upstream(gateway):
    """Both sides HTTP/2: streams of one client connection map to upstream streams."""
    up = H2Upstream("h2both", lifetime=60)
    try:
        g = gateway(gw.config([gw.route("all", {"path_prefix": "/"}, "h2u")],
                              {"h2u": gw.up(up, protocol="http2")}, listener={"http2": True}))
        with H2Client(g.port, timeout=20 * SLACK) as c:
            sids = [c.request("GET", f"/slow/200/{i}") for i in range(10)]
            sbig = c.request("GET", f"/bytes/{5 * MiB}")
            for sid in sids:
                st = c.response(sid)
                assert st.status == 200 and st.json()["version"] == "HTTP/2", st
            big = c.response(sbig)
            assert big.body_len == 5 * MiB and big.body_sha256 == pattern_sha256(5 * MiB)
        assert up.count() == 11
        assert up.connection_count() <= 2
    finally:
        up.stop()


def test_h2_upstream_stream_reset_is_502_and_goaway_is_survived(h2up_env):
    """An upstream RST_STREAM is a 502 for that request only; an upstream GOAWAY after a
    response makes the gateway open a new connection for the next request."""
    g, up = h2up_env
    resp = rawhttp.exchange(g.port, rawhttp.request_bytes("GET", "/reset"), timeout=10 * SLACK)
    assert_error(resp, 502, "bad_upstream")
    status, _, body = g.request("GET", "/echo/after-reset", timeout=10 * SLACK)
    assert status == 200, body
    status, _, body = g.request("GET", "/goaway", timeout=10 * SLACK)
    assert status == 200, body
    conns = up.connection_count()
    for i in range(3):
        status, _, body = g.request("GET", f"/echo/after-goaway/{i}", timeout=10 * SLACK)
        assert status == 200, body
    assert up.connection_count() == conns + 1
    assert up.errors == []


def test_h2_upstream_status_and_timeout(gateway):
    up = H2Upstream("h2t", lifetime=60)
    try:
        g = gateway(gw.config([gw.route("all", {"path_prefix": "/"}, "h2u")],
                              {"h2u": gw.up(up, protocol="http2", timeouts={"request": "1s"})}))
        status, headers, body = g.request("GET", "/status/418")
        assert status == 418 and body == b"status 418\n"
        resp = rawhttp.exchange(g.port, rawhttp.request_bytes("GET", "/hang"), timeout=10 * SLACK)
        assert_error(resp, 504, "upstream_timeout")
        # The hung stream was reset towards the upstream, the connection still serves.
        wait_until(lambda: any(r.path == "/hang" and r.reset is not None for r in up.snapshot()),
                   5 * SLACK, message="the gateway to reset the timed-out upstream stream")
        status, _, _ = g.request("GET", "/echo/after-timeout")
        assert status == 200
        assert up.connection_count() == 1
    finally:
        up.stop()


# ----- 11. Trailers end to end, HTTP/2 client to HTTP/2 upstream -------------------------------
@pytest.mark.parametrize("protocol", ["http2", "grpc"])
def test_h2_trailers_both_ways_through_an_h2_upstream(gateway, protocol):
    up = H2Upstream("h2t", lifetime=60)
    try:
        cfg = gw.config([gw.route("all", {"path_prefix": "/"}, "h2u")],
                        {"h2u": gw.up(up, protocol=protocol)}, listener={"http2": True})
        g = gateway(cfg)
        with H2Client(g.port) as c:
            for i in range(2):  # and again on the same connection
                sid = c.new_sid()
                c.send_headers(sid, c.request_headers("POST", "/trailers", [("te", "trailers")]),
                               end_stream=False)
                c.send_body(sid, b"hello", end_stream=False)
                c.send_headers(sid, [("x-req-sum", f"s{i}"), ("x-second", "2")], end_stream=True)
                st = c.response(sid)
                assert st.status == 200, st
                assert st.trailers is not None and ("x-trailer", "yes") in st.trailers, st
                rec = up.last()
                assert rec.body == b"hello", rec
                assert rec.header("te") == "trailers", rec.headers
                trailers = dict(rec.trailers or [])
                assert trailers.get("x-req-sum") == f"s{i}" and trailers.get("x-second") == "2", \
                    rec.trailers
                # Trailers never leak into the head.
                assert rec.header("x-req-sum") is None, rec.headers
        g.assert_healthy()
    finally:
        up.stop()


def test_h2_client_trailers_to_http1_upstream_are_dropped(gateway, upstream):
    g = gateway(gw.config([gw.route("all", {"path_prefix": "/"}, "u")], {"u": gw.up(upstream)},
                          listener={"http2": True}))
    with H2Client(g.port) as c:
        sid = c.new_sid()
        c.send_headers(sid, c.request_headers("POST", "/echo/t", [("te", "trailers")]),
                       end_stream=False)
        c.send_body(sid, b"abc", end_stream=False)
        c.send_headers(sid, [("x-req-sum", "s")], end_stream=True)
        st = c.response(sid)
        assert st.status == 200, st
    rec = upstream.last()
    assert rec.body == b"abc", rec
    # Dropped (RFC 9110 §6.5.1), never merged into the head: the body is exactly what was sent.
    assert "x-req-sum" not in rec.header_names() and "te" not in rec.header_names(), rec.headers
    assert rec.body_len == 3 and rec.complete, rec
    g.assert_healthy()
