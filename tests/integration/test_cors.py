"""A route's `cors:` policy (SPEC §8), over HTTP/1.1 and HTTP/2 (h2c prior knowledge):

  - a preflight (OPTIONS with both Origin and Access-Control-Request-Method) on a route with
    cors is answered by the gateway itself: 204, empty body, never forwarded, even when the
    route's match.methods do not list OPTIONS, and before auth, rate limits and concurrency
    limits. An allowed origin and method get Access-Control-Allow-Origin (the Origin echoed,
    never "*"), Vary: Origin, Allow-Methods, Allow-Headers (configured, or the requested ones
    echoed), Max-Age in seconds, Allow-Credentials only with credentials: true. A refused
    origin or method still gets 204 from the gateway, without any Access-Control-Allow-*.
  - an OPTIONS without Access-Control-Request-Method (or without Origin) is no preflight: it
    is routed as any request (to the upstream, or 405 when the route's methods omit it).
  - actual requests are proxied as usual; an allowed origin gets Allow-Origin, Vary, Allow-
    Credentials and Expose-Headers on the response, also on the gateway's own error replies
    (401, 429, 503); another origin or none gets no Access-Control-* at all.
  - routes without cors are untouched: a preflight there goes to the router and upstream.
  - the next request on the same HTTP/1.1 connection (sequential, pipelined, after a preflight
    with a body) and other streams on the same HTTP/2 connection are served normally.
  - config errors (`portico validate`) name the offending cors key or value.

Every preflight is checked to reach no upstream at all.
"""
import http.client
import os
import re
import subprocess
import tempfile
import threading
import time

import pytest

from support import gateway as gw
from support.h2client import H2Client
from support.rawhttp import RawConn, request_bytes
from support.util import SLACK, wait_until

PROTOCOLS = {"http1": [], "h2c": ["--http2-prior-knowledge"]}

ORIGIN = "https://app.example.com"
OTHER_ORIGIN = "http://localhost:3000"
API_KEY = "k-cors-alice-0123456789"

FULL_CORS = {
    "origins": [ORIGIN, OTHER_ORIGIN],
    "methods": ["GET", "POST"],
    "headers": ["Authorization", "X-Custom"],
    "expose_headers": ["X-Request-Id", "X-Up"],
    "credentials": True,
    "max_age": "10m",
}
FULL_METHODS = "GET, POST"
FULL_HEADERS = "Authorization, X-Custom"
FULL_EXPOSE = "X-Request-Id, X-Up"

# Near misses of ORIGIN: matching is exact on the origin string.
REFUSED_ORIGINS = [
    "https://evil.example",
    "http://app.example.com",               # another scheme
    "https://app.example.com:8443",         # another port
    "https://app.example.com.evil.example",  # a suffix
    "https://evil-app.example.com",
    "https://example.com",
    "null",
]


# ----- a response, from curl or a raw socket ------------------------------------------------------
class Resp:
    def __init__(self, status, version, headers, body):
        self.status = status
        self.version = version
        self.headers = [(k.strip().lower(), v.strip()) for k, v in headers]
        self.body = body

    def header(self, name, default=None):
        name = name.lower()
        return next((v for k, v in self.headers if k == name), default)

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    def names(self, prefix):
        return [k for k, _ in self.headers if k.startswith(prefix)]

    def vary(self):
        """The Vary tokens of every Vary field, lowercased."""
        return {t.strip().lower() for v in self.header_all("vary") for t in v.split(",")
                if t.strip()}

    def __repr__(self):
        return f"<Resp {self.status} HTTP/{self.version} {self.headers!r} body={self.body[:300]!r}>"


def _parse_curl_heads(raw):
    """The last head of curl's --dump-header output: (status, version, [(name, value)])."""
    blocks = [b for b in raw.decode("latin-1").split("\r\n\r\n") if b.strip()]
    assert blocks, raw
    lines = [ln for ln in blocks[-1].split("\r\n") if ln]
    version, status = lines[0].split()[0].split("/", 1)[1], int(lines[0].split()[1])
    headers = []
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers.append((k, v))
    return status, version, headers


