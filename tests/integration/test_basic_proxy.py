"""Proxying basics: forwarding, request ids, X-Forwarded-*, hop-by-hop, keep-alive, pipelining,
the builtin echo upstream and the README's curl lines."""
import http.client
import json
import re
import socket
import subprocess
import threading

import pytest

from support import gateway as gw
from support import rawhttp
from support.rawhttp import RawConn, request_bytes
from support.util import free_port, wait_until

HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def env(module_gateway, module_upstreams):
    u = module_upstreams("main")
    routes = [
        gw.route("edits", {"path_prefix": "/edits"}, "main",
                 headers={"request": {"set": {"X-Gw-Added": "yes", "X-Overwrite": "gateway"},
                                      "remove": ["X-Drop-Me"]},
                          "response": {"set": {"X-Resp-Added": "added"},
                                       "remove": ["X-Remove-Me"]}}),
        gw.route("all", {"path_prefix": "/"}, "main"),
    ]
    trusted_listener = {"name": "trusted", "address": "127.0.0.1:@TRUSTED@",
                        "trusted_proxies": ["127.0.0.0/8"]}
    g = module_gateway(gw.config(routes, {"main": gw.up(u)}, extra_listeners=[trusted_listener]),
                       subs={"TRUSTED": free_port()})
    g.trusted_port = int(g.subs["TRUSTED"])
    return g, u


def curl(*args, timeout=10):
    return subprocess.run(["curl", "-sS", "--max-time", str(timeout), *args],
                          capture_output=True, timeout=timeout + 5)


def parse_curl_i(out):
    resp, _ = rawhttp.parse_one(out, eof=True)
    return resp


def test_get_is_forwarded_with_curl(env):
    g, u = env
    n = u.count()
    p = curl("-i", g.url("/some/path?x=1&y=two"))
    assert p.returncode == 0, p.stderr
    resp = parse_curl_i(p.stdout)
    assert resp.status == 200
    assert resp.header("X-Upstream-Name") == "main"
    body = resp.json()
    assert body["method"] == "GET"
    assert body["target"] == "/some/path?x=1&y=two"
    assert u.count() == n + 1
    assert u.last().path == "/some/path"


def test_post_body_arrives_intact(env):
    g, u = env
    payload = bytes(range(256)) * 40
    status, headers, body = g.request("POST", "/upload-small", body=payload,
                                      headers={"Content-Type": "application/octet-stream"})
    assert status == 200
    rec = u.last()
    assert rec.method == "POST"
    assert rec.body == payload
    assert rec.header("Content-Length") == str(len(payload))
    assert rec.header("Content-Type") == "application/octet-stream"


def test_request_id_generated_and_forwarded(env):
    g, u = env
    status, headers, body = g.request("GET", "/rid")
    assert status == 200
    rid = headers["X-Request-Id"]
    assert rid and HEX32.match(rid), rid
    assert u.last().header_all("X-Request-Id") == [rid]


@pytest.mark.parametrize("rid", ["abc-123_x.y:z+w=/v", "A" * 128, "0"])
def test_well_formed_client_request_id_is_kept(env, rid):
    g, u = env
    status, headers, _ = g.request("GET", "/rid", headers={"X-Request-Id": rid})
    assert status == 200
    assert headers["X-Request-Id"] == rid
    assert u.last().header_all("X-Request-Id") == [rid]


@pytest.mark.parametrize("rid", ["has space", "A" * 129, "bad<chars>", "semi;colon", ""])
def test_malformed_client_request_id_is_replaced(env, rid):
    g, u = env
    resp = rawhttp.exchange(g.port, request_bytes("GET", "/rid", headers=[("X-Request-Id", rid)]))
    assert resp.status == 200
    new = resp.header("X-Request-Id")
    assert new != rid and HEX32.match(new), new
    assert u.last().header_all("X-Request-Id") == [new]


@pytest.fixture
def narrow(gateway, upstream):
    """A gateway without a catch-all route, for 404 and 405."""
    routes = [gw.route("methods", {"path_prefix": "/only-get-post", "methods": ["GET", "POST"]},
                       "u"),
              gw.route("only", {"path_prefix": "/only"}, "u")]
    return gateway(gw.config(routes, {"u": gw.up(upstream)})), upstream


