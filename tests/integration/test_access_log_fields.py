"""Access log options (issue #13): the fields a line carries and their order, the consumer, the
upstream timing split (connect, first byte), and the text format with chosen fields."""
import json
import subprocess

from support import gateway as gw
from support import rawhttp
from support.rawhttp import request_bytes
from support.util import wait_until

ALL_FIELDS = ["time", "request_id", "trace_id", "client", "method", "path", "route", "upstream",
              "endpoint", "status", "bytes_in", "bytes_out", "duration_ms", "upstream_ms",
              "upstream_connect_ms", "upstream_first_byte_ms", "consumer"]
KEY = "alice-access-log-key"


def log_gateway(gateway, upstream, tmp_path, **log):
    path = str(tmp_path / "access.log")
    routes = [gw.route("api", {"path_prefix": "/api"}, "u", rewrite={"strip_prefix": True}),
              gw.route("keyed", {"path_prefix": "/keyed"}, "u", auth=["keys"])]
    cfg = gw.config(routes, {"u": gw.up(upstream)}, access_log={"path": path, **log},
                    auth_providers={"keys": {"type": "api_key", "from": ["header:X-API-Key"]}},
                    consumers=[{"name": "alice", "api_keys": [KEY]}])
    return gateway(cfg), path


def lines_of(g, path, n):
    return wait_until(lambda: (lambda ls: ls if len(ls) >= n else None)(g.access_log_lines(path)),
                      timeout=5, message=f"{n} access log lines")


def test_default_json_line_has_every_field_in_order(gateway, upstream, tmp_path):
    g, path = log_gateway(gateway, upstream, tmp_path)
    assert rawhttp.exchange(g.port, request_bytes("GET", "/api/x")).status == 200
    entry = json.loads(lines_of(g, path, 1)[0])
    assert list(entry) == ALL_FIELDS
    assert len(entry["trace_id"]) == 32 and int(entry["trace_id"], 16) != 0
    assert entry["consumer"] == "" and entry["route"] == "api"


def test_chosen_fields_in_the_chosen_order(gateway, upstream, tmp_path):
    chosen = ["status", "route", "consumer", "trace_id", "upstream_connect_ms"]
    g, path = log_gateway(gateway, upstream, tmp_path, fields=chosen)
    resp = rawhttp.exchange(g.port, request_bytes("GET", "/keyed/x", headers=[("X-API-Key", KEY)]))
    assert resp.status == 200
    assert rawhttp.exchange(g.port, request_bytes("GET", "/keyed/x")).status == 401
    first, second = (json.loads(line) for line in lines_of(g, path, 2))
    assert list(first) == chosen and list(second) == chosen
    assert first["status"] == 200 and first["route"] == "keyed" and first["consumer"] == "alice"
    assert second["status"] == 401 and second["consumer"] == ""
    assert first["trace_id"] != second["trace_id"]


def test_upstream_timing_split(gateway, upstream, tmp_path):
    g, path = log_gateway(gateway, upstream, tmp_path)
    assert rawhttp.exchange(g.port, request_bytes("GET", "/api/slow/250")).status == 200
    e = json.loads(lines_of(g, path, 1)[0])
    # A new connection: connecting takes a little, the answer the upstream's 250 ms.
    assert 0 <= e["upstream_connect_ms"] < 100, e
    assert 240 <= e["upstream_first_byte_ms"] < 5000, e
    assert abs(e["upstream_ms"] - (e["upstream_connect_ms"] + e["upstream_first_byte_ms"])) < 0.01
    assert e["upstream_ms"] <= e["duration_ms"], e


def test_no_upstream_no_upstream_timing(gateway, upstream, tmp_path):
    g, path = log_gateway(gateway, upstream, tmp_path)
    assert rawhttp.exchange(g.port, request_bytes("GET", "/nowhere")).status == 404
    e = json.loads(lines_of(g, path, 1)[0])
    assert e["route"] == "" and e["upstream"] == "" and e["endpoint"] == ""
    assert e["upstream_ms"] == e["upstream_connect_ms"] == e["upstream_first_byte_ms"] == 0


def test_text_format_with_chosen_fields(gateway, upstream, tmp_path):
    g, path = log_gateway(gateway, upstream, tmp_path, format="text",
                          fields=["method", "path", "status", "consumer", "route"])
    assert rawhttp.exchange(g.port, request_bytes("GET", "/api/t")).status == 200
    assert rawhttp.exchange(g.port, request_bytes("GET", "/nowhere")).status == 404
    lines = lines_of(g, path, 2)
    assert lines[0] == "GET /api/t 200 - api", lines
    assert lines[1] == "GET /nowhere 404 - -", lines


def test_classic_text_line_ends_with_the_trace_id(gateway, upstream, tmp_path):
    g, path = log_gateway(gateway, upstream, tmp_path, format="text")
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert rawhttp.exchange(g.port, request_bytes("GET", "/api/c", headers=[("traceparent", tp)])
                            ).status == 200
    line = lines_of(g, path, 1)[0]
    assert '"GET /api/c" 200' in line
    assert line.endswith(" 0af7651916cd43dd8448eb211c80319c"), line


def test_unknown_or_repeated_fields_are_refused_at_load(portico_bin, tmp_path):
    for fields, expected in ((["rout"], "route"), (["status", "status"], "listed twice")):
        cfg = gw.config([gw.route("r", {"path_prefix": "/"}, "echo")],
                        {"echo": {"builtin": "echo"}},
                        access_log={"path": "off", "fields": fields})
        text = gw.to_yaml(cfg).replace("@PORT@", "18080").replace("@ADMIN@", "19901")
        p = tmp_path / "bad.yaml"
        p.write_text(text)
        run = subprocess.run([portico_bin, "validate", "-c", str(p)], capture_output=True,
                             text=True, timeout=30)
        assert run.returncode != 0 and expected in run.stderr + run.stdout, run