def fetch(g, method, path, protocol, headers=(), timeout=10):
    """curl METHOD path over `protocol`: a Resp. The protocol actually used is checked."""
    with tempfile.TemporaryDirectory(prefix="cors-curl-") as d:
        hfile, bfile = os.path.join(d, "h"), os.path.join(d, "b")
        args = ["curl", "-sS", "--max-time", str(int(timeout * SLACK)), "-D", hfile, "-o", bfile,
                "-w", "%{http_code} %{http_version}", *PROTOCOLS[protocol]]
        if method != "GET":
            args += ["-X", method]
        for h in headers:
            args += ["-H", h]
        p = subprocess.run(args + [g.url(path)], capture_output=True,
                           timeout=timeout * SLACK + 10)
        assert p.returncode == 0, (p.returncode, p.stderr)
        status, version, hdrs = _parse_curl_heads(open(hfile, "rb").read())
        body = open(bfile, "rb").read() if os.path.exists(bfile) else b""
    code, used = p.stdout.decode().split()
    assert int(code) == status
    assert used == ("2" if protocol == "h2c" else "1.1"), (protocol, used)
    return Resp(status, version, hdrs, body)


def preflight(g, path, protocol, origin=ORIGIN, method="POST", request_headers=None):
    hs = [f"Origin: {origin}", f"Access-Control-Request-Method: {method}"]
    if request_headers is not None:
        hs.append(f"Access-Control-Request-Headers: {request_headers}")
    return fetch(g, "OPTIONS", path, protocol, hs)


# ----- assertions ---------------------------------------------------------------------------------
def assert_gateway_preflight(r):
    """A preflight answered by the gateway: 204, empty body."""
    assert r.status == 204, r
    assert r.body == b"", r
    assert r.header("x-upstream-name") is None, f"the upstream answered the preflight: {r}"


def assert_preflight_allowed(r, origin, methods, headers=None, max_age=None, credentials=False):
    assert_gateway_preflight(r)
    assert r.header_all("access-control-allow-origin") == [origin], r
    assert "origin" in r.vary(), r
    assert r.header("access-control-allow-methods") == methods, r
    if headers is not None:
        assert r.header("access-control-allow-headers") == headers, r
    if max_age is None:
        assert r.header("access-control-max-age") is None, r
    else:
        assert r.header("access-control-max-age") == max_age, r
    if credentials:
        assert r.header("access-control-allow-credentials") == "true", r
    else:
        assert r.header("access-control-allow-credentials") is None, r


def assert_preflight_refused(r):
    """Still answered by the gateway, but nothing that lets a browser go on."""
    assert_gateway_preflight(r)
    assert r.names("access-control-allow-") == [], r


def assert_actual_cors(r, origin, credentials=False, expose=None):
    assert r.header_all("access-control-allow-origin") == [origin], r
    assert "origin" in r.vary(), r
    if credentials:
        assert r.header("access-control-allow-credentials") == "true", r
    else:
        assert r.header("access-control-allow-credentials") is None, r
    if expose is None:
        assert r.header("access-control-expose-headers") is None, r
    else:
        assert r.header("access-control-expose-headers") == expose, r
    # Only the headers of an actual response: none of the preflight's.
    for name in ("access-control-allow-methods", "access-control-allow-headers",
                 "access-control-max-age"):
        assert r.header(name) is None, (name, r)


def assert_no_cors(r):
    assert r.names("access-control-") == [], r


def assert_error(r, status, code):
    assert r.status == status, r
    assert (r.header("content-type") or "").startswith("application/json"), r
    assert f'"{code}"'.encode() in r.body, r


