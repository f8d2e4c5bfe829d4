"""The admin API's JSON endpoints (docs/observability.md, SPEC §5 and §8):

  - /admin/config: the config in force, every secret "<redacted>" whether written literally or
    as ${ENV} (admin token, metrics_token, Redis password, JWT secret and secret_base64, an
    introspection client_secret, consumers' api_keys, api_key_sha256, basic_auth password_hash,
    and a header value equal to an API key); nothing secret anywhere in the body
  - /admin/routes: the routes in config order, as written (${ENV} expanded), name and priority
  - /admin/upstreams: circuit, endpoints with healthy/state/in_flight/requests/failures
  - /admin/stats: per-route counts, statuses and duration buckets, auth failures, 429s,
    connections; all equal to what was sent
"""
import base64
import hashlib
import json
import threading
import time
import warnings

import pytest

from support import gateway as gw
from support import rawhttp
from support import util
from support.rawhttp import RawConn, request_bytes
from support.util import SLACK, wait_until

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # noqa: E402 - the system's crypt(3), as test_basic_auth.py uses it

R = "<redacted>"
EP_KEYS = {"healthy", "state", "in_flight", "requests", "failures"}
BOUNDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
JWT_B64_PLAIN = "jwt-b64-Secret-5555-0123456789abcdef"
HASHED_KEY = "k-hashed-Secret-9999"
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    BASIC_HASH = crypt.crypt("basic-pw-Secret-0000", crypt.mksalt(crypt.METHOD_SHA512))
SECRETS = {
    "ADMIN_TOKEN": "adm-tok-Secret-1111",
    "METRICS_TOKEN": "scrape-tok-Secret-2222",
    "REDIS_PASSWORD": "redis-pw-Secret-3333",
    "JWT_SECRET": "jwt-hs256-Secret-4444-0123456789abcdef",
    "JWT_SECRET_B64": base64.b64encode(JWT_B64_PLAIN.encode()).decode(),
    "IDP_SECRET": "idp-client-Secret-6666",
    "API_KEY": "k-api-Secret-7777",
    "API_KEY2": "k-api-Secret-8888",
    "KEY_SHA": hashlib.sha256(HASHED_KEY.encode()).hexdigest(),
    "BASIC_HASH": BASIC_HASH,
}


def api_route():
    """/api/... reaches the upstream as /... (its /status/N, /slow/MS paths)."""
    return gw.route("api", {"path_prefix": "/api"}, "u", rewrite={"strip_prefix": True})


def get(g, path, headers=(), method="GET"):
    return rawhttp.exchange(g.port, request_bytes(method, path, headers=list(headers)),
                            method=method)


def send(g, n, path, status, **kw):
    for _ in range(n):
        r = get(g, path, **kw)
        assert r.status == status, (path, r)


def admin_json(g, path, **kw):
    status, body = g.admin("GET", path, **kw)
    assert status == 200, (path, status, body)
    assert not isinstance(body, str), f"{path} is not JSON: {body[:300]!r}"
    return body


def admin_text(g, path):
    status, body = g.admin("GET", path)
    assert status == 200, (path, status, body)
    return body if isinstance(body, str) else json.dumps(body)


def norm(v):
    """Scalars as the strings the YAML wrote (10 and "10" alike); dicts and lists recursively."""
    if isinstance(v, dict):
        return {k: norm(x) for k, x in v.items()}
    if isinstance(v, list):
        return [norm(x) for x in v]
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def assert_no_secret(text, where):
    forms = set()
    for s in [*SECRETS.values(), JWT_B64_PLAIN, HASHED_KEY]:
        forms |= {s, json.dumps(s)[1:-1], s.replace("/", "\\/")}
    lowered = text.lower()
    for s in forms:
        assert s.lower() not in lowered, f"a secret ({s[:6]}...) appears in {where}"


