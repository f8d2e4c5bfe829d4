"""A route's `ip: {allow, deny}` (filters/ip_rules), over HTTP/1.1 and HTTP/2 (h2c): a refused
address gets 403 `forbidden` before auth and nothing reaches the upstream; deny wins; an allow
list denies the rest; behind trusted_proxies the rightmost untrusted X-Forwarded-For address is
the one checked. Clients come from several loopback addresses (127.0.0.0/8 is all local)."""
import json
import subprocess

import pytest

from support import gateway as gw

PROTOCOLS = {"http1": [], "h2c": ["--http2-prior-knowledge"]}


def fetch(g, path, source, protocol, headers=()):
    """curl from `source`: (status, body bytes)."""
    args = ["curl", "-sS", "--max-time", "10", "--interface", source, "-o", "-",
            "-w", "\n%{http_code} %{http_version}", *PROTOCOLS[protocol]]
    for h in headers:
        args += ["-H", h]
    out = subprocess.run(args + [f"http://127.0.0.1:{g.port}{path}"], capture_output=True,
                         timeout=20, check=True).stdout
    body, _, tail = out.rpartition(b"\n")
    status, version = tail.decode().split()
    assert version == ("2" if protocol == "h2c" else "1.1"), (protocol, version)
    return int(status), body


def assert_forbidden(status, body):
    assert status == 403, (status, body)
    assert json.loads(body)["error"]["code"] == "forbidden", body


@pytest.fixture(scope="module")
def env(module_gateway, module_upstreams):
    up = module_upstreams("ip-up")
    routes = [
        gw.route("deny-one", {"path_prefix": "/deny-one"}, "u",
                 ip={"deny": ["127.0.0.2/32"]}),
        gw.route("allow-list", {"path_prefix": "/allow-list"}, "u",
                 ip={"allow": ["127.0.0.0/30"], "deny": ["127.0.0.3"]}),
        gw.route("v6-only", {"path_prefix": "/v6-only"}, "u", ip={"allow": ["::/0"]}),
        # Refused before auth: no credential is asked for.
        gw.route("keyed", {"path_prefix": "/keyed"}, "u", auth=["keys"],
                 ip={"deny": ["127.0.0.4"]}),
        gw.route("open", {"path_prefix": "/open"}, "u"),
    ]
    cfg = gw.config(routes, {"u": gw.up(up)}, listener={"http2": True},
                    trusted_proxies=["127.0.0.5/32"],
                    auth_providers={"keys": {"type": "api_key"}},
                    consumers=[{"name": "alice", "api_keys": ["alice-key"]}])
    return module_gateway(cfg, name="ip"), up


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_deny_refuses_that_address_only(env, protocol):
    g, up = env
    before = up.count()
    assert_forbidden(*fetch(g, "/deny-one/x", "127.0.0.2", protocol))
    assert up.count() == before, "a denied request reached the upstream"
    status, _ = fetch(g, "/deny-one/x", "127.0.0.1", protocol)
    assert status == 200
    assert up.count() == before + 1


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_allow_list_denies_the_rest_and_deny_wins(env, protocol):
    g, up = env
    before = up.count()
    assert fetch(g, "/allow-list/x", "127.0.0.1", protocol)[0] == 200
    assert fetch(g, "/allow-list/x", "127.0.0.2", protocol)[0] == 200
    assert_forbidden(*fetch(g, "/allow-list/x", "127.0.0.3", protocol))  # in allow, but denied
    assert_forbidden(*fetch(g, "/allow-list/x", "127.0.0.9", protocol))  # outside allow
    assert up.count() == before + 2


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_an_ipv6_rule_never_admits_an_ipv4_client(env, protocol):
    g, up = env
    before = up.count()
    assert_forbidden(*fetch(g, "/v6-only/x", "127.0.0.1", protocol))
    assert up.count() == before


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_refused_before_auth(env, protocol):
    g, up = env
    before = up.count()
    assert_forbidden(*fetch(g, "/keyed/x", "127.0.0.4", protocol))  # 403, not 401
    assert fetch(g, "/keyed/x", "127.0.0.1", protocol)[0] == 401
    assert fetch(g, "/keyed/x", "127.0.0.1", protocol, ["X-Api-Key: alice-key"])[0] == 200
    assert up.count() == before + 1


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_behind_a_trusted_proxy_the_forwarded_client_is_checked(env, protocol):
    g, up = env
    before = up.count()
    # From the trusted proxy: the rightmost X-Forwarded-For entry that is not a trusted proxy.
    assert_forbidden(*fetch(g, "/deny-one/x", "127.0.0.5", protocol,
                            ["X-Forwarded-For: 127.0.0.2"]))
    assert_forbidden(*fetch(g, "/deny-one/x", "127.0.0.5", protocol,
                            ["X-Forwarded-For: 10.9.9.9, 127.0.0.2, 127.0.0.5"]))
    assert fetch(g, "/deny-one/x", "127.0.0.5", protocol,
                 ["X-Forwarded-For: 127.0.0.2, 10.9.9.9"])[0] == 200
    # From an untrusted peer, X-Forwarded-For is not believed: the peer is checked.
    assert_forbidden(*fetch(g, "/deny-one/x", "127.0.0.2", protocol,
                            ["X-Forwarded-For: 10.9.9.9"]))
    assert fetch(g, "/deny-one/x", "127.0.0.6", protocol, ["X-Forwarded-For: 127.0.0.2"])[0] \
        == 200
    assert up.count() == before + 2


def test_the_next_request_on_the_connection_after_a_refusal(env):
    """A refused request ends only itself: the same HTTP/1.1 connection goes on."""
    g, up = env
    before = up.count()
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "--interface", "127.0.0.2", "-o", "/dev/null",
         "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n",
         f"http://127.0.0.1:{g.port}/deny-one/a", f"http://127.0.0.1:{g.port}/open/b"],
        capture_output=True, timeout=20, check=True).stdout.decode().split("\n")
    assert out[0] == "403 1", out
    assert out[1] == "200 0", out  # served on the same connection
    assert up.count() == before + 1