# ----- the gateway --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def env(module_gateway, module_upstreams):
    up = module_upstreams("cors-up")
    one_origin = {"origins": [ORIGIN], "methods": ["GET"]}
    routes = [
        # match.methods without OPTIONS: a preflight is answered all the same.
        gw.route("full", {"path_prefix": "/full", "methods": ["GET", "POST"]}, "u",
                 cors=FULL_CORS),
        # No headers, max_age, credentials, expose_headers; any method routed.
        gw.route("minimal", {"path_prefix": "/minimal"}, "u",
                 cors={"origins": [ORIGIN], "methods": ["GET", "PUT"]}),
        gw.route("any", {"path_prefix": "/any"}, "u",
                 cors={"origins": ["*"], "methods": ["GET"], "credentials": True}),
        gw.route("any-plain", {"path_prefix": "/any-plain"}, "u",
                 cors={"origins": ["*"], "methods": ["GET", "DELETE"]}),
        gw.route("keyed", {"path_prefix": "/keyed"}, "u", auth=["keys"],
                 cors={"origins": [ORIGIN], "methods": ["GET"], "credentials": True}),
        # One per protocol: a limit of 1 per minute is used up by each protocol's test.
        gw.route("limited-http1", {"path_prefix": "/limited-http1"}, "u",
                 rate_limit={"limit": 1, "window": "1m"}, cors=one_origin),
        gw.route("limited-h2c", {"path_prefix": "/limited-h2c"}, "u",
                 rate_limit={"limit": 1, "window": "1m"}, cors=one_origin),
        gw.route("conc", {"path_prefix": "/conc"}, "u", concurrency_limit=1,
                 rewrite={"strip_prefix": True}, cors=one_origin),
        # Without cors.
        gw.route("plain", {"path_prefix": "/plain"}, "u"),
        gw.route("plain-get", {"path_prefix": "/plain-get", "methods": ["GET"]}, "u"),
    ]
    cfg = gw.config(routes, {"u": gw.up(up)}, listener={"http2": True},
                    auth_providers={"keys": {"type": "api_key", "from": ["header:X-API-Key"]}},
                    consumers=[{"name": "alice", "api_keys": [API_KEY]}])
    return module_gateway(cfg, name="cors"), up


