"""Routing: hosts, whole-segment prefixes, templates, regex, exact paths, headers, query,
priority, weighted splits, load balancing, rewrites and path normalization."""
import collections

import pytest

from support import gateway as gw
from support import rawhttp
from support.rawhttp import request_bytes


def r(name, match, upstream="a", **kw):
    resp = kw.pop("resp", {})
    resp.setdefault("X-Route", name)
    return gw.route(name, match, upstream, headers={"response": {"set": resp}}, **kw)


@pytest.fixture(scope="module")
def env(module_gateway, module_upstreams):
    a, b, c = module_upstreams("a"), module_upstreams("b"), module_upstreams("c")
    routes = [
        r("host-exact", {"hosts": ["api.example.com"], "path_prefix": "/h"}),
        r("host-wild", {"hosts": ["*.example.com"], "path_prefix": "/h"}),
        r("host-any", {"path_prefix": "/h"}),
        r("users-prefix", {"path_prefix": "/users"}),
        r("item-template", {"path": "/items/{id}"}),
        r("item-rewrite", {"path": "/accounts/{acct}/orders/{oid}"},
          rewrite={"path": "/v2/orders/{oid}/of/{acct}"}),
        r("regex", {"path_regex": "/re/[0-9]+"}),
        r("exact", {"path_exact": "/exact"}),
        r("hdr-regex", {"path_prefix": "/hdr", "headers": {"X-Channel": "~^beta-[a-z]+$"}}),
        r("hdr-exact", {"path_prefix": "/hdr", "headers": {"X-Api-Version": "2"}}),
        r("hdr-none", {"path_prefix": "/hdr"}),
        r("query", {"path_prefix": "/q", "query": {"beta": "true"}}),
        r("query-none", {"path_prefix": "/q"}),
        r("prio-low-specific", {"path_prefix": "/prio/deep"}),
        r("prio-high", {"path_prefix": "/prio"}, priority=10),
        r("spec-short", {"path_prefix": "/spec"}),
        r("spec-long", {"path_prefix": "/spec/deeper"}),
        r("methods", {"path_prefix": "/m", "methods": ["GET", "POST"]}),
        r("methods-put", {"path_prefix": "/m", "methods": ["PUT"]}),
        r("split", {"path_prefix": "/split"}, upstream=None,
          split=[{"upstream": "a", "weight": 80}, {"upstream": "b", "weight": 20}]),
        r("rr", {"path_prefix": "/rr"}, upstream="ab"),
        r("lr", {"path_prefix": "/lr"}, upstream="ab_lr"),
        r("strip", {"path_prefix": "/api"}, rewrite={"strip_prefix": True}),
        r("public", {"path_prefix": "/public"}),
        r("root", {"path_exact": "/"}, upstream="c"),
    ]
    upstreams = {
        "a": gw.up(a), "b": gw.up(b), "c": gw.up(c),
        "ab": gw.up(a, b, load_balancing="round_robin"),
        "ab_lr": gw.up(a, b, load_balancing="least_request"),
    }
    g = module_gateway(gw.config(routes, upstreams))
    return g, {"a": a, "b": b, "c": c}


def get(g, target, host="t", headers=None, method="GET"):
    return rawhttp.exchange(g.port, request_bytes(method, target, host=host, headers=headers),
                            method=method)


def route_of(resp):
    assert resp.status == 200, resp
    return resp.header("X-Route")


@pytest.mark.parametrize("host,expected", [
    ("api.example.com", "host-exact"),
    ("API.Example.COM", "host-exact"),
    ("api.example.com:8080", "host-exact"),
    ("foo.example.com", "host-wild"),
    ("a.b.example.com", "host-wild"),
    ("example.com", "host-any"),
    ("xexample.com", "host-any"),
    ("other.org", "host-any"),
])
def test_hosts(env, host, expected):
    g, _ = env
    assert route_of(get(g, "/h/x", host=host)) == expected