# ----- /admin/config ---------------------------------------------------------------------------
def secret_config(upstream, mode):
    def val(name):
        return SECRETS[name] if mode == "literal" else "${" + name + "}"

    redis_addr = f"127.0.0.1:{util.free_port()}"   # no Redis there: the gateway starts anyway
    idp_url = f"http://127.0.0.1:{util.free_port()}/introspect"   # never called here
    routes = [
        gw.route("secure", {"path_prefix": "/secure"}, "u",
                 auth=["keys", "hs", "hs64", "idp", "basic"],
                 headers={"request": {"set": {"X-Upstream-Key": val("API_KEY"),
                                              "X-Gateway-Version": "1.0-visible"}}}),
        gw.route("open", {"path_prefix": "/open"}, "u"),
    ]
    providers = {
        "keys": {"type": "api_key", "from": ["header:X-API-Key"]},
        "hs": {"type": "jwt", "algorithms": ["HS256"], "secret": val("JWT_SECRET")},
        "hs64": {"type": "jwt", "algorithms": ["HS256"], "secret_base64": val("JWT_SECRET_B64")},
        "idp": {"type": "oauth2_introspection", "endpoint": idp_url,
                "client_id": "gateway-client", "client_secret": val("IDP_SECRET")},
        "basic": {"type": "basic"},
    }
    consumers = [{"name": "alice", "groups": ["admins"],
                  "api_keys": [val("API_KEY"), val("API_KEY2")],
                  "api_key_sha256": [val("KEY_SHA")],
                  "basic_auth": {"username": "alice-basic", "password_hash": val("BASIC_HASH")}}]
    cfg = gw.config(routes, {"u": gw.up(upstream)}, auth_providers=providers,
                    consumers=consumers,
                    redis={"address": redis_addr, "password": val("REDIS_PASSWORD")})
    cfg["admin"]["token"] = val("ADMIN_TOKEN")
    cfg["admin"]["metrics_token"] = val("METRICS_TOKEN")
    return cfg, redis_addr, idp_url


@pytest.mark.parametrize("mode", ["literal", "env"])
def test_admin_config_redacts_every_secret(gateway, upstream, mode):
    cfg, redis_addr, idp_url = secret_config(upstream, mode)
    g = gateway(cfg, env=dict(SECRETS) if mode == "env" else None,
                admin_token=SECRETS["ADMIN_TOKEN"])
    # The gateway works with these secrets (an API key, then the header set to it upstream).
    r = get(g, "/secure/x", headers=[("X-API-Key", SECRETS["API_KEY2"])])
    assert r.status == 200, r
    assert upstream.last().header("X-Upstream-Key") == SECRETS["API_KEY"]
    assert get(g, "/secure/x").status == 401

    for path in ("/admin/config", "/admin/routes", "/admin/upstreams", "/admin/stats"):
        assert g.admin("GET", path, token="")[0] == 401, path
        assert g.admin("GET", path, token=SECRETS["METRICS_TOKEN"])[0] == 401, path

    text = admin_text(g, "/admin/config")
    assert_no_secret(text, "/admin/config")
    c = json.loads(text)
    assert c["admin"]["token"] == R and c["admin"]["metrics_token"] == R, c["admin"]
    assert c["admin"]["address"] == f"127.0.0.1:{g.admin_port}"
    assert c["redis"]["password"] == R and c["redis"]["address"] == redis_addr, c["redis"]
    p = c["auth_providers"]
    assert p["hs"]["secret"] == R and norm(p["hs"]["algorithms"]) == ["HS256"], p["hs"]
    assert p["hs64"]["secret_base64"] == R, p["hs64"]
    assert p["idp"]["client_secret"] == R, p["idp"]
    assert p["idp"]["endpoint"] == idp_url and p["idp"]["client_id"] == "gateway-client"
    assert p["keys"]["type"] == "api_key" and p["basic"]["type"] == "basic"
    assert [x["name"] for x in c["consumers"]] == ["alice"]
    alice = c["consumers"][0]
    assert alice["api_keys"] == [R, R] and alice["api_key_sha256"] == [R], alice
    assert alice["basic_auth"] == {"username": "alice-basic", "password_hash": R}, alice
    assert alice["groups"] == ["admins"]
    assert [x["name"] for x in c["routes"]] == ["secure", "open"]
    assert c["routes"][0]["headers"]["request"]["set"] == {
        "X-Upstream-Key": R, "X-Gateway-Version": "1.0-visible"}, c["routes"][0]
    assert c["upstreams"]["u"]["endpoints"] == [upstream.address], c["upstreams"]
    assert c["listeners"][0]["address"] == f"127.0.0.1:{g.port}"

    text = admin_text(g, "/admin/routes")
    assert_no_secret(text, "/admin/routes")
    routes = json.loads(text)
    assert routes[0]["headers"]["request"]["set"]["X-Upstream-Key"] == R, routes[0]
    assert_no_secret(admin_text(g, "/admin/upstreams"), "/admin/upstreams")
    assert_no_secret(admin_text(g, "/admin/stats"), "/admin/stats")


