"""TLS termination at the edge: HTTPS proxying, certificates chosen by SNI (exact, wildcard,
default), ALPN, the minimum version, session resumption, certificate files reloaded when they
change on disk, client certificates (mTLS) and the `mtls` auth provider, what happens to plain
HTTP and to stalled handshakes on a TLS port, and the config checks of certificate files.

The test PKI (support.certs) is made once per session with the openssl command line. Clients are
Python's ssl module, curl and `openssl s_client`; every socket and subprocess has a timeout.
Every refusal is checked to reach no upstream.
"""
import hashlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import warnings

import pytest

from support import certs
from support import gateway as gw
from support import rawhttp
from support.rawhttp import request_bytes
from support.util import (SANITIZED, SLACK, assert_error, free_port, pattern_chunks,
                          pattern_sha256, wait_until)

IO_TIMEOUT = 10.0 * SLACK            # any one socket operation
RELOAD_WAIT = 10.0 * SLACK           # a changed certificate file must be served within this
HEADER_TIMEOUT = 2.0 if SANITIZED else 1.0


# ----- the PKI ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return certs.make_pki(str(tmp_path_factory.mktemp("pki")))


def cert_entry(c, sni=None):
    d = {"cert": c.cert, "key": c.key}
    if sni is not None:
        d["sni"] = sni
    return d


def tls_block(pki, names=("default", "api", "wild"), **extra):
    """listeners[].tls with pki certificates (the first is the default) and extra keys."""
    block = {"certificates": [cert_entry(getattr(pki, n)) for n in names]}
    block.update(extra)
    return block


def render(cfg):
    """YAML text of a config; min_version is quoted (a plain 1.2 is a YAML float)."""
    text = gw.to_yaml(cfg)
    return re.sub(r"(min_version: )(1\.[0-9])\b", r'\1"\2"', text)


def catch_all(upstream_name="main"):
    return [gw.route("all", {"path_prefix": "/"}, upstream_name)]


# ----- clients ----------------------------------------------------------------------------------
VERSIONS = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1,
            "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def client_ctx(pki, version=None, alpn=None, client=None, verify=True):
    """A client context trusting the test CA. version: "1.2" etc. pins min = max.
    client: a certs.Cert presented as the client certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # the tests check the names themselves
    if verify:
        ctx.load_verify_locations(pki.ca.cert)
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if version is not None:
        if version in ("1.0", "1.1"):
            # OpenSSL 3 refuses TLS < 1.2 at the default security level; let the client try.
            ctx.set_ciphers("DEFAULT@SECLEVEL=0")
        with warnings.catch_warnings():  # TLSv1 and TLSv1_1 are deprecated (on purpose here)
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if client is not None:
        ctx.load_cert_chain(client.cert, client.key)
    return ctx


def tls_connect(port, ctx, sni=None, session=None, timeout=IO_TIMEOUT):
    """A finished handshake to 127.0.0.1:port; sni=None sends no server_name."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s = ctx.wrap_socket(raw, server_hostname=sni, session=session)
    except BaseException:
        raw.close()
        raise
    s.settimeout(timeout)
    return s


def subject_of(peer):
    """{"CN": ..., "O": ...} from getpeercert()'s subject."""
    names = {"commonName": "CN", "organizationName": "O"}
    out = {}
    for rdn in peer.get("subject", ()):
        for k, v in rdn:
            if k in names:
                out[names[k]] = v
    return out


def peer_cert(port, pki, sni=None, ctx=None):
    """The verified certificate the gateway presents for `sni`: {"CN", "O", "serial", "san"}."""
    with tls_connect(port, ctx or client_ctx(pki), sni) as s:
        peer = s.getpeercert()
    info = subject_of(peer)
    info["serial"] = peer.get("serialNumber")
    info["san"] = [v for k, v in peer.get("subjectAltName", ()) if k == "DNS"]
    return info


def served_serial(port, pki, sni="api.example.com"):
    return peer_cert(port, pki, sni)["serial"]


def https(port, pki, target, sni="api.example.com", host=None, headers=None, body=b"",
          method="GET", ctx=None, timeout=IO_TIMEOUT):
    """One request on a fresh TLS connection; returns the rawhttp.Response."""
    s = tls_connect(port, ctx or client_ctx(pki), sni, timeout=timeout)
    with rawhttp.RawConn.from_socket(s, timeout) as c:
        c.send(request_bytes(method, target, host=host or sni or "127.0.0.1",
                             headers=headers or [], body=body))
        return c.read_response(method)


def attempt(port, ctx, sni="api.example.com", target="/refused", headers=None,
            timeout=IO_TIMEOUT):
    """Handshake, send one request, read one response.

    Returns ("handshake", exc) when the handshake fails, ("closed", exc-or-bytes) when the
    connection ends (alert, reset, EOF) before a response, or ("response", Response)."""
    try:
        s = tls_connect(port, ctx, sni, timeout=timeout)
    except (ssl.SSLError, OSError) as e:
        return "handshake", e
    try:
        c = rawhttp.RawConn.from_socket(s, timeout)
        try:
            c.send(request_bytes("GET", target, host=sni or "127.0.0.1", headers=headers or []))
            return "response", c.read_response()
        except rawhttp.IncompleteResponse as e:
            return "closed", e.data
        except (ssl.SSLError, OSError) as e:
            return "closed", e
    finally:
        s.close()


def assert_refused(port, ctx, upstream, sni="api.example.com", target="/refused"):
    before = upstream.count()
    kind, what = attempt(port, ctx, sni, target)
    assert kind != "response", f"expected the TLS connection to be refused, got {what!r}"
    assert upstream.count() == before, "a refused TLS client reached the upstream"
    return kind, what


def run(args, timeout=20.0 * SLACK, input=None, **kw):
    return subprocess.run(args, capture_output=True, timeout=timeout, input=input, **kw)


def s_client(port, *args, input=b"", timeout=20.0 * SLACK):
    """`openssl s_client -connect 127.0.0.1:PORT ARGS` with stdin `input`; (rc, text)."""
    p = run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args], input=input,
            timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