def test_request_id_on_gateway_errors_matches_body(narrow):
    g, _ = narrow
    resp = rawhttp.exchange(g.port, request_bytes("PUT", "/only-get-post/x",
                                                  headers=[("X-Request-Id", "err-1")]))
    assert resp.status == 405
    assert resp.header("X-Request-Id") == "err-1"
    assert resp.json()["error"]["request_id"] == "err-1"


def test_forwarded_headers_from_untrusted_client_are_replaced(env):
    g, u = env
    resp = rawhttp.exchange(g.port, request_bytes(
        "GET", "/xff", host="api.example.com:8443",
        headers=[("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-Proto", "https"),
                 ("X-Forwarded-Host", "evil.example")]))
    assert resp.status == 200
    rec = u.last()
    assert rec.header_all("X-Forwarded-For") == ["127.0.0.1"]
    assert rec.header_all("X-Forwarded-Proto") == ["http"]
    assert rec.header_all("X-Forwarded-Host") == ["api.example.com:8443"]
    assert rec.header_all("Host") == ["api.example.com:8443"]


def test_forwarded_headers_without_client_values(env):
    g, u = env
    rawhttp.exchange(g.port, request_bytes("GET", "/xff", host="plain.test"))
    rec = u.last()
    assert rec.header_all("X-Forwarded-For") == ["127.0.0.1"]
    assert rec.header_all("X-Forwarded-Proto") == ["http"]
    assert rec.header_all("X-Forwarded-Host") == ["plain.test"]
    assert rec.header_all("Host") == ["plain.test"]


def test_forwarded_headers_from_trusted_proxy_are_kept(env):
    g, u = env
    resp = rawhttp.exchange(g.trusted_port, request_bytes(
        "GET", "/xff", host="front.test",
        headers=[("X-Forwarded-For", "203.0.113.9, 10.0.0.1"), ("X-Forwarded-Proto", "https")]))
    assert resp.status == 200
    rec = u.last()
    assert rec.header_all("X-Forwarded-For") == ["203.0.113.9, 10.0.0.1, 127.0.0.1"]
    assert rec.header_all("X-Forwarded-Proto") == ["https"]
    assert rec.header_all("Host") == ["front.test"]


def test_trusted_proxy_several_xff_lines_are_combined(env):
    """Field lines with the same name form one comma-separated list (RFC 9110 5.3)."""
    g, u = env
    resp = rawhttp.exchange(g.trusted_port, request_bytes(
        "GET", "/xff", headers=[("X-Forwarded-For", "198.51.100.7"),
                                ("X-Forwarded-For", "203.0.113.9")]))
    assert resp.status == 200
    assert u.last().header_all("X-Forwarded-For") == ["198.51.100.7, 203.0.113.9, 127.0.0.1"]


def test_untrusted_several_xff_lines_are_all_replaced(env):
    g, u = env
    rawhttp.exchange(g.port, request_bytes(
        "GET", "/xff", headers=[("X-Forwarded-For", "198.51.100.7"),
                                ("X-Forwarded-For", "203.0.113.9")]))
    assert u.last().header_all("X-Forwarded-For") == ["127.0.0.1"]


def test_trusted_listener_without_client_xff(env):
    g, u = env
    rawhttp.exchange(g.trusted_port, request_bytes("GET", "/xff"))
    rec = u.last()
    assert rec.header_all("X-Forwarded-For") == ["127.0.0.1"]
    assert rec.header_all("X-Forwarded-Proto") == ["http"]


def test_hop_by_hop_request_headers_are_not_forwarded(env):
    g, u = env
    resp = rawhttp.exchange(g.port, request_bytes("GET", "/hop-req", headers=[
        ("Connection", "keep-alive, X-Private-Hop"), ("X-Private-Hop", "secret"),
        ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Trailer", "X-Foo"),
        ("Upgrade", "websocket"), ("Proxy-Connection", "keep-alive"),
        ("X-End-To-End", "kept")]))
    assert resp.status == 200
    names = u.last().header_names()
    for hop in ("x-private-hop", "keep-alive", "te", "trailer", "upgrade", "proxy-connection",
                "transfer-encoding"):
        assert hop not in names, (hop, u.last().headers)
    # Connection may be set by the gateway itself, but never to the client's tokens.
    for v in u.last().header_all("Connection"):
        assert "x-private-hop" not in v.lower()
    assert u.last().header_all("X-End-To-End") == ["kept"]


