"""`dns: name:port` upstreams (issue #14): the name is resolved through `dns_resolvers` (here a
test resolver on 127.0.0.1 whose answers the tests change), again every `dns_refresh`, off the
workers. New answers move new requests within dns_refresh; addresses that vanish stop getting
requests; a resolver that goes silent keeps the last good answer; a name with no answer yet
gives 503 until it has one.

The two origins listen on 127.0.0.1 and 127.0.0.2 (both loopback) on one port, since an A record
carries no port.
"""
import http.server
import threading
import time

import pytest

from support import gateway as gw
from support import rawhttp
from support.dns_server import DnsServer
from support.rawhttp import request_bytes
from support.util import SLACK, assert_error, free_port, wait_until

NAME = "svc.portico.test"
REFRESH = 0.3


class Origin(http.server.ThreadingHTTPServer):
    """Answers every GET with its own address, so a test sees where a request went."""
    daemon_threads = True

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            body = self.server.server_address[0].encode()
            self.server.hits += 1
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    def __init__(self, host, port):
        super().__init__((host, port), Origin.Handler)
        self.hits = 0
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.shutdown()
        self.server_close()


@pytest.fixture
def env(gateway):
    dns = DnsServer()
    port = free_port()
    origins = {host: Origin(host, port) for host in ("127.0.0.1", "127.0.0.2")}
    dns.set(NAME, "127.0.0.1")
    cfg = gw.config([gw.route("r", {"path_prefix": "/"}, "svc")],
                    {"svc": {"dns": f"{NAME}:{port}", "dns_refresh": f"{int(REFRESH * 1000)}ms"}},
                    dns_resolvers=[dns.address])
    g = gateway(cfg)
    yield g, dns, origins, port
    for o in origins.values():
        o.stop()
    dns.stop()


def upstreams_json(g):
    status, body = g.admin("GET", "/admin/upstreams")
    assert status == 200, body
    return body


def get(g):
    return rawhttp.exchange(g.port, request_bytes("GET", "/"), timeout=3)


def where(g):
    resp = get(g)
    assert resp.status == 200, resp
    return resp.body.decode()


def test_requests_go_where_the_name_resolves(env):
    g, dns, origins, port = env
    assert {where(g) for _ in range(5)} == {"127.0.0.1"}
    assert origins["127.0.0.2"].hits == 0
    body = upstreams_json(g)
    assert list(body["svc"]["endpoints"]) == [f"127.0.0.1:{port}"]
    assert dns.questions(NAME), "the gateway never asked the configured resolver"


def test_a_changed_answer_moves_new_requests_within_dns_refresh(env):
    g, dns, origins, port = env
    assert where(g) == "127.0.0.1"
    dns.set(NAME, "127.0.0.2")
    changed = time.monotonic()
    wait_until(lambda: where(g) == "127.0.0.2", REFRESH + 1.0 * SLACK, interval=0.02,
               message="requests to move to the new address")
    assert time.monotonic() - changed <= REFRESH + 1.0 * SLACK
    before = origins["127.0.0.1"].hits
    assert {where(g) for _ in range(10)} == {"127.0.0.2"}
    assert origins["127.0.0.1"].hits == before  # the vanished address gets nothing new
    body = upstreams_json(g)
    assert list(body["svc"]["endpoints"]) == [f"127.0.0.2:{port}"]


def test_every_address_of_the_answer_takes_requests(env):
    g, dns, origins, port = env
    dns.set(NAME, "127.0.0.1", "127.0.0.2")
    wait_until(lambda: len(upstreams_json(g)["svc"]["endpoints"]) == 2,
               REFRESH + 1.0 * SLACK, message="both addresses to join")
    seen = [where(g) for _ in range(10)]
    assert seen.count("127.0.0.1") == 5 and seen.count("127.0.0.2") == 5, seen


def test_a_silent_resolver_keeps_the_last_good_answer(env):
    g, dns, origins, port = env
    assert where(g) == "127.0.0.1"
    dns.silent = True
    asked = len(dns.questions(NAME))
    wait_until(lambda: len(dns.questions(NAME)) > asked, 3 * REFRESH + 2 * SLACK,
               message="the gateway to ask again")
    time.sleep(0.5)
    assert {where(g) for _ in range(5)} == {"127.0.0.1"}
    dns.silent = False
    dns.set(NAME, "127.0.0.2")
    wait_until(lambda: where(g) == "127.0.0.2", 6 + 2 * SLACK, interval=0.05,
               message="the resolver's answers to count again")


def test_a_name_without_an_answer_gives_503_until_it_has_one(gateway):
    dns = DnsServer()
    port = free_port()
    origin = Origin("127.0.0.1", port)
    try:
        cfg = gw.config([gw.route("r", {"path_prefix": "/"}, "svc")],
                        {"svc": {"dns": f"late.portico.test:{port}", "dns_refresh": "300ms"}},
                        dns_resolvers=[dns.address])
        g = gateway(cfg)
        resp = get(g)
        assert_error(resp, 503, "unavailable")
        assert b"no healthy endpoint" in resp.body
        assert origin.hits == 0
        dns.set("late.portico.test", "127.0.0.1")
        wait_until(lambda: get(g).status == 200, 1.0 + 1.0 * SLACK,
                   interval=0.05, message="the name to resolve")
        assert origin.hits >= 1
        g.assert_healthy()
    finally:
        origin.stop()
        dns.stop()


def test_a_reload_keeps_the_answer_and_the_refresh(env):
    g, dns, origins, port = env
    assert where(g) == "127.0.0.1"
    g.reload()
    assert where(g) == "127.0.0.1"
    dns.set(NAME, "127.0.0.2")
    wait_until(lambda: where(g) == "127.0.0.2", REFRESH + 1.0 * SLACK, interval=0.02,
               message="requests to move after the reload")


# ----- config -------------------------------------------------------------------------------------
def test_validate_does_not_need_the_name_to_resolve(portico_bin, tmp_path):
    run, _, _ = gw.validate_upstream(portico_bin, tmp_path,
                                     {"dns": "nowhere.invalid:80", "dns_refresh": "5s"},
                                     dns_resolvers=["127.0.0.1", "[::1]:5353"])
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("upstream,top,says", [
    ({"dns": "svc.test:80", "endpoints": ["127.0.0.1:1"]}, {}, '"dns" cannot be used with'),
    ({"endpoints": ["127.0.0.1:1"], "dns_refresh": "1s"}, {}, '"dns_refresh" needs "dns"'),
    ({"dns": "svc.test"}, {}, "invalid endpoint"),
    ({"dns": "http://svc.test:80"}, {}, "without a scheme"),
    ({"dns": "svc.test:80", "dns_refresh": "10ms"}, {}, "at least 100ms"),
    ({"dns": "svc.test:80"}, {"dns_resolvers": ["resolver.local:53"]}, "dns_resolvers"),
    ({"dns": "svc.test:80"}, {"dns_resolvers": []}, "dns_resolvers"),
])
def test_validate_refuses(portico_bin, tmp_path, upstream, top, says):
    run, _, _ = gw.validate_upstream(portico_bin, tmp_path, upstream, **top)
    assert run.returncode != 0
    assert says in run.stderr + run.stdout, run.stderr