def s_client_leaf_subject(port, servername=None):
    """The subject line of the leaf certificate s_client receives (openssl x509 -subject)."""
    args = ["-showcerts"] + (["-servername", servername] if servername else ["-noservername"])
    p = run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args], input=b"")
    out = p.stdout.decode("utf-8", "replace")
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", out, re.S)
    assert m, f"no certificate in s_client output:\n{out}\n{p.stderr.decode(errors='replace')}"
    x = run(["openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253"],
            input=m.group(0).encode())
    return x.stdout.decode().strip()


# ----- the shared gateway -----------------------------------------------------------------------
class Env:
    pass


@pytest.fixture(scope="module")
def env(pki, module_gateway, module_upstreams):
    """TLS on the main listener (default, api, wild certificates), a plain second listener,
    two workers (so that connections, and resumptions, land on different workers)."""
    e = Env()
    e.pki = pki
    e.up = module_upstreams("main")
    plain_port = free_port()
    cfg = gw.config(catch_all(), {"main": gw.up(e.up)}, workers=2,
                    listener={"tls": tls_block(pki)},
                    extra_listeners=[{"name": "plain", "address": "127.0.0.1:@PLAIN@"}])
    e.g = module_gateway(render(cfg), subs={"PLAIN": plain_port})
    e.plain_port = plain_port
    return e


def test_curl_https_is_proxied_with_forwarded_proto(env):
    before = env.up.count()
    p = run(["curl", "-sS", "--http1.1", "--max-time", str(int(10 * SLACK)),
             "--cacert", env.pki.ca.cert,
             "--resolve", f"api.example.com:{env.g.port}:127.0.0.1",
             "-D", "-", "-H", "X-Forwarded-Proto: http",
             f"https://api.example.com:{env.g.port}/curl/path?q=1"])
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, out + p.stderr.decode(errors="replace")
    assert out.startswith("HTTP/1.1 200"), out
    assert re.search(r"(?im)^x-upstream-name: main\r?$", out), out
    assert env.up.count() == before + 1
    rec = env.up.last()
    assert rec.method == "GET" and rec.target == "/curl/path?q=1", rec
    # The client's own X-Forwarded-Proto is not trusted (127.0.0.1 is no trusted proxy).
    assert rec.header_all("X-Forwarded-Proto") == ["https"], rec.headers
    assert rec.header("Host") == f"api.example.com:{env.g.port}", rec.headers


def test_plain_listener_of_the_same_gateway_still_says_http(env):
    before = env.up.count()
    resp = rawhttp.exchange(env.plain_port, request_bytes("GET", "/plain", host="p.test"))
    assert resp.status == 200, resp
    assert env.up.count() == before + 1
    assert env.up.last().header_all("X-Forwarded-Proto") == ["http"]


def test_keepalive_requests_on_one_tls_connection(env):
    before = env.up.count()
    with rawhttp.RawConn.from_socket(tls_connect(env.g.port, client_ctx(env.pki),
                                                 "api.example.com"), IO_TIMEOUT) as c:
        for i in range(5):
            c.send(request_bytes("GET", f"/ka/{i}", host="api.example.com"))
            r = c.read_response()
            assert r.status == 200, r
            assert r.json()["path"] == f"/ka/{i}"
        # Pipelined: three requests in one write.
        c.send(b"".join(request_bytes("GET", f"/pipe/{i}", host="api.example.com")
                        for i in range(3)))
        for i in range(3):
            r = c.read_response()
            assert r.status == 200 and r.json()["path"] == f"/pipe/{i}", r
    recs = env.up.since(before)
    assert [r.path for r in recs] == [f"/ka/{i}" for i in range(5)] + [f"/pipe/{i}"
                                                                         for i in range(3)]
    assert all(r.header_all("X-Forwarded-Proto") == ["https"] for r in recs)


def test_large_request_body_over_tls(env):
    size = 3 * 1024 * 1024 + 17
    body = b"".join(pattern_chunks(size))
    before = env.up.count()
    # /status/201 answers with a few bytes: only the request direction is big here.
    r = https(env.g.port, env.pki, "/status/201", method="POST", body=body,
              timeout=30 * SLACK)
    assert r.status == 201, r
    assert env.up.count() == before + 1
    rec = env.up.last()
    assert rec.body_len == size and rec.body_sha256 == pattern_sha256(size), rec


@pytest.mark.parametrize("size", [16 * 1024 + 1, 100_000, 8 * 1024 * 1024 + 5])
def test_large_response_body_over_tls(env, size):
    r = https(env.g.port, env.pki, f"/bytes/{size}", timeout=30 * SLACK)
    assert r.status == 200, r
    assert len(r.body) == size
    assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(size)