# ----- preflights ---------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_preflight_allowed_is_answered_by_the_gateway(env, protocol):
    """All of the configured answer; OPTIONS is not in the route's match.methods."""
    g, up = env
    before = up.count()
    for origin in (ORIGIN, OTHER_ORIGIN):
        for method in ("GET", "POST"):
            r = preflight(g, "/full/items?x=1", protocol, origin, method,
                          "authorization, x-custom")
            assert_preflight_allowed(r, origin, FULL_METHODS, FULL_HEADERS, "600",
                                     credentials=True)
            assert re.fullmatch(r"[0-9a-f]{32}", r.header("x-request-id") or ""), r
    # The configured headers are the answer whatever is asked for (the browser compares).
    r = preflight(g, "/full/items", protocol, ORIGIN, "GET", "x-something-else")
    assert_preflight_allowed(r, ORIGIN, FULL_METHODS, FULL_HEADERS, "600", credentials=True)
    r = preflight(g, "/full/items", protocol, ORIGIN, "GET")  # no Access-Control-Request-Headers
    assert_preflight_allowed(r, ORIGIN, FULL_METHODS, FULL_HEADERS, "600", credentials=True)
    assert up.count() == before, f"a preflight reached the upstream: {up.since(before)}"


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_preflight_minimal_policy(env, protocol):
    """Without headers: the requested ones echoed; no Max-Age, no Allow-Credentials."""
    g, up = env
    before = up.count()
    r = preflight(g, "/minimal/a", protocol, ORIGIN, "PUT", "X-Foo, Content-Type")
    assert_preflight_allowed(r, ORIGIN, "GET, PUT", "X-Foo, Content-Type", None,
                             credentials=False)
    r = preflight(g, "/minimal/a", protocol, ORIGIN, "GET", "x-trace-id")
    assert_preflight_allowed(r, ORIGIN, "GET, PUT", "x-trace-id", None, credentials=False)
    assert up.count() == before, f"a preflight reached the upstream: {up.since(before)}"


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_preflight_refused_origin_or_method(env, protocol):
    g, up = env
    before = up.count()
    for origin in REFUSED_ORIGINS:
        assert_preflight_refused(preflight(g, "/full/a", protocol, origin, "GET", "x-custom"))
        assert_preflight_refused(preflight(g, "/minimal/a", protocol, origin, "GET"))
    # A method the route routes but cors does not allow.
    for method in ("POST", "DELETE", "PATCH", "OPTIONS"):
        assert_preflight_refused(preflight(g, "/minimal/a", protocol, ORIGIN, method))
    assert up.count() == before, f"a preflight reached the upstream: {up.since(before)}"


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_preflight_refused_method_the_route_does_not_route(env, protocol):
    """/full routes only GET and POST (match.methods): a preflight asking for another method is
    still a preflight on a cors route, answered 204 without Access-Control-Allow-* (the
    contract), not a 405 from the router."""
    g, up = env
    before = up.count()
    for method in ("DELETE", "PUT", "PATCH", "OPTIONS"):
        assert_preflight_refused(preflight(g, "/full/a", protocol, ORIGIN, method))
    assert up.count() == before, f"a preflight reached the upstream: {up.since(before)}"


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_preflight_any_origin_echoes_never_star(env, protocol):
    g, up = env
    before = up.count()
    for origin in ("https://whoever.test", "http://127.0.0.1:8080", ORIGIN):
        r = preflight(g, "/any/a", protocol, origin, "GET")
        assert_preflight_allowed(r, origin, "GET", None, None, credentials=True)
        r = preflight(g, "/any-plain/a", protocol, origin, "DELETE")
        assert_preflight_allowed(r, origin, "GET, DELETE", None, None, credentials=False)
    # "*" is about origins only: the methods still apply.
    assert_preflight_refused(preflight(g, "/any/a", protocol, ORIGIN, "POST"))
    assert up.count() == before, f"a preflight reached the upstream: {up.since(before)}"


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_preflight_answered_before_auth(env, protocol):
    """No credential is asked for in a preflight (browsers never send one)."""
    g, up = env
    before = up.count()
    r = preflight(g, "/keyed/a", protocol, ORIGIN, "GET", "x-api-key")
    assert_preflight_allowed(r, ORIGIN, "GET", "x-api-key", None, credentials=True)
    assert r.header("www-authenticate") is None, r
    assert_preflight_refused(preflight(g, "/keyed/a", protocol, "https://evil.example", "GET"))
    assert up.count() == before, f"a preflight reached the upstream: {up.since(before)}"


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_preflight_answered_before_rate_limits(env, protocol):
    """Preflights use up nothing: after many of them the first actual request passes."""
    g, up = env
    path = f"/limited-{protocol}/a"
    before = up.count()
    for _ in range(5):
        assert_preflight_allowed(preflight(g, path, protocol, ORIGIN, "GET"), ORIGIN, "GET")
    assert up.count() == before
    r = fetch(g, "GET", path, protocol, [f"Origin: {ORIGIN}"])
    assert r.status == 200, r
    assert_actual_cors(r, ORIGIN)
    assert up.count() == before + 1
    # The limit is used up: the 429 carries the CORS headers so a browser can read it.
    r = fetch(g, "GET", path, protocol, [f"Origin: {ORIGIN}"])
    assert_error(r, 429, "rate_limited")
    assert_actual_cors(r, ORIGIN)
    r = fetch(g, "GET", path, protocol, ["Origin: https://evil.example"])
    assert_error(r, 429, "rate_limited")
    assert_no_cors(r)
    # And still no 429 for a preflight.
    assert_preflight_allowed(preflight(g, path, protocol, ORIGIN, "GET"), ORIGIN, "GET")
    assert up.count() == before + 1


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_preflight_answered_before_concurrency_limits(env, protocol):
    g, up = env
    before = up.count()
    held = {}

    def hold():
        c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=20 * SLACK)
        try:
            c.request("GET", "/conc/slow/1500", headers={"Origin": ORIGIN})
            resp = c.getresponse()
            held["status"] = resp.status
            resp.read()
        finally:
            c.close()

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    try:
        wait_until(lambda: up.count() >= before + 1, 5 * SLACK,
                   message="the slow request to take the only slot")
        t0 = time.monotonic()
        r = preflight(g, "/conc/a", protocol, ORIGIN, "GET")
        assert_preflight_allowed(r, ORIGIN, "GET")
        r = fetch(g, "GET", "/conc/a", protocol, [f"Origin: {ORIGIN}"])
        assert_error(r, 503, "unavailable")
        assert_actual_cors(r, ORIGIN)
        assert time.monotonic() - t0 < 1.2 * SLACK, "the slot was free already: inconclusive"
    finally:
        t.join(timeout=20 * SLACK)
    assert held.get("status") == 200, held
    assert up.count() == before + 1, up.since(before)


