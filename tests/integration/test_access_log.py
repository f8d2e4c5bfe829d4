"""The access log: one JSON line per request with the documented fields, file/text/off."""
import datetime
import json
import os
import signal

from support import gateway as gw
from support import rawhttp
from support.rawhttp import RawConn, request_bytes
from support.util import wait_until

FIELDS = {"time", "request_id", "client", "method", "path", "route", "upstream", "endpoint",
          "status", "bytes_in", "bytes_out", "duration_ms", "upstream_ms"}


def log_gateway(gateway, upstream, tmp_path, fmt="json", **kw):
    path = str(tmp_path / "access.log")
    routes = [gw.route("api", {"path_prefix": "/api"}, "u", rewrite={"strip_prefix": True}),
              gw.route("hello", {"path_prefix": "/hello"}, "echo")]
    g = gateway(gw.config(routes, {"u": gw.up(upstream), "echo": {"builtin": "echo"}},
                          access_log={"path": path, "format": fmt}, **kw))
    return g, path


def wait_lines(g, path, n):
    return wait_until(lambda: (lambda ls: ls if len(ls) >= n else None)(g.access_log_lines(path)),
                      timeout=5, message=f"{n} access log lines")


def test_json_line_for_a_proxied_request(gateway, upstream, tmp_path):
    g, path = log_gateway(gateway, upstream, tmp_path)
    body = b"0123456789" * 10
    resp = rawhttp.exchange(g.port, request_bytes(
        "POST", "/api/slow/250?x=1", headers=[("X-Request-Id", "log-test-1")], body=body))
    assert resp.status == 200
    raw_out = len(resp.raw_head) + 4 + len(resp.body)
    lines = wait_lines(g, path, 1)
    assert len(lines) == 1, lines
    e = json.loads(lines[0])
    assert FIELDS <= set(e), set(e)
    assert e["request_id"] == "log-test-1"
    assert e["client"].split(":")[0] in ("127.0.0.1", "[127.0.0.1]", "::ffff:127.0.0.1")
    assert e["method"] == "POST"
    assert e["path"] == "/api/slow/250"
    assert e["route"] == "api"
    assert e["upstream"] == "u"
    assert e["endpoint"] == upstream.address
    assert e["status"] == 200
    assert e["bytes_in"] >= len(body)
    assert len(body) < e["bytes_in"] <= len(body) + 400
    assert e["bytes_out"] == raw_out
    assert 240 <= e["upstream_ms"] <= e["duration_ms"] < 5000, e
    t = datetime.datetime.fromisoformat(e["time"].replace("Z", "+00:00"))
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - t).total_seconds()) < 30


def test_one_line_per_request_including_errors(gateway, upstream, tmp_path):
    g, path = log_gateway(gateway, upstream, tmp_path)
    with RawConn(g.port) as c:
        for i in range(5):
            c.send(request_bytes("GET", f"/api/{i}"))
            assert c.read_response().status == 200
        c.send(request_bytes("GET", "/nowhere"))
        assert c.read_response().status == 404
    rawhttp.exchange(g.port, request_bytes("GET", "/hello/x"))
    entries = [json.loads(ln) for ln in wait_lines(g, path, 7)]
    assert len(entries) == 7
    assert [e["path"] for e in entries[:5]] == [f"/api/{i}" for i in range(5)]
    assert len({e["request_id"] for e in entries}) == 7
    miss = entries[5]
    assert miss["status"] == 404 and miss["path"] == "/nowhere"
    assert miss["route"] in ("", None, "-")
    echo = entries[6]
    assert echo["route"] == "hello" and echo["upstream"] == "echo" and echo["status"] == 200


def test_bad_request_is_logged(gateway, upstream, tmp_path):
    g, path = log_gateway(gateway, upstream, tmp_path)
    rawhttp.send_and_read_all(g.port, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    e = json.loads(wait_lines(g, path, 1)[0])
    assert e["status"] == 400


def test_upstream_failure_is_logged(gateway, upstream, tmp_path):
    g, path = log_gateway(gateway, upstream, tmp_path)
    assert rawhttp.exchange(g.port, request_bytes("GET", "/api/invalid")).status == 502
    e = json.loads(wait_lines(g, path, 1)[0])
    assert e["status"] == 502 and e["route"] == "api" and e["endpoint"] == upstream.address


def test_text_format(gateway, upstream, tmp_path):
    g, path = log_gateway(gateway, upstream, tmp_path, fmt="text")
    resp = rawhttp.exchange(g.port, request_bytes("GET", "/api/text",
                                                  headers=[("X-Request-Id", "txt-1")]))
    assert resp.status == 200
    line = wait_lines(g, path, 1)[0]
    assert "GET /api/text" in line and " 200 " in line and "txt-1" in line
    assert not line.lstrip().startswith("{")


def test_access_log_off(gateway, upstream):
    g = gateway(gw.config([gw.route("api", {"path_prefix": "/"}, "u")], {"u": gw.up(upstream)},
                          access_log={"path": "off"}))
    assert rawhttp.exchange(g.port, request_bytes("GET", "/x")).status == 200
    assert g.stop() == 0
    assert g.access_log_lines() == []


def test_stdout_log_is_flushed_before_exit(gateway, upstream):
    g = gateway(gw.config([gw.route("api", {"path_prefix": "/"}, "u")], {"u": gw.up(upstream)}))
    for i in range(3):
        assert rawhttp.exchange(g.port, request_bytes("GET", f"/flush/{i}")).status == 200
    assert g.stop() == 0
    entries = g.access_log_json()
    assert [e["path"] for e in entries] == [f"/flush/{i}" for i in range(3)]


def test_sigusr1_reopens_log_file(gateway, upstream, tmp_path):
    g, path = log_gateway(gateway, upstream, tmp_path)
    rawhttp.exchange(g.port, request_bytes("GET", "/api/before"))
    wait_lines(g, path, 1)
    os.rename(path, path + ".1")
    g.signal(signal.SIGUSR1)
    wait_until(lambda: os.path.exists(path), timeout=5, message="the log file to be reopened")
    rawhttp.exchange(g.port, request_bytes("GET", "/api/after"))
    lines = wait_lines(g, path, 1)
    assert json.loads(lines[0])["path"] == "/api/after"
    assert [json.loads(ln)["path"] for ln in g.access_log_lines(path + ".1")] == ["/api/before"]