def test_many_concurrent_tls_clients(env):
    errors = []
    before = env.up.count()

    def client(i):
        try:
            for j in range(4):
                r = https(env.g.port, env.pki, f"/conc/{i}/{j}")
                assert r.status == 200 and r.json()["path"] == f"/conc/{i}/{j}", r
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(f"client {i}: {exc!r}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60 * SLACK)
    assert not errors, errors
    assert env.up.count() == before + 64
    env.g.assert_healthy()


# ----- SNI --------------------------------------------------------------------------------------
@pytest.mark.parametrize("sni,expected", [
    ("api.example.com", "api.example.com"),
    ("API.Example.COM", "api.example.com"),            # server names compare case-insensitively
    ("foo.wild.example.com", "*.wild.example.com"),
    ("x-1.wild.example.com", "*.wild.example.com"),
    ("a.b.wild.example.com", "default.example.com"),   # a wildcard covers one label only
    ("wild.example.com", "default.example.com"),       # ... and never the bare parent
    ("default.example.com", "default.example.com"),
    ("unknown.example.org", "default.example.com"),
    ("example.com", "default.example.com"),
    (None, "default.example.com"),                      # no SNI at all
])
def test_sni_selects_certificate(env, sni, expected):
    info = peer_cert(env.g.port, env.pki, sni)
    assert info["CN"] == expected, info


def test_wildcard_certificate_chain_is_sent(env):
    """The wild certificate's file is leaf + intermediate; a client trusting only the root CA
    verifies it, so the gateway sends the chain."""
    with tls_connect(env.g.port, client_ctx(env.pki), "foo.wild.example.com") as s:
        peer = s.getpeercert()
        der = s.getpeercert(binary_form=True)
    assert subject_of(peer)["CN"] == "*.wild.example.com"
    text = certs.describe_der(der)
    assert "CN=*.wild.example.com" in text and "Intermediate" in text, text


@pytest.mark.parametrize("servername,expected", [
    ("api.example.com", "CN=api.example.com"),
    ("foo.wild.example.com", "CN=*.wild.example.com"),
    ("a.b.wild.example.com", "CN=default.example.com"),
    (None, "CN=default.example.com"),
])
def test_sni_with_openssl_s_client(env, servername, expected):
    subject = s_client_leaf_subject(env.g.port, servername)
    assert subject.startswith("subject=" + expected + ","), subject


def test_sni_list_replaces_the_certificate_names(gateway, upstream, pki):
    """An explicit sni: list is what selects the certificate (not the certificate's SAN)."""
    tls = {"certificates": [cert_entry(pki.default),
                            cert_entry(pki.api, sni=["alias.example.net", "*.alias.example.org"]),
                            cert_entry(pki.wild)]}
    g = gateway(render(gw.config(catch_all("up"), {"up": gw.up(upstream)},
                                 listener={"tls": tls})))
    assert peer_cert(g.port, pki, "alias.example.net")["CN"] == "api.example.com"
    assert peer_cert(g.port, pki, "x.alias.example.org")["CN"] == "api.example.com"
    assert peer_cert(g.port, pki, "api.example.com")["CN"] == "default.example.com"
    assert peer_cert(g.port, pki, "z.wild.example.com")["CN"] == "*.wild.example.com"
    r = https(g.port, pki, "/alias", sni="alias.example.net")
    assert r.status == 200 and upstream.last().path == "/alias"


def test_exact_name_beats_wildcard_whatever_the_order(gateway, upstream, pki, tmp_path):
    """A wildcard listed first does not shadow an exact name listed after it."""
    tls = {"certificates": [cert_entry(pki.default),
                            cert_entry(pki.wild, sni=["*.example.com"]),
                            cert_entry(pki.api)]}
    g = gateway(render(gw.config(catch_all("up"), {"up": gw.up(upstream)},
                                 listener={"tls": tls})))
    assert peer_cert(g.port, pki, "api.example.com")["CN"] == "api.example.com"
    assert peer_cert(g.port, pki, "other.example.com")["CN"] == "*.wild.example.com"


# ----- ALPN -------------------------------------------------------------------------------------
def _alpn(port, pki, offer, sni="api.example.com"):
    with tls_connect(port, client_ctx(pki, alpn=offer), sni) as s:
        return s.selected_alpn_protocol()


def test_alpn_http11_without_http2(env):
    assert _alpn(env.g.port, env.pki, ["h2", "http/1.1"]) == "http/1.1"
    assert _alpn(env.g.port, env.pki, ["http/1.1"]) == "http/1.1"


def test_alpn_h2_only_offer_without_http2_is_not_h2(env):
    try:
        got = _alpn(env.g.port, env.pki, ["h2"])
    except ssl.SSLError as e:  # RFC 7301: no_application_protocol alert
        assert "NO_APPLICATION_PROTOCOL" in str(e).upper() or "ALERT" in str(e).upper(), e
        return
    assert got is None, got


@pytest.fixture(scope="module")
def h2env(pki, module_gateway, module_upstreams):
    e = Env()
    e.pki = pki
    e.up = module_upstreams("h2up")
    cfg = gw.config(catch_all("h2up"), {"h2up": gw.up(e.up)},
                    listener={"http2": True, "tls": tls_block(pki)})
    e.g = module_gateway(render(cfg))
    return e


def test_alpn_h2_with_http2(h2env):
    assert _alpn(h2env.g.port, h2env.pki, ["h2", "http/1.1"]) == "h2"
    assert _alpn(h2env.g.port, h2env.pki, ["http/1.1"]) == "http/1.1"


def test_alpn_with_openssl_s_client(h2env, env):
    rc, out = s_client(h2env.g.port, "-servername", "api.example.com", "-alpn", "h2,http/1.1")
    assert "ALPN protocol: h2" in out, out
    rc, out = s_client(env.g.port, "-servername", "api.example.com", "-alpn", "h2,http/1.1")
    assert "ALPN protocol: http/1.1" in out, out


def test_http11_still_served_on_http2_listener(h2env):
    before = h2env.up.count()
    r = https(h2env.g.port, h2env.pki, "/h1-on-h2-listener",
              ctx=client_ctx(h2env.pki, alpn=["http/1.1"]))
    assert r.status == 200, r
    assert h2env.up.count() == before + 1
    assert h2env.up.last().header_all("X-Forwarded-Proto") == ["https"]


def test_curl_http2_over_tls(h2env):
    """After ALPN picks h2 the gateway must actually speak HTTP/2 on the connection."""
    before = h2env.up.count()
    p = run(["curl", "-sS", "--http2", "--max-time", str(int(10 * SLACK)),
             "--cacert", h2env.pki.ca.cert,
             "--resolve", f"api.example.com:{h2env.g.port}:127.0.0.1",
             "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
             f"https://api.example.com:{h2env.g.port}/via-h2"])
    out = p.stdout.decode()
    assert p.returncode == 0, out + p.stderr.decode(errors="replace")
    assert out == "2 200", out
    assert h2env.up.count() == before + 1
    rec = h2env.up.last()
    assert rec.path == "/via-h2"
    assert rec.header_all("X-Forwarded-Proto") == ["https"], rec.headers


# ----- versions ---------------------------------------------------------------------------------
def _assert_client_really_tried(exc):
    """The client itself could offer the version (else the refusal would prove nothing)."""
    text = str(exc).upper()
    assert "NO_PROTOCOLS_AVAILABLE" not in text and "NO CIPHERS AVAILABLE" not in text \
        and "NO_CIPHERS_AVAILABLE" not in text, f"the local client could not try: {exc!r}"


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_old_tls_versions_refused_by_default(env, version):
    kind, what = assert_refused(env.g.port, client_ctx(env.pki, version=version), env.up)
    assert kind == "handshake", what
    _assert_client_really_tried(what)


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_tls12_and_tls13_accepted_by_default(env, version):
    ctx = client_ctx(env.pki, version=version)
    before = env.up.count()
    with tls_connect(env.g.port, ctx, "api.example.com") as s:
        assert s.version() == f"TLSv{version}"
        with rawhttp.RawConn.from_socket(s, IO_TIMEOUT) as c:
            c.send(request_bytes("GET", f"/v{version}", host="api.example.com"))
            assert c.read_response().status == 200
    assert env.up.count() == before + 1


def test_s_client_tls11_refused(env):
    rc, out = s_client(env.g.port, "-servername", "api.example.com", "-tls1_1",
                       "-cipher", "DEFAULT@SECLEVEL=0")
    assert rc != 0, out
    assert not re.search(r"Protocol\s*:\s*TLSv1\.1", out) or "Cipher is (NONE)" in out, out


@pytest.fixture(scope="module")
def tls13env(pki, module_gateway, module_upstreams):
    e = Env()
    e.pki = pki
    e.up = module_upstreams("up13")
    cfg = gw.config(catch_all("up13"), {"up13": gw.up(e.up)},
                    listener={"tls": tls_block(pki, min_version="1.3")})
    e.g = module_gateway(render(cfg))
    return e


def test_min_version_13_refuses_tls12(tls13env):
    kind, what = assert_refused(tls13env.g.port, client_ctx(tls13env.pki, version="1.2"),
                                tls13env.up)
    assert kind == "handshake", what
    _assert_client_really_tried(what)


def test_min_version_13_accepts_tls13(tls13env):
    before = tls13env.up.count()
    with tls_connect(tls13env.g.port, client_ctx(tls13env.pki), "api.example.com") as s:
        assert s.version() == "TLSv1.3"
        with rawhttp.RawConn.from_socket(s, IO_TIMEOUT) as c:
            c.send(request_bytes("GET", "/only13", host="api.example.com"))
            assert c.read_response().status == 200
    assert tls13env.up.count() == before + 1


def test_gateway_serves_after_refused_versions(env):
    for v in ("1.0", "1.1"):
        attempt(env.g.port, client_ctx(env.pki, version=v))
    assert https(env.g.port, env.pki, "/after-refusals").status == 200
    env.g.assert_healthy()


# ----- session resumption -----------------------------------------------------------------------
def _request_on(s, target):
    c = rawhttp.RawConn.from_socket(s, IO_TIMEOUT)
    c.send(request_bytes("GET", target, host="api.example.com"))
    r = c.read_response()
    assert r.status == 200, r
    return r


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_session_resumption_python(env, version):
    """Every resumption is accepted, whichever of the two workers takes the connection."""
    ctx = client_ctx(env.pki, version=version)
    with tls_connect(env.g.port, ctx, "api.example.com") as s:
        _request_on(s, "/resume/0")  # TLS 1.3 tickets arrive after the handshake
        session = s.session
        assert not s.session_reused
    assert session is not None
    reused = []
    for i in range(1, 9):
        with tls_connect(env.g.port, ctx, "api.example.com", session=session) as s:
            _request_on(s, f"/resume/{i}")
            reused.append(s.session_reused)
            session = s.session or session
    assert all(reused), f"resumed {reused.count(True)} of {len(reused)}: {reused}"


@pytest.mark.parametrize("flag", ["-tls1_2", "-tls1_3"])
def test_session_resumption_s_client(env, flag, tmp_path):
    sess = str(tmp_path / "sess.pem")
    req = b"GET /s-client HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n"
    common = ["-servername", "api.example.com", flag, "-CAfile", env.pki.ca.cert, "-ign_eof"]
    rc, out = s_client(env.g.port, *common, "-sess_out", sess, input=req)
    assert "HTTP/1.1 200" in out, out
    assert os.path.getsize(sess) > 0
    rc, out = s_client(env.g.port, *common, "-sess_in", sess, input=req)
    assert "HTTP/1.1 200" in out, out
    assert re.search(r"^Reused, ", out, re.M), out


# ----- plain HTTP and stalled clients on a TLS port --------------------------------------------
def test_plain_http_to_tls_port(env):
    before = env.up.count()
    with rawhttp.RawConn(env.g.port, timeout=IO_TIMEOUT) as c:
        c.send(request_bytes("GET", "/plain-to-tls", host="api.example.com"))
        raw, closed = c.read_until_close(10 * SLACK)
    assert closed, "a plain HTTP request on the TLS port left the connection open"
    if raw.startswith(b"HTTP/"):
        # A courtesy "use https" answer is fine; a proxied response is not.
        status = int(raw.split(b" ", 2)[1])
        assert status >= 400, raw
    assert env.up.count() == before, "plain HTTP on a TLS port reached the upstream"
    assert https(env.g.port, env.pki, "/after-plain").status == 200
    env.g.assert_healthy()


def test_garbage_then_tls_still_works(env):
    before = env.up.count()
    for junk in (b"\x16\x03\x01\xff\xff" + b"\x00" * 64, b"\x16\x03\x01\x00\x05hello",
                 os.urandom(2048), b"\x80" * 10):
        with rawhttp.RawConn(env.g.port, timeout=IO_TIMEOUT) as c:
            try:
                c.send(junk)
            except OSError:
                pass
            c.read_until_close(10 * SLACK)
    assert env.up.count() == before
    assert https(env.g.port, env.pki, "/after-garbage").status == 200
    env.g.assert_healthy()


def _client_hello_bytes(sni="api.example.com"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    data = outgoing.read()
    assert data[:1] == b"\x16" and len(data) > 100, data[:16]
    return data


IDLE_TIMEOUT = 3 * HEADER_TIMEOUT


@pytest.fixture
def slow_env(gateway, upstream, pki):
    e = Env()
    e.pki, e.up = pki, upstream
    cfg = gw.config(catch_all("up"), {"up": gw.up(upstream)},
                    limits={"header_timeout": f"{int(HEADER_TIMEOUT * 1000)}ms",
                            "idle_timeout": f"{int(IDLE_TIMEOUT * 1000)}ms"},
                    listener={"tls": tls_block(pki)})
    e.g = gateway(render(cfg))
    return e


def _watch_close(sock, limit, out, name):
    """Thread body: out[name] = (seconds until the peer closed sock or None, bytes read)."""
    t0 = time.monotonic()
    data = b""
    while True:
        remaining = t0 + limit - time.monotonic()
        if remaining <= 0:
            out[name] = (None, data)
            return
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            out[name] = (None, data)
            return
        except (ConnectionResetError, ssl.SSLError, OSError):
            chunk = b""
        if not chunk:
            out[name] = (time.monotonic() - t0, data)
            return
        data += chunk


def test_stalled_handshakes_closed_after_header_timeout(slow_env):
    """header_timeout bounds the handshake (nothing sent, half a ClientHello) and a head begun
    over TLS (408); a finished handshake with no request yet is an idle connection."""
    e = slow_env
    hello = _client_hello_bytes()
    socks = {}
    socks["silent"] = socket.create_connection(("127.0.0.1", e.g.port), timeout=IO_TIMEOUT)
    socks["half-hello"] = socket.create_connection(("127.0.0.1", e.g.port), timeout=IO_TIMEOUT)
    socks["half-hello"].sendall(hello[:len(hello) // 2])
    socks["handshake-only"] = tls_connect(e.g.port, client_ctx(e.pki), "api.example.com")
    socks["half-head"] = tls_connect(e.g.port, client_ctx(e.pki), "api.example.com")
    socks["half-head"].sendall(b"GET /half HTTP/1.1\r\nHost: api.example.com\r\nX-Partial: ")
    results = {}
    threads = [threading.Thread(target=_watch_close, args=(s, IDLE_TIMEOUT + 4 * SLACK, results, n))
               for n, s in socks.items()]
    try:
        for t in threads:
            t.start()
        # Others are served meanwhile, at once (one worker: nothing may block it).
        t0 = time.monotonic()
        r = https(e.g.port, e.pki, "/meanwhile")
        assert r.status == 200, r
        assert time.monotonic() - t0 < 0.8 * HEADER_TIMEOUT, "a stalled handshake blocked others"
        for t in threads:
            t.join(IDLE_TIMEOUT + 10 * SLACK)
    finally:
        for s in socks.values():
            s.close()
    times = {n: v[0] for n, v in results.items()}
    for name in ("silent", "half-hello", "half-head"):
        assert times[name] is not None, f"{name} not closed after header_timeout: {times}"
        assert 0.8 * HEADER_TIMEOUT <= times[name] <= HEADER_TIMEOUT + 3 * SLACK, times
    assert times["handshake-only"] is not None, f"an idle TLS connection stayed open: {times}"
    assert 0.8 * HEADER_TIMEOUT <= times["handshake-only"] <= IDLE_TIMEOUT + 3 * SLACK, times
    raw = results["half-head"][1]
    if raw:
        responses = rawhttp.parse_all(raw)
        assert len(responses) == 1, raw
        assert_error(responses[0], 408, "request_timeout")
    assert results["handshake-only"][1] == b"", results["handshake-only"]
    assert [r.path for r in e.up.snapshot()] == ["/meanwhile"]
    assert https(e.g.port, e.pki, "/after-stalls").status == 200
    e.g.assert_healthy()


def test_client_vanishing_mid_handshake_is_harmless(env):
    hello = _client_hello_bytes()
    for cut in (5, 40, len(hello)):
        s = socket.create_connection(("127.0.0.1", env.g.port), timeout=IO_TIMEOUT)
        s.sendall(hello[:cut])
        if cut == len(hello):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    # And one that closes the TLS connection in the middle of a request.
    s = tls_connect(env.g.port, client_ctx(env.pki), "api.example.com")
    s.sendall(b"POST /cut HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 100000\r\n\r\nabc")
    s.close()
    assert https(env.g.port, env.pki, "/after-vanish").status == 200
    env.g.assert_healthy()


# ----- certificate files reloaded on change -----------------------------------------------------
def _install(src, dst):
    """Copies src to dst atomically (a temporary file in the same folder, then os.replace)."""
    tmp = dst + ".tmp"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _write_atomic(dst, data):
    tmp = dst + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, dst)


@pytest.fixture
def live(gateway, upstream, pki, tmp_path):
    """A gateway whose only certificate is live/server.pem + server.key (a copy of pki.api)."""
    e = Env()
    e.pki, e.up = pki, upstream
    e.dir = str(tmp_path / "live")
    os.makedirs(e.dir)
    e.cert, e.key = os.path.join(e.dir, "server.pem"), os.path.join(e.dir, "server.key")
    shutil.copyfile(pki.api.cert, e.cert)
    shutil.copyfile(pki.api.key, e.key)
    e.new_dir = str(tmp_path / "new")
    e.g = gateway(render(gw.config(catch_all("up"), {"up": gw.up(upstream)},
                                   listener={"tls": {"certificates": [
                                       {"cert": e.cert, "key": e.key}]}})))
    return e


def _swap(e, new):
    _install(new.key, e.key)
    _install(new.cert, e.cert)


def _wait_serial(e, serial, message):
    return wait_until(lambda: served_serial(e.g.port, e.pki) == serial, RELOAD_WAIT,
                      interval=0.1, message=message)


def test_certificate_files_reloaded_on_change(live):
    e = live
    assert served_serial(e.g.port, e.pki) == e.pki.api.serial
    # A keep-alive connection opened before the swap.
    old = tls_connect(e.g.port, client_ctx(e.pki), "api.example.com")
    try:
        c = rawhttp.RawConn.from_socket(old, IO_TIMEOUT)
        c.send(request_bytes("GET", "/before-swap", host="api.example.com"))
        assert c.read_response().status == 200
        new = certs.issue_server(e.pki, e.new_dir, "api", org="Portico Reloaded")
        _swap(e, new)
        _wait_serial(e, new.serial, "new connections to get the new certificate")
        info = peer_cert(e.g.port, e.pki, "api.example.com")
        assert info["O"] == "Portico Reloaded" and info["CN"] == "api.example.com", info
        # No SNI: the (only, default) certificate is the new one too.
        assert peer_cert(e.g.port, e.pki, None)["serial"] == new.serial
        # The old connection keeps working, on its old certificate.
        for i in range(2):
            c.send(request_bytes("GET", f"/after-swap/{i}", host="api.example.com"))
            r = c.read_response()
            assert r.status == 200 and r.json()["path"] == f"/after-swap/{i}", r
        assert subject_of(old.getpeercert())["O"] == "Portico Tests"
    finally:
        old.close()
    assert [r.path for r in e.up.snapshot()] == ["/before-swap", "/after-swap/0",
                                                  "/after-swap/1"]
    # A request on a new connection works with the new certificate.
    assert https(e.g.port, e.pki, "/new-conn").status == 200
    e.g.assert_healthy()


def _garbage_cert(e):
    _write_atomic(e.cert, b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                          b"-----END CERTIFICATE-----\n")


def _empty_cert(e):
    _write_atomic(e.cert, b"")


def _mismatched_key(e):
    # A valid certificate whose key is not the one on disk.
    other = certs.issue_server(e.pki, e.new_dir, "api", org="Mismatch")
    _install(other.cert, e.cert)


def _truncated_key(e):
    with open(e.key, "rb") as f:
        data = f.read()
    _write_atomic(e.key, data[:len(data) // 2])


BREAKAGES = {"garbage-cert": _garbage_cert, "empty-cert": _empty_cert,
             "mismatched-key": _mismatched_key, "truncated-key": _truncated_key}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_broken_certificate_file_keeps_the_old_one(live, breakage):
    e = live
    first = certs.issue_server(e.pki, e.new_dir, "api", org="Portico First")
    _swap(e, first)
    _wait_serial(e, first.serial, "the first new certificate")  # the watcher works at all
    BREAKAGES[breakage](e)
    # Give the gateway time to notice (a warning naming the file ends the wait early).
    try:
        wait_until(lambda: e.cert in e.g.stderr() or e.key in e.g.stderr(), 3.0 * SLACK,
                   interval=0.1, message="a warning")
        time.sleep(0.3)
    except AssertionError:
        pass
    for _ in range(5):
        assert served_serial(e.g.port, e.pki) == first.serial
    r = https(e.g.port, e.pki, "/still-served")
    assert r.status == 200, r
    e.g.assert_healthy()
    # Good files again: picked up, so the watcher survived the broken ones.
    second = certs.issue_server(e.pki, e.new_dir, "api", org="Portico Second")
    _swap(e, second)
    _wait_serial(e, second.serial, "a good certificate after a broken one")
    assert https(e.g.port, e.pki, "/fixed").status == 200


def test_deleted_certificate_files_keep_the_old_one(live):
    e = live
    os.unlink(e.cert)
    os.unlink(e.key)
    time.sleep(2.0 * SLACK)
    assert served_serial(e.g.port, e.pki) == e.pki.api.serial
    assert https(e.g.port, e.pki, "/after-delete").status == 200
    new = certs.issue_server(e.pki, e.new_dir, "api", org="Portico Recreated")
    shutil.copyfile(new.key, e.key)
    shutil.copyfile(new.cert, e.cert)
    _wait_serial(e, new.serial, "recreated certificate files to be served")
    e.g.assert_healthy()


def test_admin_reload_changes_certificates_and_refuses_missing_file(gateway, upstream, pki,
                                                                   tmp_path):
    base = gw.config(catch_all("up"), {"up": gw.up(upstream)},
                     listener={"tls": tls_block(pki, names=("default",))})
    g = gateway(render(base))
    assert peer_cert(g.port, pki, "api.example.com")["CN"] == "default.example.com"
    # Add the api certificate: served for its name after the reload.
    cfg = gw.config(catch_all("up"), {"up": gw.up(upstream)},
                    listener={"tls": tls_block(pki, names=("default", "api"))})
    status, body = g.reload(render(cfg))
    assert status == 200, body
    assert peer_cert(g.port, pki, "api.example.com")["CN"] == "api.example.com"
    # A config naming a missing certificate file is refused; the old one keeps serving.
    missing = str(tmp_path / "missing.pem")
    bad = gw.config(catch_all("up"), {"up": gw.up(upstream)},
                    listener={"tls": {"certificates": [{"cert": missing, "key": pki.api.key}]}})
    status, body = g.reload(render(bad))
    assert status == 422, body
    assert missing in str(body), body
    assert peer_cert(g.port, pki, "api.example.com")["CN"] == "api.example.com"
    # Reloading min_version 1.3 takes effect for new connections.
    cfg13 = gw.config(catch_all("up"), {"up": gw.up(upstream)},
                      listener={"tls": tls_block(pki, names=("default", "api"),
                                                 min_version="1.3")})
    status, body = g.reload(render(cfg13))
    assert status == 200, body
    kind, what = assert_refused(g.port, client_ctx(pki, version="1.2"), upstream)
    assert kind == "handshake", what
    assert https(g.port, pki, "/after-reloads").status == 200
    g.assert_healthy()


# ----- mTLS at the edge -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mtls_required(pki, module_gateway, module_upstreams):
    e = Env()
    e.pki = pki
    e.up = module_upstreams("mreq")
    cfg = gw.config(catch_all("mreq"), {"mreq": gw.up(e.up)},
                    listener={"tls": tls_block(pki, client_ca=pki.ca.cert,
                                               client_auth="required")})
    e.g = module_gateway(render(cfg))
    return e


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_mtls_required_refuses_client_without_certificate(mtls_required, version):
    e = mtls_required
    assert_refused(e.g.port, client_ctx(e.pki, version=version), e.up)


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_mtls_required_refuses_certificate_from_other_ca(mtls_required, version):
    e = mtls_required
    assert_refused(e.g.port, client_ctx(e.pki, version=version, client=e.pki.client_other), e.up)


def test_mtls_required_refuses_server_only_certificate(mtls_required):
    """A certificate of the right CA but without clientAuth in its extended key usage."""
    e = mtls_required
    assert_refused(e.g.port, client_ctx(e.pki, client=e.pki.default), e.up)


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_mtls_required_serves_client_with_certificate(mtls_required, version):
    e = mtls_required
    before = e.up.count()
    r = https(e.g.port, e.pki, f"/mtls-ok/{version}",
              ctx=client_ctx(e.pki, version=version, client=e.pki.client_a))
    assert r.status == 200, r
    assert e.up.count() == before + 1
    assert e.up.last().path == f"/mtls-ok/{version}"


def test_mtls_required_with_curl(mtls_required):
    e = mtls_required
    base = ["curl", "-sS", "--http1.1", "--max-time", str(int(10 * SLACK)), "--cacert",
            e.pki.ca.cert, "--resolve", f"api.example.com:{e.g.port}:127.0.0.1",
            "-o", "/dev/null", "-w", "%{http_code}"]
    url = f"https://api.example.com:{e.g.port}/curl-mtls"
    before = e.up.count()
    p = run(base + ["--cert", e.pki.client_a.cert, "--key", e.pki.client_a.key, url])
    assert p.returncode == 0 and p.stdout == b"200", p
    p = run(base + [url])
    assert p.returncode != 0, p
    assert e.up.count() == before + 1
    e.g.assert_healthy()


@pytest.fixture(scope="module")
def mtls_optional(pki, module_gateway, module_upstreams):
    """client_auth optional, an mtls provider and consumers named by certificate names."""
    e = Env()
    e.pki = pki
    e.pub, e.prt = module_upstreams("pub"), module_upstreams("prt")
    routes = [gw.route("public", {"path_prefix": "/public"}, "pub"),
              gw.route("partners", {"path_prefix": "/partners"}, "prt", auth=["partners"])]
    consumers = [
        {"name": "partner-a", "groups": ["partners"], "mtls_subjects": ["client-a.example.com"]},
        {"name": "partner-b", "mtls_subjects": ["cn:client-b"]},               # the subject CN
        {"name": "partner-u", "mtls_subjects": ["spiffe://portico.test/partner-u"]},
        {"name": "partner-e", "mtls_subjects": ["ops@partner-e.example.com"]},
    ]
    cfg = gw.config(routes, {"pub": gw.up(e.pub), "prt": gw.up(e.prt)},
                    listener={"tls": tls_block(pki, client_ca=pki.ca.cert,
                                               client_auth="optional")},
                    auth_providers={"partners": {"type": "mtls"}}, consumers=consumers)
    e.g = module_gateway(render(cfg))
    return e


def test_mtls_optional_serves_public_route_without_certificate(mtls_optional):
    e = mtls_optional
    before = e.pub.count()
    r = https(e.g.port, e.pki, "/public/x", headers=[("X-Consumer-Name", "partner-a")])
    assert r.status == 200, r
    assert e.pub.count() == before + 1
    rec = e.pub.last()
    assert rec.header_all("X-Consumer-Name") == [], rec.headers
    assert rec.header_all("X-Forwarded-Proto") == ["https"]


def test_mtls_optional_refuses_certificate_from_other_ca(mtls_optional):
    e = mtls_optional
    before = e.prt.count()
    assert_refused(e.g.port, client_ctx(e.pki, client=e.pki.client_other), e.pub,
                   target="/public/other-ca")
    assert e.prt.count() == before


@pytest.mark.parametrize("client,consumer", [
    ("client_a", "partner-a"),       # SAN DNS
    ("client_b", "partner-b"),       # subject CN
    ("client_uri", "partner-u"),     # SAN URI
    ("client_email", "partner-e"),   # SAN email
])
def test_mtls_provider_names_the_consumer(mtls_optional, client, consumer):
    e = mtls_optional
    before = e.prt.count()
    r = https(e.g.port, e.pki, "/partners/orders",
              ctx=client_ctx(e.pki, client=getattr(e.pki, client)),
              headers=[("X-Consumer-Name", "admin"), ("X-Consumer-Groups", "admins")])
    assert r.status == 200, r
    assert e.prt.count() == before + 1
    rec = e.prt.last()
    assert rec.path == "/partners/orders"
    assert rec.header_all("X-Consumer-Name") == [consumer], rec.headers
    groups = rec.header_all("X-Consumer-Groups")
    if consumer == "partner-a":
        assert groups == ["partners"], rec.headers
    else:
        assert "admins" not in ",".join(groups), rec.headers


@pytest.mark.parametrize("client,consumer", [
    ("client_cn_spoof", None),          # CN = partner-a's DNS subject, but the cert has SANs
    ("client_email_spoof", None),       # an email SAN spelled like partner-a's DNS subject
    ("client_cn_only", "partner-a"),    # no SAN: the untyped subject names the CN (RFC 6125)
])
def test_mtls_subjects_match_only_their_own_type(mtls_optional, client, consumer):
    e = mtls_optional
    r = https(e.g.port, e.pki, "/partners/typed",
              ctx=client_ctx(e.pki, client=getattr(e.pki, client)))
    assert r.status == 200, r  # authenticated by the CA; the question is who it names
    rec = e.prt.last()
    assert rec.path == "/partners/typed"
    assert rec.header_all("X-Consumer-Name") == ([consumer] if consumer else []), rec.headers


def test_mtls_provider_without_certificate_is_401(mtls_optional):
    e = mtls_optional
    before = (e.pub.count(), e.prt.count())
    r = https(e.g.port, e.pki, "/partners/orders", headers=[("X-Consumer-Name", "partner-a")])
    assert_error(r, 401, "unauthenticated")
    assert (e.pub.count(), e.prt.count()) == before


def test_mtls_provider_unknown_certificate_names_no_consumer(mtls_optional):
    """A certificate of the CA whose names merely contain a consumer's subject is not that
    consumer (exact matches only): refused, or at least never forwarded as partner-a."""
    e = mtls_optional
    before = e.prt.count()
    r = https(e.g.port, e.pki, "/partners/evil",
              ctx=client_ctx(e.pki, client=e.pki.client_evil),
              headers=[("X-Consumer-Name", "partner-a")])
    if r.status == 200:
        rec = e.prt.last()
        assert rec.header_all("X-Consumer-Name") == [], rec.headers
    else:
        assert r.status in (401, 403), r
        assert e.prt.count() == before


def test_mtls_identity_is_per_connection(mtls_optional):
    """Alternating clients with and without a certificate: the identity never leaks from one
    TLS connection to another (or to the next request of a different client)."""
    e = mtls_optional
    with_cert = client_ctx(e.pki, client=e.pki.client_a)
    plain = client_ctx(e.pki)
    for i in range(4):
        r = https(e.g.port, e.pki, f"/partners/{i}", ctx=with_cert)
        assert r.status == 200, r
        assert e.prt.last().header_all("X-Consumer-Name") == ["partner-a"]
        before = e.prt.count()
        r = https(e.g.port, e.pki, f"/partners/{i}", ctx=plain)
        assert r.status == 401, r
        assert e.prt.count() == before
    # Several requests on one certified keep-alive connection: each is partner-a.
    with rawhttp.RawConn.from_socket(tls_connect(e.g.port, with_cert, "api.example.com"),
                                     IO_TIMEOUT) as c:
        for i in range(3):
            c.send(request_bytes("GET", f"/partners/ka/{i}", host="api.example.com"))
            assert c.read_response().status == 200
            assert e.prt.last().header_all("X-Consumer-Name") == ["partner-a"]


def test_mtls_provider_on_plain_listener_is_401(gateway, upstream, pki):
    """No TLS at all: the mtls provider finds no certificate, so the route is 401."""
    cfg = gw.config([gw.route("p", {"path_prefix": "/"}, "up", auth=["partners"])],
                    {"up": gw.up(upstream)}, auth_providers={"partners": {"type": "mtls"}},
                    consumers=[{"name": "partner-a", "mtls_subjects": ["client-a.example.com"]}])
    g = gateway(render(cfg))
    resp = rawhttp.exchange(g.port, request_bytes("GET", "/x", headers=[
        ("X-Consumer-Name", "partner-a")]))
    assert_error(resp, 401, "unauthenticated")
    assert upstream.count() == 0


# ----- config checks ----------------------------------------------------------------------------
def _validate(portico_bin, path, cwd="/"):
    return subprocess.run([portico_bin, "validate", "-c", path], capture_output=True, text=True,
                          timeout=20 * SLACK, cwd=cwd)


def _write_cfg(tmp_path, tls, name="portico.yaml"):
    conf = tmp_path / "conf"
    conf.mkdir(exist_ok=True)
    cfg = gw.config(catch_all("up"), {"up": gw.up("127.0.0.1:9001")}, listener={"tls": tls})
    text = render(cfg).replace("@PORT@", "18443").replace("@ADMIN@", "19901")
    p = conf / name
    p.write_text(text)
    return str(p)


def test_validate_accepts_certificates_relative_to_config(portico_bin, pki, tmp_path):
    certdir = tmp_path / "conf" / "certs"
    certdir.mkdir(parents=True)
    for c, n in ((pki.default, "default"), (pki.api, "api")):
        shutil.copyfile(c.cert, certdir / f"{n}.pem")
        shutil.copyfile(c.key, certdir / f"{n}.key")
    shutil.copyfile(pki.ca.cert, certdir / "ca.pem")
    tls = {"certificates": [{"cert": "certs/default.pem", "key": "certs/default.key"},
                            {"cert": "certs/api.pem", "key": "certs/api.key",
                             "sni": ["api.example.com"]}],
           "min_version": "1.3", "client_ca": "certs/ca.pem", "client_auth": "optional"}
    p = _validate(portico_bin, _write_cfg(tmp_path, tls))
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip() == "ok"


def test_validate_refuses_missing_certificate_file(portico_bin, pki, tmp_path):
    missing = str(tmp_path / "nope" / "server.pem")
    p = _validate(portico_bin, _write_cfg(tmp_path, {"certificates": [
        {"cert": missing, "key": pki.api.key}]}))
    assert p.returncode != 0, p.stdout
    assert missing in p.stdout + p.stderr, p.stdout + p.stderr


def test_validate_refuses_missing_relative_key(portico_bin, pki, tmp_path):
    p = _validate(portico_bin, _write_cfg(tmp_path, {"certificates": [
        {"cert": pki.api.cert, "key": "certs/gone.key"}]}))
    assert p.returncode != 0, p.stdout
    out = p.stdout + p.stderr
    # As written (next to the config's file:line:col) or resolved against the config's folder.
    assert '"certs/gone.key"' in out or str(tmp_path / "conf" / "certs" / "gone.key") in out, out
    assert str(tmp_path / "conf" / "portico.yaml") + ":" in out, out


def test_validate_refuses_key_that_does_not_match(portico_bin, pki, tmp_path):
    p = _validate(portico_bin, _write_cfg(tmp_path, {"certificates": [
        {"cert": pki.api.cert, "key": pki.default.key}]}))
    assert p.returncode != 0, p.stdout
    out = p.stdout + p.stderr
    assert pki.api.cert in out or pki.default.key in out, out


def test_validate_refuses_a_file_that_is_not_a_certificate(portico_bin, pki, tmp_path):
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("this is not PEM\n")
    p = _validate(portico_bin, _write_cfg(tmp_path, {"certificates": [
        {"cert": str(bogus), "key": pki.api.key}]}))
    assert p.returncode != 0, p.stdout
    assert str(bogus) in p.stdout + p.stderr, p.stdout + p.stderr


def test_validate_refuses_key_file_given_as_certificate(portico_bin, pki, tmp_path):
    p = _validate(portico_bin, _write_cfg(tmp_path, {"certificates": [
        {"cert": pki.api.key, "key": pki.api.key}]}))
    assert p.returncode != 0, p.stdout
    assert pki.api.key in p.stdout + p.stderr, p.stdout + p.stderr


def test_validate_refuses_missing_client_ca(portico_bin, pki, tmp_path):
    missing = str(tmp_path / "no-ca.pem")
    p = _validate(portico_bin, _write_cfg(tmp_path, {
        "certificates": [cert_entry(pki.api)], "client_ca": missing}))
    assert p.returncode != 0, p.stdout
    assert missing in p.stdout + p.stderr, p.stdout + p.stderr


def test_validate_refuses_client_auth_without_client_ca(portico_bin, pki, tmp_path):
    p = _validate(portico_bin, _write_cfg(tmp_path, {
        "certificates": [cert_entry(pki.api)], "client_auth": "optional"}))
    assert p.returncode != 0, p.stdout
    assert "client_ca" in p.stdout + p.stderr, p.stdout + p.stderr


def test_validate_refuses_bad_min_version(portico_bin, pki, tmp_path):
    p = _validate(portico_bin, _write_cfg(tmp_path, {
        "certificates": [cert_entry(pki.api)], "min_version": "1.1"}))
    assert p.returncode != 0, p.stdout
    assert "min_version" in p.stdout + p.stderr, p.stdout + p.stderr


def test_run_with_mismatched_key_fails_to_start(portico_bin, pki, tmp_path):
    path = _write_cfg(tmp_path, {"certificates": [{"cert": pki.api.cert,
                                                   "key": pki.default.key}]})
    p = subprocess.run([portico_bin, "run", "-c", path], capture_output=True, text=True,
                       timeout=20 * SLACK, cwd=str(tmp_path), stdin=subprocess.DEVNULL)
    assert p.returncode != 0, p.stdout
    out = p.stdout + p.stderr
    assert pki.api.cert in out or pki.default.key in out, out