@pytest.mark.parametrize("path,expected", [
    ("/users", 200), ("/users/", 200), ("/users/7", 200), ("/users/7/x", 200),
    ("/usersx", 404), ("/user", 404), ("/Users", 404),
])
def test_prefix_matches_whole_segments(env, path, expected):
    g, _ = env
    resp = get(g, path)
    assert resp.status == expected
    if expected == 200:
        assert resp.header("X-Route") == "users-prefix"
    else:
        assert resp.json()["error"]["code"] == "no_route"


@pytest.mark.parametrize("path,expected", [
    ("/items/5", "item-template"), ("/items/abc-def", "item-template"),
    ("/items/5/x", None), ("/items/", None), ("/items", None),
])
def test_template(env, path, expected):
    g, up = env
    resp = get(g, path)
    if expected:
        assert route_of(resp) == expected
        assert up["a"].last().path == path
    else:
        assert resp.status == 404


def test_template_rewrite_uses_captures(env):
    g, up = env
    resp = get(g, "/accounts/acme/orders/991?expand=1")
    assert route_of(resp) == "item-rewrite"
    assert up["a"].last().target == "/v2/orders/991/of/acme?expand=1"


@pytest.mark.parametrize("path,ok", [("/re/1", True), ("/re/123456", True), ("/re/12a", False),
                                     ("/re/", False), ("/x/re/1", False), ("/re/1/2", False)])
def test_regex_matches_whole_path(env, path, ok):
    g, _ = env
    resp = get(g, path)
    assert (resp.status == 200 and resp.header("X-Route") == "regex") == ok, resp


@pytest.mark.parametrize("path,ok", [("/exact", True), ("/exact/", False), ("/exact/x", False),
                                     ("/exactly", False)])
def test_path_exact(env, path, ok):
    g, _ = env
    resp = get(g, path)
    assert (resp.status == 200 and resp.header("X-Route") == "exact") == ok, resp


@pytest.mark.parametrize("headers,expected", [
    ([("X-Api-Version", "2")], "hdr-exact"),
    ([("x-api-version", "2")], "hdr-exact"),
    ([("X-Api-Version", "3")], "hdr-none"),
    ([("X-Api-Version", "22")], "hdr-none"),
    ([("X-Channel", "beta-blue")], "hdr-regex"),
    ([("X-Channel", "beta-")], "hdr-none"),
    ([("X-Channel", "xbeta-blue")], "hdr-none"),
    ([], "hdr-none"),
])
def test_header_match(env, headers, expected):
    g, _ = env
    assert route_of(get(g, "/hdr/1", headers=headers)) == expected


@pytest.mark.parametrize("query,expected", [
    ("?beta=true", "query"), ("?x=1&beta=true", "query"), ("?beta=false", "query-none"),
    ("?betax=true", "query-none"), ("", "query-none"),
])
def test_query_match(env, query, expected):
    g, up = env
    assert route_of(get(g, "/q/1" + query)) == expected
    assert up["a"].last().target == "/q/1" + query


def test_priority_beats_specificity(env):
    g, _ = env
    assert route_of(get(g, "/prio/deep/x")) == "prio-high"
    assert route_of(get(g, "/prio/other")) == "prio-high"


def test_most_specific_prefix_wins_at_equal_priority(env):
    g, _ = env
    assert route_of(get(g, "/spec/deeper/x")) == "spec-long"
    assert route_of(get(g, "/spec/deeper")) == "spec-long"
    assert route_of(get(g, "/spec/deeperx")) == "spec-short"
    assert route_of(get(g, "/spec/x")) == "spec-short"


def test_methods_select_route_and_405_lists_all(env):
    g, _ = env
    assert route_of(get(g, "/m/1")) == "methods"
    assert route_of(get(g, "/m/1", method="PUT")) == "methods-put"
    resp = get(g, "/m/1", method="DELETE")
    assert resp.status == 405
    assert resp.json()["error"]["code"] == "method_not_allowed"
    allow = sorted(m.strip() for m in resp.header("Allow").split(","))
    assert allow == ["GET", "POST", "PUT"]


def test_split_weights(env):
    g, up = env
    a0, b0 = up["a"].count(), up["b"].count()
    n = 500
    for i in range(n):
        assert get(g, f"/split/{i}").status == 200
    da, db = up["a"].count() - a0, up["b"].count() - b0
    assert da + db == n
    # 80/20 split: expected 400/100; allow a wide margin for randomness.
    assert 330 <= da <= 470, (da, db)