def test_hop_by_hop_response_headers_are_not_forwarded(env):
    g, _ = env
    resp = rawhttp.exchange(g.port, request_bytes("GET", "/hop"))
    assert resp.status == 200
    assert resp.body == b"hop\n"
    for hop in ("X-Hop-Custom", "Keep-Alive", "Proxy-Connection", "Upgrade", "Trailer"):
        assert not resp.has_header(hop), (hop, resp.headers)
    assert resp.header("X-End-To-End") == "kept"


def test_route_header_edits_both_ways(env):
    g, u = env
    resp = rawhttp.exchange(g.port, request_bytes("GET", "/edits/x", headers=[
        ("X-Drop-Me", "1"), ("X-Overwrite", "client"), ("X-Keep", "k")]))
    assert resp.status == 200
    rec = u.last()
    assert rec.path == "/edits/x"
    assert rec.header_all("X-Gw-Added") == ["yes"]
    assert rec.header_all("X-Overwrite") == ["gateway"]
    assert rec.header_all("X-Drop-Me") == []
    assert rec.header_all("X-Keep") == ["k"]
    assert resp.header("X-Resp-Added") == "added"
    assert not resp.has_header("X-Remove-Me")
    assert resp.header("X-Upstream-Name") == "main"
    # Other routes are untouched by these edits.
    resp = rawhttp.exchange(g.port, request_bytes("GET", "/other", headers=[("X-Drop-Me", "1")]))
    assert u.last().header_all("X-Drop-Me") == ["1"]
    assert resp.header("X-Remove-Me") == "secret"


def test_404_no_route_json(narrow):
    g, upstream = narrow
    p = curl("-i", g.url("/nothing-here"))
    resp = parse_curl_i(p.stdout)
    assert resp.status == 404
    assert resp.header("Content-Type").startswith("application/json")
    err = resp.json()["error"]
    assert err["status"] == 404 and err["code"] == "no_route"
    assert isinstance(err["message"], str) and err["message"]
    assert err["request_id"] == resp.header("X-Request-Id")
    assert upstream.count() == 0


def test_405_with_allow(narrow):
    g, u = narrow
    n = u.count()
    resp = rawhttp.exchange(g.port, request_bytes("DELETE", "/only-get-post"))
    assert resp.status == 405
    assert resp.json()["error"]["code"] == "method_not_allowed"
    allow = [m.strip() for m in resp.header("Allow").split(",")]
    assert sorted(allow) == ["GET", "POST"]
    assert u.count() == n
    assert rawhttp.exchange(g.port, request_bytes("POST", "/only-get-post", body=b"x")).status == 200


def test_keepalive_reuses_upstream_connections(env):
    g, u = env
    conns_before = u.connection_count()
    n = u.count()
    c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=5)
    seen_sock = None
    for i in range(200):
        c.request("GET", f"/ka/{i}")
        r = c.getresponse()
        body = json.loads(r.read())
        assert r.status == 200 and body["path"] == f"/ka/{i}"
        if seen_sock is None:
            seen_sock = c.sock
        assert c.sock is seen_sock, "the gateway closed a keep-alive client connection"
    c.close()
    assert u.count() == n + 200
    assert u.connection_count() - conns_before <= 5


def test_keepalive_several_client_connections(env):
    g, u = env
    conns_before = u.connection_count()
    errors = []

    def client(k):
        try:
            c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=5)
            for i in range(50):
                c.request("GET", f"/multi/{k}/{i}")
                r = c.getresponse()
                body = json.loads(r.read())
                if r.status != 200 or body["path"] != f"/multi/{k}/{i}":
                    errors.append((k, i, r.status, body))
            c.close()
        except Exception as e:  # noqa: BLE001
            errors.append((k, repr(e)))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    # 4 concurrent clients: a handful of pooled upstream connections suffice.
    assert u.connection_count() - conns_before <= 8


def test_pipelined_requests_answered_in_order(env):
    g, u = env
    paths = [f"/pipe/{i}" for i in range(10)]
    data = b"".join(request_bytes("GET", p) for p in paths[:-1])
    data += request_bytes("GET", paths[-1], headers=[("Connection", "close")])
    responses, raw, closed = rawhttp.send_and_read_all(g.port, data, timeout=10)
    assert closed
    assert [r.status for r in responses] == [200] * 10
    assert [r.json()["path"] for r in responses] == paths