# ----- OPTIONS that are not preflights ------------------------------------------------------------
@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_options_without_request_method_is_routed(env, protocol):
    g, up = env
    before = up.count()
    # The route routes every method: the OPTIONS reaches the upstream, an actual request.
    r = fetch(g, "OPTIONS", "/minimal/opt", protocol, [f"Origin: {ORIGIN}"])
    assert r.status == 200 and r.header("x-upstream-name") == "cors-up", r
    assert_actual_cors(r, ORIGIN)
    rec = up.last()
    assert (rec.method, rec.path) == ("OPTIONS", "/minimal/opt")
    assert rec.header("origin") == ORIGIN
    # Access-Control-Request-Method without Origin: no preflight either.
    r = fetch(g, "OPTIONS", "/minimal/opt2", protocol, ["Access-Control-Request-Method: GET"])
    assert r.status == 200 and r.header("x-upstream-name") == "cors-up", r
    assert_no_cors(r)
    assert (up.last().method, up.last().path) == ("OPTIONS", "/minimal/opt2")
    assert up.count() == before + 2
    # The route's methods omit OPTIONS: 405 as usual.
    r = fetch(g, "OPTIONS", "/full/opt", protocol, [f"Origin: {ORIGIN}"])
    assert_error(r, 405, "method_not_allowed")
    assert up.count() == before + 2


# ----- actual requests ----------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_actual_request_from_allowed_origin(env, protocol):
    g, up = env
    before = up.count()
    for origin in (ORIGIN, OTHER_ORIGIN):
        r = fetch(g, "GET", "/full/get", protocol, [f"Origin: {origin}"])
        assert r.status == 200 and r.header("x-upstream-name") == "cors-up", r
        assert_actual_cors(r, origin, credentials=True, expose=FULL_EXPOSE)
        rec = up.last()
        assert (rec.method, rec.path) == ("GET", "/full/get")
        assert rec.header_all("origin") == [origin], rec
    r = fetch(g, "POST", "/full/post", protocol,
              [f"Origin: {ORIGIN}", "Content-Type: application/json"])
    assert r.status == 200, r
    assert_actual_cors(r, ORIGIN, credentials=True, expose=FULL_EXPOSE)
    assert up.last().method == "POST"
    r = fetch(g, "PUT", "/minimal/put", protocol, [f"Origin: {ORIGIN}"])
    assert r.status == 200, r
    assert_actual_cors(r, ORIGIN, credentials=False, expose=None)
    for origin in ("https://whoever.test", ORIGIN):
        r = fetch(g, "GET", "/any/a", protocol, [f"Origin: {origin}"])
        assert r.status == 200, r
        assert_actual_cors(r, origin, credentials=True)
        r = fetch(g, "GET", "/any-plain/a", protocol, [f"Origin: {origin}"])
        assert r.status == 200, r
        assert_actual_cors(r, origin, credentials=False)
    assert up.count() == before + 8


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_actual_request_from_other_origin_or_none(env, protocol):
    """Proxied as usual, without any Access-Control-* header."""
    g, up = env
    before = up.count()
    n = 0
    for origin in REFUSED_ORIGINS[:4] + [None]:
        hs = [f"Origin: {origin}"] if origin else []
        for path in ("/full/x", "/minimal/x"):
            r = fetch(g, "GET", path, protocol, hs)
            n += 1
            assert r.status == 200 and r.header("x-upstream-name") == "cors-up", r
            assert_no_cors(r)
            assert up.last().header("origin") == origin
    assert up.count() == before + n


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_gateway_errors_carry_cors_headers(env, protocol):
    g, up = env
    before = up.count()
    r = fetch(g, "GET", "/keyed/a", protocol, [f"Origin: {ORIGIN}"])
    assert_error(r, 401, "unauthenticated")
    assert_actual_cors(r, ORIGIN, credentials=True)
    r = fetch(g, "GET", "/keyed/a", protocol, ["Origin: https://evil.example"])
    assert_error(r, 401, "unauthenticated")
    assert_no_cors(r)
    assert up.count() == before
    r = fetch(g, "GET", "/keyed/a", protocol, [f"Origin: {ORIGIN}", f"X-API-Key: {API_KEY}"])
    assert r.status == 200, r
    assert_actual_cors(r, ORIGIN, credentials=True)
    assert up.count() == before + 1