def test_round_robin_spreads_evenly(env):
    g, up = env
    a0, b0 = up["a"].count(), up["b"].count()
    for i in range(100):
        assert get(g, f"/rr/{i}").status == 200
    da, db = up["a"].count() - a0, up["b"].count() - b0
    assert da + db == 100
    assert 40 <= da <= 60, (da, db)


def test_least_request_uses_both_endpoints(env):
    g, up = env
    a0, b0 = up["a"].count(), up["b"].count()
    for i in range(40):
        assert get(g, f"/lr/{i}").status == 200
    da, db = up["a"].count() - a0, up["b"].count() - b0
    assert da + db == 40
    assert da > 0 and db > 0, (da, db)


@pytest.mark.parametrize("target,forwarded", [
    ("/api/foo", "/foo"), ("/api/foo/bar?x=1", "/foo/bar?x=1"), ("/api", "/"), ("/api/", "/"),
    ("/api?q=2", "/?q=2"),
])
def test_strip_prefix(env, target, forwarded):
    g, up = env
    assert route_of(get(g, target)) == "strip"
    assert up["a"].last().target == forwarded


@pytest.mark.parametrize("target,forwarded", [
    ("/public/a/../b", "/public/b"),
    ("/public//b", "/public/b"),
    ("/public/./b", "/public/b"),
    ("/public/%2e%2e/public/b", "/public/b"),
    ("/public/%2E/b", "/public/b"),
    ("/public/%7Euser", "/public/~user"),
    ("/public/%41%62c", "/public/Abc"),
    ("/public/a/b/../../c?x=/../y", "/public/c?x=/../y"),
    ("//public///b", "/public/b"),
    ("/public/%20x", "/public/%20x"),
])
def test_normalized_path_is_forwarded(env, target, forwarded):
    g, up = env
    assert route_of(get(g, target)) == "public"
    assert up["a"].last().target == forwarded


@pytest.mark.parametrize("target,forwarded", [
    ("/public/a/..", "/public/"), ("/public/%2e", "/public/"), ("/public/a/%2E%2e/b", "/public/b"),
    ("/public/%c3%a9", "/public/%C3%A9"), ("/public/%25", "/public/%25"),
    ("/public/%252e%252e/x", "/public/%252e%252e/x"),
])
def test_normalization_edge_cases(env, target, forwarded):
    g, up = env
    assert route_of(get(g, target)) == "public"
    assert up["a"].last().target == forwarded


@pytest.mark.parametrize("target,route,forwarded", [
    ("/public/../admin", None, None),
    ("/public/%2e%2e/admin", None, None),
    ("/public/.%2e/admin", None, None),
    ("/public/..%2fadmin", None, None),
    ("/public/..", "root", "/"),
    ("/public/%2e%2e", "root", "/"),
    ("/../../public", "public", "/public"),  # dot segments above the root are dropped
])
def test_traversal_cannot_escape_route(env, target, route, forwarded):
    """The route is chosen on the normalized path: /public/.. is /, never the /public route."""
    g, up = env
    before = {k: u.count() for k, u in up.items()}
    resp = get(g, target)
    if route is None:
        assert resp.status in (400, 404), resp
        assert {k: u.count() for k, u in up.items()} == before
        return
    assert route_of(resp) == route
    upstream = up["c"] if route == "root" else up["a"]
    assert upstream.last().target == forwarded


def test_root_path_exact(env):
    g, up = env
    assert route_of(get(g, "/")) == "root"
    assert up["c"].last().target == "/"
    assert get(g, "/nope").status == 404


def test_route_counts_are_per_upstream(env):
    """Each request reaches exactly one upstream once."""
    g, up = env
    before = {k: v.count() for k, v in up.items()}
    get(g, "/items/1")
    get(g, "/")
    after = {k: v.count() for k, v in up.items()}
    assert collections.Counter({k: after[k] - before[k] for k in after}) == \
        collections.Counter({"a": 1, "c": 1, "b": 0})