def test_pipelined_slow_first_keeps_order(env):
    g, u = env
    data = (request_bytes("GET", "/slow/300") + request_bytes("GET", "/fast-second")
            + request_bytes("GET", "/fast-third", headers=[("Connection", "close")]))
    responses, raw, closed = rawhttp.send_and_read_all(g.port, data, timeout=10)
    assert [r.json()["path"] for r in responses] == ["/slow/300", "/fast-second", "/fast-third"]


def test_upstream_request_id_header_does_not_duplicate(env):
    g, u = env
    resp = rawhttp.exchange(g.port, request_bytes("GET", "/own-request-id",
                                                  headers=[("X-Request-Id", "mine-1")]))
    assert resp.status == 200 and resp.body == b"rid"
    assert resp.header_all("X-Request-Id") == ["mine-1"]


def test_pipelined_with_bodies(env):
    g, u = env
    bodies = [b"a" * 10, b"", b"b" * 3000, b"c"]
    data = b""
    for i, b in enumerate(bodies):
        data += request_bytes("POST", f"/pb/{i}", headers=[("Content-Length", str(len(b)))], body=b)
    with RawConn(g.port) as c:
        c.send(data)
        got = [c.read_response() for _ in bodies]
    assert [r.json()["path"] for r in got] == [f"/pb/{i}" for i in range(len(bodies))]
    assert [r.json()["body_len"] for r in got] == [len(b) for b in bodies]


def test_head_request_has_no_body_and_connection_stays_usable(env):
    g, u = env
    with RawConn(g.port) as c:
        c.send(request_bytes("HEAD", "/bytes/1234"))
        r = c.read_response("HEAD")
        assert r.status == 200
        assert r.header("Content-Length") == "1234"
        c.send(request_bytes("GET", "/after-head"))
        r2 = c.read_response()
        assert r2.status == 200 and r2.json()["path"] == "/after-head"
    assert u.last().method == "GET"


def test_http10_request_is_answered_and_closed(env):
    g, u = env
    responses, raw, closed = rawhttp.send_and_read_all(
        g.port, b"GET /ten HTTP/1.0\r\nHost: x\r\n\r\n", timeout=5)
    assert closed
    assert len(responses) == 1 and responses[0].status == 200
    assert responses[0].json()["path"] == "/ten"


def test_workers_2_many_connections(gateway, upstream):
    g = gateway(gw.config([gw.route("all", {"path_prefix": "/"}, "u")], {"u": gw.up(upstream)},
                          workers=2))
    for i in range(60):
        status, _, body = g.request("GET", f"/w/{i}")
        assert status == 200 and json.loads(body)["path"] == f"/w/{i}"
    assert upstream.count() == 60


# ----- the builtin echo upstream and the README's curl lines -------------------------------
@pytest.fixture(scope="module")
def quickstart(module_gateway, repo_dir):
    with open(f"{repo_dir}/examples/quickstart.yaml") as f:
        text = f.read()
    assert "127.0.0.1:8080" in text and "127.0.0.1:9901" in text
    text = text.replace("127.0.0.1:8080", "127.0.0.1:@PORT@").replace("127.0.0.1:9901",
                                                                      "127.0.0.1:@ADMIN@")
    return module_gateway(text, name="quickstart")


def test_readme_curl_hello(quickstart):
    p = curl("-i", quickstart.url("/hello"))
    assert p.returncode == 0, p.stderr
    resp = parse_curl_i(p.stdout)
    assert resp.status == 200
    assert resp.header("X-Portico-Route") == "hello"
    assert resp.header("Content-Type").startswith("application/json")
    assert HEX32.match(resp.header("X-Request-Id"))
    body = resp.json()
    assert body["method"] == "GET"
    assert body["path"] == "/hello"
    assert body["query"] == ""
    assert body["route"] == "hello"
    assert body["body_bytes"] == 0 and body["body"] == ""
    assert body["headers"]["host"] == f"127.0.0.1:{quickstart.port}"
    assert body["headers"]["user-agent"].startswith("curl/")
    assert body["headers"]["x-request-id"] == resp.header("X-Request-Id")
    assert all(k == k.lower() for k in body["headers"])