# ----- routes without cors ------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_routes_without_cors_are_untouched(env, protocol):
    g, up = env
    before = up.count()
    r = preflight(g, "/plain/pre", protocol, ORIGIN, "POST", "x-custom")
    assert r.status == 200 and r.header("x-upstream-name") == "cors-up", r
    assert_no_cors(r)
    rec = up.last()
    assert (rec.method, rec.path) == ("OPTIONS", "/plain/pre")
    assert rec.header("origin") == ORIGIN
    assert rec.header("access-control-request-method") == "POST"
    assert rec.header("access-control-request-headers") == "x-custom"
    r = fetch(g, "GET", "/plain/get", protocol, [f"Origin: {ORIGIN}"])
    assert r.status == 200, r
    assert_no_cors(r)
    assert "origin" not in r.vary(), r
    assert up.count() == before + 2
    # Routed as any request: the route's methods omit OPTIONS.
    r = preflight(g, "/plain-get/pre", protocol, ORIGIN, "GET")
    assert_error(r, 405, "method_not_allowed")
    assert_no_cors(r)
    assert up.count() == before + 2


# ----- the connection goes on ---------------------------------------------------------------------
def _pre(path, origin=ORIGIN, method="GET", extra=()):
    return request_bytes("OPTIONS", path, host="cors.test",
                         headers=[("Origin", origin), ("Access-Control-Request-Method", method),
                                  *extra])


def _get(path, origin=ORIGIN):
    return request_bytes("GET", path, host="cors.test", headers=[("Origin", origin)])


def _resp(raw):
    return Resp(raw.status, raw.version.split("/", 1)[1], raw.headers, raw.body)


def test_http1_next_request_after_a_preflight(env):
    g, up = env
    before = up.count()
    with RawConn(g.port, timeout=5 * SLACK) as c:
        # One after the other.
        c.send(_pre("/full/one"))
        assert_preflight_allowed(_resp(c.read_response("OPTIONS")), ORIGIN, FULL_METHODS,
                                 FULL_HEADERS, "600", credentials=True)
        c.send(_get("/full/two"))
        r = _resp(c.read_response("GET"))
        assert r.status == 200 and r.header("x-upstream-name") == "cors-up", r
        assert_actual_cors(r, ORIGIN, credentials=True, expose=FULL_EXPOSE)
        assert up.last().path == "/full/two"
        # Pipelined: a refused preflight, an allowed one, a GET, all in one write.
        c.send(_pre("/full/three", origin="https://evil.example") + _pre("/minimal/four")
               + _get("/minimal/five"))
        assert_preflight_refused(_resp(c.read_response("OPTIONS")))
        assert_preflight_allowed(_resp(c.read_response("OPTIONS")), ORIGIN, "GET, PUT")
        r = _resp(c.read_response("GET"))
        assert r.status == 200, r
        assert_actual_cors(r, ORIGIN)
        assert up.last().path == "/minimal/five"
    assert [rec.path for rec in up.since(before)] == ["/full/two", "/minimal/five"]