# ----- /admin/routes ---------------------------------------------------------------------------
def test_admin_routes_in_config_order(gateway, upstream):
    routes = [
        gw.route("users", {"path_prefix": "/users"}, "u", auth=["keys"],
                 rate_limit=[{"key": "ip", "limit": 10, "window": "1m"}]),
        gw.route("orders", {"path_prefix": "${ORDERS_PREFIX}", "methods": ["GET", "POST"]}, "u",
                 priority=5, timeout="2s"),
        gw.route("hello", {"path_prefix": "/hello"}, "e", priority=2,
                 rewrite={"strip_prefix": True}),
    ]
    cfg = gw.config(routes, {"u": gw.up(upstream), "e": {"builtin": "echo"}},
                    auth_providers={"keys": {"type": "api_key", "from": ["header:X-API-Key"]}},
                    consumers=[{"name": "a", "api_keys": ["k-routes-0123456789"]}])
    g = gateway(cfg, env={"ORDERS_PREFIX": "/orders"})
    body = admin_json(g, "/admin/routes")
    assert isinstance(body, list), body
    assert [r["name"] for r in body] == ["users", "orders", "hello"], body
    assert [int(r["priority"]) for r in body] == [0, 5, 2], body
    users, orders, hello = body
    assert users["upstream"] == "u" and norm(users["auth"]) == ["keys"], users
    assert norm(users["rate_limit"]) == [{"key": "ip", "limit": "10", "window": "1m"}], users
    assert norm(users["match"]) == {"path_prefix": "/users"}, users
    assert norm(orders["match"]) == {"path_prefix": "/orders", "methods": ["GET", "POST"]}
    assert orders["upstream"] == "u" and orders["auth"] == "public", orders
    assert norm(orders["timeout"]) == "2s", orders
    assert hello["upstream"] == "e" and norm(hello["rewrite"]) == {"strip_prefix": "true"}


# ----- /admin/upstreams ------------------------------------------------------------------------
def test_admin_upstreams_in_flight_and_counts(gateway, upstream):
    dead = f"127.0.0.1:{util.free_port()}"
    routes = [api_route(),
              gw.route("dead", {"path_prefix": "/dead"}, "d")]
    g = gateway(gw.config(routes, {"u": gw.up(upstream), "d": gw.up(dead)}))

    def endpoint(body, up, addr):
        ep = body[up]["endpoints"][addr]
        assert set(ep) >= EP_KEYS, ep
        return {k: ep[k] for k in EP_KEYS}   # the contract's fields

    body = admin_json(g, "/admin/upstreams")
    assert set(body) >= {"u", "d"}, body
    for name, addr in (("u", upstream.address), ("d", dead)):
        assert body[name]["circuit"] == "closed", body[name]
        assert list(body[name]["endpoints"]) == [addr], body[name]
        ep = endpoint(body, name, addr)
        assert ep == {"healthy": True, "state": "healthy", "in_flight": 0, "requests": 0,
                      "failures": 0}, ep

    send(g, 3, "/api/x", 200)
    held = {}

    def slow():
        held["resp"] = get(g, "/api/slow/1500")
    t = threading.Thread(target=slow)
    t.start()
    try:
        seen = []

        def in_flight():
            seen[:] = [endpoint(admin_json(g, "/admin/upstreams"), "u", upstream.address)]
            return seen[0]["in_flight"] == 1
        wait_until(in_flight, 5 * SLACK, interval=0.05, message="in_flight == 1")
        assert seen[0]["in_flight"] == 1 and seen[0]["requests"] in (3, 4), seen
    finally:
        t.join(timeout=10)
    assert held["resp"].status == 200
    send(g, 1, "/api/status/503", 503)
    send(g, 2, "/dead/x", 502)
    want_u = {"healthy": True, "state": "healthy", "in_flight": 0, "requests": 5, "failures": 1}
    wait_until(lambda: endpoint(admin_json(g, "/admin/upstreams"), "u", upstream.address)
               == want_u, 5 * SLACK, message="in_flight back to 0")
    body = admin_json(g, "/admin/upstreams")
    assert endpoint(body, "u", upstream.address) == want_u, body
    ep = endpoint(body, "d", dead)
    assert ep["in_flight"] == 0 and ep["requests"] == 2 and ep["failures"] == 2, ep