def test_readme_curl_users_rewrite(quickstart):
    p = curl(quickstart.url("/users/42"))
    assert p.returncode == 0, p.stderr
    body = json.loads(p.stdout)
    assert body["path"] == "/v2/users/42"
    assert body["route"] == "users"
    assert '"path":"/v2/users/42"' in p.stdout.decode()


def test_echo_query_and_body(quickstart):
    p = curl("-X", "POST", "--data-binary", "hello body", "-H", "X-Custom: Val",
             quickstart.url("/hello/sub?a=1&b=2"))
    body = json.loads(p.stdout)
    assert body["method"] == "POST"
    assert body["path"] == "/hello/sub"
    assert body["query"] == "a=1&b=2"
    assert body["body_bytes"] == 10 and body["body"] == "hello body"
    assert body["headers"]["x-custom"] == "Val"


def test_echo_users_wrong_method_is_405(quickstart):
    p = curl("-i", "-X", "POST", "--data", "x", quickstart.url("/users/42"))
    resp = parse_curl_i(p.stdout)
    assert resp.status == 405
    assert resp.header("Allow") == "GET"


def test_readme_curl_nope_is_json_404(quickstart):
    p = curl("-i", quickstart.url("/nope"))
    resp = parse_curl_i(p.stdout)
    assert resp.status == 404
    err = resp.json()["error"]
    assert err["code"] == "no_route" and err["status"] == 404
    assert err["request_id"] == resp.header("X-Request-Id")


def test_readme_curl_admin_readyz_and_reload(quickstart):
    p = curl(quickstart.admin_url + "/readyz")
    ready = json.loads(p.stdout)
    assert ready["status"] == "ready" and ready["config_version"] >= 1
    p = curl("-X", "POST", quickstart.admin_url + "/admin/reload")
    reloaded = json.loads(p.stdout)
    assert reloaded["status"] == "reloaded" and reloaded["version"] > ready["config_version"]


def test_quickstart_access_log_on_stdout(quickstart):
    curl(quickstart.url("/hello?logged=1"))
    lines = wait_until(lambda: [json.loads(ln) for ln in quickstart.access_log_lines()
                                if '"/hello' in ln], timeout=5, message="an access log line")
    assert any(e["route"] == "hello" and e["status"] == 200 for e in lines)


def test_client_connection_close_is_honoured(env):
    g, u = env
    responses, raw, closed = rawhttp.send_and_read_all(
        g.port, request_bytes("GET", "/conn-close", headers=[("Connection", "close")]))
    assert closed and len(responses) == 1 and responses[0].status == 200
    assert responses[0].header("Connection", "").lower() == "close"
    assert u.last().path == "/conn-close"


def test_http10_client_never_gets_chunked(env):
    """HTTP/1.0 has no chunked coding: an upstream chunked body is de-chunked for it."""
    g, _ = env
    responses, raw, closed = rawhttp.send_and_read_all(
        g.port, b"GET /chunked HTTP/1.0\r\nHost: t\r\n\r\n")
    assert closed
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert body == b"hello chunked world"


@pytest.mark.parametrize("corked", [False, True], ids=["separate-fin", "fin-with-data"])
def test_request_then_half_close_is_answered(env, corked):
    """A client that shuts down its sending side after the request still gets the response."""
    g, u = env
    with RawConn(g.port) as c:
        if corked:  # the request and the FIN leave in one segment
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        c.send(request_bytes("GET", "/half-close"))
        c.sock.shutdown(socket.SHUT_WR)
        raw, closed = c.read_until_close(5)
    responses = rawhttp.parse_all(raw)
    assert len(responses) == 1 and responses[0].status == 200, raw[:300]
    assert responses[0].json()["path"] == "/half-close"
    assert closed


def test_clients_aborting_mid_request_do_not_hurt(env):
    g, u = env
    for i in range(20):
        c = RawConn(g.port)
        if i % 2:
            c.send(b"POST /abort HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)
        else:
            c.send(b"GET /slow/300 HTTP/1.1\r\nHost: t\r\n\r\n")
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()  # RST
    resp = rawhttp.exchange(g.port, request_bytes("GET", "/after-aborts"))
    assert resp.status == 200 and resp.json()["path"] == "/after-aborts"
    assert g.alive()