def test_http1_preflight_with_a_body_does_not_desync_the_connection(env):
    """A preflight answered early must not leave its body to be read as the next request."""
    g, up = env
    before = up.count()
    smuggled = request_bytes("GET", "/plain/smuggled", host="cors.test")
    body = smuggled
    with RawConn(g.port, timeout=5 * SLACK) as c:
        c.send(_pre("/full/body", extra=[("Content-Length", str(len(body)))]) + body
               + _get("/full/after"))
        first = c.read_response("OPTIONS")
        assert_preflight_allowed(_resp(first), ORIGIN, FULL_METHODS, FULL_HEADERS, "600",
                                 credentials=True)
        if "close" in (first.header("connection") or "").lower():
            assert c.wait_closed(5 * SLACK), "Connection: close, yet the connection stays open"
        else:
            r = _resp(c.read_response("GET"))
            assert r.status == 200, r
            assert_actual_cors(r, ORIGIN, credentials=True, expose=FULL_EXPOSE)
            assert up.last().path == "/full/after"
    paths = [rec.path for rec in up.since(before)]
    assert "/plain/smuggled" not in paths, f"the preflight's body was served as a request: {paths}"
    assert paths in ([], ["/full/after"]), paths


def test_h2c_streams_around_preflights(env):
    """Preflights and actual requests as concurrent streams of one HTTP/2 connection."""
    g, up = env
    before = up.count()
    with H2Client(g.port, timeout=10 * SLACK) as c:
        pre_hdrs = [("origin", ORIGIN), ("access-control-request-method", "POST"),
                    ("access-control-request-headers", "x-custom")]
        sids = [c.request("OPTIONS", "/full/s1", pre_hdrs),
                c.request("GET", "/full/s2", [("origin", ORIGIN)]),
                c.request("OPTIONS", "/full/s3", [("origin", "https://evil.example"),
                                                   ("access-control-request-method", "GET")]),
                c.request("OPTIONS", "/keyed/s4", [("origin", ORIGIN),
                                                   ("access-control-request-method", "GET")]),
                c.request("GET", "/full/s5", [("origin", OTHER_ORIGIN)])]
        res = [c.response(s) for s in sids]
        for s in res:
            assert s.done and s.reset is None, s
        rs = [Resp(s.status, "2", [(k, v) for k, v in s.headers if not k.startswith(":")],
                   bytes(s.body)) for s in res]
        assert_preflight_allowed(rs[0], ORIGIN, FULL_METHODS, FULL_HEADERS, "600",
                                 credentials=True)
        assert rs[1].status == 200, rs[1]
        assert_actual_cors(rs[1], ORIGIN, credentials=True, expose=FULL_EXPOSE)
        assert_preflight_refused(rs[2])
        assert_preflight_allowed(rs[3], ORIGIN, "GET", None, None, credentials=True)
        assert rs[4].status == 200, rs[4]
        assert_actual_cors(rs[4], OTHER_ORIGIN, credentials=True, expose=FULL_EXPOSE)
        # And the connection goes on after them.
        s = c.response(c.request("GET", "/plain/s6", [("origin", ORIGIN)]))
        assert s.status == 200, s
    assert sorted(rec.path for rec in up.since(before)) == ["/full/s2", "/full/s5", "/plain/s6"]


def test_gateway_healthy(env):
    g, _ = env
    g.assert_healthy()


# ----- config errors (`portico validate`) ---------------------------------------------------------
VALID = """workers: 1
listeners:
  - name: main
    address: 127.0.0.1:18080
upstreams:
  u:
    endpoints: ["127.0.0.1:9001"]
routes:
  - name: other
    match: { path_prefix: /other }
    upstream: u
    auth: public
  - name: app
    match: { path_prefix: /app, methods: [GET, POST] }
    upstream: u
    auth: public
    cors:
      origins: ["https://app.example.com", "http://localhost:3000"]
      methods: [GET, POST]
      headers: [Authorization, X-Custom]
      expose_headers: [X-Request-Id, X-Up]
      credentials: true
      max_age: 10m
  - name: any
    match: { path_prefix: /any }
    upstream: u
    auth: public
    cors: { origins: ["*"], credentials: true }
"""