# ----- /admin/stats ----------------------------------------------------------------------------
def test_admin_stats_counts_equal_requests_sent(gateway, upstream):
    dead = f"127.0.0.1:{util.free_port()}"
    routes = [api_route(),
              gw.route("keyed", {"path_prefix": "/keyed"}, "u", auth=["keys"]),
              gw.route("limited", {"path_prefix": "/limited"}, "u",
                       rate_limit=[{"key": "ip", "limit": 1, "window": "1h"}]),
              gw.route("dead", {"path_prefix": "/dead"}, "d")]
    t0 = time.monotonic()
    g = gateway(gw.config(routes, {"u": gw.up(upstream), "d": gw.up(dead)},
                          auth_providers={"keys": {"type": "api_key",
                                                   "from": ["header:X-API-Key"]}},
                          consumers=[{"name": "a", "api_keys": ["k-stats-0123456789"]}]))
    first = admin_json(g, "/admin/stats")
    assert first["config_version"] == 1, first
    assert all(r["requests"] == 0 and r["name"] != "(none)" for r in first["routes"]), first
    assert first["auth_failures"] == [] and first["rate_limited"] == [], first
    send(g, 6, "/api/x", 200)
    send(g, 2, "/api/status/404", 404)
    send(g, 3, "/nothing", 404)
    send(g, 2, "/keyed/x", 401)
    send(g, 1, "/keyed/x", 401, headers=[("X-API-Key", "k-wrong-0123456789")])
    send(g, 1, "/keyed/x", 200, headers=[("X-API-Key", "k-stats-0123456789")])
    send(g, 1, "/limited/x", 200)
    send(g, 2, "/limited/x", 429)
    send(g, 2, "/dead/x", 502)
    for path in ("/readyz", "/metrics", "/admin/upstreams"):   # not counted
        g.admin("GET", path)
    want = {
        "(none)": (3, 3, 0, {"404": 3}),
        "api": (8, 2, 0, {"200": 6, "404": 2}),
        "dead": (2, 0, 2, {"502": 2}),
        "keyed": (4, 3, 0, {"200": 1, "401": 3}),
        "limited": (3, 2, 0, {"200": 1, "429": 2}),
    }

    def routes_now():
        s = admin_json(g, "/admin/stats")
        return s if sum(r["requests"] for r in s["routes"]) == 20 else None
    s = wait_until(routes_now, 5 * SLACK, message="20 requests in /admin/stats")
    assert s["config_version"] == 1
    assert 0 < s["uptime_seconds"] <= time.monotonic() - t0 + 1, s["uptime_seconds"]
    assert s["duration_bounds"] == BOUNDS, s["duration_bounds"]
    names = [r["name"] for r in s["routes"]]
    assert names == sorted(want), names
    for r in s["routes"]:
        requests, e4, e5, statuses = want[r["name"]]
        got = (r["requests"], r["errors_4xx"], r["errors_5xx"], r["statuses"])
        assert got == (requests, e4, e5, statuses), (r["name"], got)
        assert len(r["duration_counts"]) == len(BOUNDS) + 1, r
        assert sum(r["duration_counts"]) == requests, r
        assert all(isinstance(n, int) and n >= 0 for n in r["duration_counts"]), r
        assert 0 <= r["duration_sum"] < requests * 1.0 * SLACK, r
    assert sorted(s["auth_failures"], key=lambda a: a["reason"]) == [
        {"route": "keyed", "provider": "keys", "reason": "invalid", "count": 1},
        {"route": "keyed", "provider": "keys", "reason": "missing", "count": 2}], s
    assert s["rate_limited"] == [{"route": "limited", "key": "ip", "count": 2}], s

    # connections_active: two idle keep-alive connections, then none.
    def conns(n):
        return lambda: admin_json(g, "/admin/stats")["connections_active"] == {"main": n}
    wait_until(conns(0), 5 * SLACK, message="connections_active {main: 0}")
    held = [RawConn(g.port), RawConn(g.port)]
    try:
        for c in held:
            c.send(request_bytes("GET", "/api/held"))
            assert c.read_response().status == 200
        wait_until(conns(2), 5 * SLACK, message="connections_active {main: 2}")
    finally:
        for c in held:
            c.close()
    wait_until(conns(0), 5 * SLACK, message="connections_active back to {main: 0}")

    # A reload keeps the counts and bumps the version; uptime goes on.
    status, body = g.admin("POST", "/admin/reload")
    assert status == 200, body
    s2 = admin_json(g, "/admin/stats")
    assert s2["config_version"] == 2 and s2["uptime_seconds"] >= s["uptime_seconds"], s2
    api = next(r for r in s2["routes"] if r["name"] == "api")
    assert (api["requests"], api["statuses"]) == (10, {"200": 8, "404": 2}), api
    assert [r["name"] for r in s2["routes"]] == names