def _cors_block(text):
    """The 1-based line numbers of the "app" route's cors block in text."""
    lines = text.splitlines()
    start = lines.index("    cors:") + 1
    end = start
    while end < len(lines) and lines[end].startswith("      "):
        end += 1
    return range(start, end + 1)


CORS_LINES = _cors_block(VALID)

ORIGINS_LINE = '      origins: ["https://app.example.com", "http://localhost:3000"]\n'
BAD = [
    # (id, replaced, replacement, words: one must be in the message)
    ("no-origins", ORIGINS_LINE, "", ["origins"]),
    ("empty-origins", ORIGINS_LINE, "      origins: []\n", ["origins"]),
    ("origin-without-scheme", ORIGINS_LINE, '      origins: ["app.example.com"]\n',
     ["app.example.com", "origin"]),
    ("origin-with-path", ORIGINS_LINE, '      origins: ["https://a.example/x"]\n',
     ["https://a.example/x", "origin"]),
    ("unknown-key", "      credentials: true\n",
     "      credentials: true\n      allow_origin: \"*\"\n", ["allow_origin"]),
    ("invalid-method", "      methods: [GET, POST]\n", '      methods: [GET, "BAD METHOD"]\n',
     ["BAD METHOD", "method"]),
    ("bad-max-age", "      max_age: 10m\n", "      max_age: forever\n", ["forever", "max_age"]),
]


def _validate(portico_bin, tmp_path, text):
    path = tmp_path / "cors.yaml"
    path.write_text(text)
    p = subprocess.run([portico_bin, "validate", "-c", str(path)], capture_output=True,
                       text=True, timeout=30 * SLACK, cwd=str(tmp_path))
    return str(path), p


def test_validate_accepts_cors(portico_bin, tmp_path):
    assert [VALID.splitlines()[i - 1].strip().split(":")[0] for i in CORS_LINES] == \
        ["cors", "origins", "methods", "headers", "expose_headers", "credentials", "max_age"]
    _, p = _validate(portico_bin, tmp_path, VALID)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip() == "ok"


@pytest.mark.parametrize("old,new,words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_validate_refuses_bad_cors(portico_bin, tmp_path, old, new, words):
    assert VALID.count(old) == 1, old
    text = VALID.replace(old, new)
    block = _cors_block(text)
    path, p = _validate(portico_bin, tmp_path, text)
    out = p.stdout + p.stderr
    assert p.returncode == 1, f"validate accepted it: {out}"
    assert "ok" not in p.stdout.split(), out
    hits = []
    for ln in out.splitlines():
        m = re.match(re.escape(path) + r":(\d+):(\d+): (.*)$", ln)
        if not m or int(m.group(1)) not in block:
            continue
        msg = m.group(3)
        if "not supported" in msg:
            continue  # refused only because cors is missing: not this error
        if any(w.lower() in msg.lower() for w in words):
            hits.append(ln)
    assert hits, (f"no error within the cors block (lines {block.start}-{block.stop - 1})"
                  f" naming one of {words}: {out}")


def test_run_refuses_bad_cors(portico_bin, tmp_path):
    """`portico run` loads the same way: it exits at once, naming the key."""
    path = tmp_path / "run.yaml"
    text = VALID.replace("      max_age: 10m\n", "      max_age: forever\n")
    path.write_text(text)
    line = text.splitlines().index("      max_age: forever") + 1
    try:
        p = subprocess.run([portico_bin, "run", "-c", str(path)], capture_output=True,
                           text=True, timeout=10 * SLACK, cwd=str(tmp_path),
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail("portico run started on a config with max_age: forever")
    assert p.returncode != 0, p.stderr
    assert f"{path}:{line}:" in p.stderr, p.stderr
    assert "forever" in p.stderr or "max_age" in p.stderr, p.stderr
    assert "not supported" not in p.stderr, p.stderr
