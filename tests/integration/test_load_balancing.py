"""Load balancing (SPEC §3 `upstreams`, §8): endpoint weights, smooth weighted round robin,
least_request (power of two choices), weighted random, consistent_hash (Maglev) on ip, consumer,
header or cookie, its client-IP fallback and stability across workers and reloads, and the
config errors `portico validate` reports.

Which endpoint served a request: every endpoint is its own recording upstream on its own port,
named; its echo answers with X-Upstream-Name, and its own request count is cross-checked."""
import collections
import http.client
import subprocess
import threading
import time

import pytest

from support import gateway as gw
from support.upstream import Upstream


# ----- helpers ------------------------------------------------------------------------------------
class Client:
    """One keep-alive connection to the gateway, optionally from another loopback address."""

    def __init__(self, port, source_ip=None, timeout=10.0):
        src = (source_ip, 0) if source_ip else None
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                               source_address=src)

    def get(self, path, headers=None):
        """The name of the endpoint that answered (the request must succeed)."""
        self.conn.request("GET", path, headers=headers or {})
        r = self.conn.getresponse()
        body = r.read()
        assert r.status == 200, (path, headers, r.status, body[:300])
        name = r.getheader("X-Upstream-Name")
        assert name, (path, r.getheaders())
        return name

    def close(self):
        self.conn.close()


def once(port, path, headers=None, source_ip=None):
    """One request on a connection of its own."""
    c = Client(port, source_ip)
    try:
        return c.get(path, headers)
    finally:
        c.close()


def sequence(g, path, n, headers=None):
    c = Client(g.port)
    try:
        return [c.get(f"{path}/{i}", headers) for i in range(n)]
    finally:
        c.close()


def ep(u, weight):
    return {"address": u.address, "weight": weight}


def counts(ups):
    return {u.name: u.count() for u in ups}


def delta(ups, before):
    return {u.name: u.count() - before[u.name] for u in ups}


def windows(seq, size):
    return [collections.Counter(seq[i:i + size]) for i in range(len(seq) - size + 1)]


SOURCE_IPS = [f"127.0.0.{i}" for i in range(2, 42)]  # loopback addresses other than 127.0.0.1


# ----- round robin --------------------------------------------------------------------------------
@pytest.fixture
def rr_env(gateway, upstreams):
    a, b, c = upstreams("a"), upstreams("b"), upstreams("c")
    ups = {
        "w31": gw.up(ep(a, 3), b.address, load_balancing="round_robin"),  # b: default weight 1
        "w511": gw.up(ep(a, 5), ep(b, 1), ep(c, 1), load_balancing="round_robin"),
        "equal": gw.up(a, b, c, load_balancing="round_robin"),
        "zero": gw.up(ep(a, 1), ep(b, 0), ep(c, 1), load_balancing="round_robin"),
        "default": gw.up(a, b),  # round_robin is the default
    }
    routes = [gw.route(n, {"path_prefix": f"/{n}"}, n) for n in ups]
    g = gateway(gw.config(routes, ups, workers=1))
    return g, [a, b, c]


def test_round_robin_weights_3_1_exact_in_every_window_of_4(rr_env):
    g, ups = rr_env
    before = counts(ups)
    seq = sequence(g, "/w31", 40)
    assert collections.Counter(seq) == {"a": 30, "b": 10}, seq
    for i, w in enumerate(windows(seq, 4)):
        assert w == {"a": 3, "b": 1}, (i, seq)
    assert delta(ups, before) == {"a": 30, "b": 10, "c": 0}


def test_round_robin_is_smooth_with_weights_5_1_1(rr_env):
    """NGINX's smooth WRR: 5/1/1 in every 7, and the light endpoints are never back to back
    (a plain WRR would send a,a,a,a,a,b,c)."""
    g, ups = rr_env
    before = counts(ups)
    seq = sequence(g, "/w511", 35)
    for i, w in enumerate(windows(seq, 7)):
        assert w == {"a": 5, "b": 1, "c": 1}, (i, seq)
    for i in range(len(seq) - 1):
        assert seq[i] == "a" or seq[i + 1] == "a", (i, seq)
    assert delta(ups, before) == {"a": 25, "b": 5, "c": 5}


@pytest.mark.parametrize("path", ["/equal", "/default"])
def test_round_robin_equal_weights_is_plain_rotation(rr_env, path):
    g, ups = rr_env
    names = ["a", "b", "c"] if path == "/equal" else ["a", "b"]
    n = 10 * len(names)
    before = counts(ups)
    seq = sequence(g, path, n)
    assert sorted(seq[:len(names)]) == names, seq
    assert all(seq[i] == seq[i % len(names)] for i in range(n)), seq
    assert delta(ups, before) == {u.name: (10 if u.name in names else 0) for u in ups}


def test_round_robin_weight_zero_gets_no_traffic(rr_env):
    g, ups = rr_env
    before = counts(ups)
    seq = sequence(g, "/zero", 30)
    assert "b" not in seq, seq
    for i, w in enumerate(windows(seq, 2)):
        assert w == {"a": 1, "c": 1}, (i, seq)
    assert delta(ups, before) == {"a": 15, "b": 0, "c": 15}


# ----- least request ------------------------------------------------------------------------------
class SlowUpstream(Upstream):
    """Holds every request `hold` seconds before answering."""

    def __init__(self, name, hold):
        self.hold = hold
        super().__init__(name)

    def _echo(self, sock, rec, keep):
        if self.stopping.wait(self.hold):
            return False
        return super()._echo(sock, rec, keep)


@pytest.fixture
def slow_upstream():
    u = SlowUpstream("slow", hold=1.0)
    yield u
    u.stop()


def test_least_request_avoids_the_endpoint_holding_requests(gateway, upstreams, slow_upstream):
    """60 requests, one every 15 ms, while the slow endpoint holds each of its own for 1 s: its
    in-flight count keeps growing, the fast one's stays near 0, so the fast one gets most.
    (Round robin would give 30/30; P2C even with repeated picks about 75% fast.)"""
    fast, slow = upstreams("fast"), slow_upstream
    ups = {"lr": gw.up(fast, slow, load_balancing="least_request")}
    g = gateway(gw.config([gw.route("lr", {"path_prefix": "/"}, "lr")], ups, workers=1))
    n = 60
    results = [None] * n

    def one(i):
        try:
            results[i] = once(g.port, f"/lr/{i}")
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = repr(e)

    threads = []
    for i in range(n):
        t = threading.Thread(target=one, args=(i,), daemon=True)
        t.start()
        threads.append(t)
        time.sleep(0.015)
    for t in threads:
        t.join(timeout=15)
    got = collections.Counter(results)
    assert set(got) <= {"fast", "slow"}, results
    assert got["fast"] + got["slow"] == n
    assert got["slow"] <= 24, f"the slow endpoint got {got['slow']} of {n}: {results}"
    assert (fast.count(), slow.count()) == (got["fast"], got["slow"])


# ----- random -------------------------------------------------------------------------------------
def test_random_follows_weights_and_skips_weight_zero(gateway, upstreams):
    light, heavy, off = upstreams("light"), upstreams("heavy"), upstreams("off")
    ups = {"rnd": gw.up(ep(light, 1), ep(heavy, 3), ep(off, 0), load_balancing="random")}
    g = gateway(gw.config([gw.route("rnd", {"path_prefix": "/"}, "rnd")], ups, workers=1))
    seq = sequence(g, "/rnd", 400)
    got = collections.Counter(seq)
    assert got["off"] == 0 and off.count() == 0, got
    assert got["light"] + got["heavy"] == 400, got
    assert 240 <= got["heavy"] <= 360, got
    assert (light.count(), heavy.count()) == (got["light"], got["heavy"])
    # Not a round robin in disguise: aligned windows of 4 are not all exactly 3/1.
    aligned = [collections.Counter(seq[i:i + 4]) for i in range(0, 400, 4)]
    assert any(w != {"heavy": 3, "light": 1} for w in aligned), seq


# ----- consistent hash: header key, workers, reloads ----------------------------------------------
def _hash_cfg(eps, extra=False):
    ups = {"h": gw.up(*eps, load_balancing="consistent_hash", hash_on="header:X-User-Id")}
    routes = [gw.route("h", {"path_prefix": "/h"}, "h")]
    if extra:  # a change that touches nothing of upstream "h"
        ups["other"] = gw.up(eps[0])
        routes.append(gw.route("other", {"path_prefix": "/other"}, "other"))
    return gw.config(routes, ups, workers=2)


def _map(g, keys, conns=1, source_ips=None):
    """key -> endpoint, the keys spread over `conns` keep-alive connections (fresh ones)."""
    clients = [Client(g.port, source_ips[i] if source_ips else None) for i in range(conns)]
    try:
        return {k: clients[i % conns].get(f"/h/{i}", {"X-User-Id": k})
                for i, k in enumerate(keys)}
    finally:
        for c in clients:
            c.close()


def test_consistent_hash_header_stable_across_workers_and_reloads(gateway, upstreams):
    eps = [upstreams(f"e{i}") for i in range(5)]
    g = gateway(_hash_cfg(eps))
    keys = [f"user-{i}" for i in range(600)]

    first = _map(g, keys)
    per = collections.Counter(first.values())
    assert set(per) == {u.name for u in eps}, per
    assert all(60 <= v <= 180 for v in per.values()), per  # 120 each on average
    assert {u.name: u.count() for u in eps} == dict(per)

    # Every worker, many connections from other source addresses, keys in another order.
    again = _map(g, list(reversed(keys)), conns=12, source_ips=SOURCE_IPS)
    assert again == first, [k for k in keys if again[k] != first[k]][:20]

    # A reload that changes nothing for this upstream keeps every key where it was.
    code, body = g.reload(_hash_cfg(eps, extra=True))
    assert code == 200, body
    after_noop = _map(g, keys, conns=4)
    assert after_noop == first, [k for k in keys if after_noop[k] != first[k]][:20]

    # Remove e2 (one of five): e2 gets nothing more, and of the keys whose endpoint is still
    # there at most 25% move (Maglev: about 1/N disruption).
    code, body = g.reload(_hash_cfg([u for u in eps if u.name != "e2"]))
    assert code == 200, body
    e2_before = eps[2].count()
    after = _map(g, keys, conns=4)
    assert eps[2].count() == e2_before
    assert "e2" not in set(after.values())
    kept = [k for k in keys if first[k] != "e2"]
    moved = [k for k in kept if after[k] != first[k]]
    assert len(moved) <= len(kept) // 4, f"{len(moved)} of {len(kept)} keys moved: {moved[:20]}"
    # The displaced keys spread over the remaining endpoints, not all onto one.
    displaced = collections.Counter(after[k] for k in keys if first[k] == "e2")
    assert len(displaced) >= 2, displaced


# ----- consistent hash: cookie, ip, consumer, fallbacks (one shared gateway) ----------------------
CONSUMERS = [{"name": f"c{i}", "api_keys": [f"key-{i}-one", f"key-{i}-two"]} for i in range(12)]


@pytest.fixture(scope="module")
def hash_env(module_gateway, module_upstreams):
    eps = [module_upstreams(f"e{i}") for i in range(5)]

    def ch(**kw):
        return gw.up(*eps, load_balancing="consistent_hash", **kw)

    ups = {"hdr": ch(hash_on="header:X-User-Id"), "ck": ch(hash_on="cookie:session"),
           "ip": ch(), "ipx": ch(hash_on="ip"), "cons": ch(hash_on="consumer")}
    routes = [gw.route(n, {"path_prefix": f"/{n}"}, n) for n in ("hdr", "ck", "ip", "ipx")]
    routes += [gw.route("cons", {"path_prefix": "/cons"}, "cons", auth=["keys"]),
               gw.route("anon", {"path_prefix": "/anon"}, "cons")]
    providers = {"keys": {"type": "api_key", "from": ["header:X-API-Key"]}}
    g = module_gateway(gw.config(routes, ups, workers=2, auth_providers=providers,
                                 consumers=CONSUMERS))
    return g, eps


def test_consistent_hash_cookie_key(hash_env):
    g, _ = hash_env
    seen = {}
    for i in range(60):
        cookie = {"Cookie": f"theme=dark; session=s-{i}; lang=en"}
        first = once(g.port, "/ck/x", cookie)
        # The same session from another address, the cookie alone in its header.
        assert once(g.port, "/ck/y", {"Cookie": f"session=s-{i}"}, SOURCE_IPS[i % 40]) == first
        seen[i] = first
    assert len(set(seen.values())) >= 3, seen


@pytest.mark.parametrize("path", ["/ip", "/ipx"], ids=["default", "explicit"])
def test_consistent_hash_on_client_ip(hash_env, path):
    g, _ = hash_env
    # From 127.0.0.1: one endpoint, whatever the headers and cookies say.
    local = {once(g.port, f"{path}/{i}", {"X-User-Id": f"u{i}", "Cookie": f"session=s{i}"})
             for i in range(15)}
    assert len(local) == 1, local
    by_ip = {ip: once(g.port, f"{path}/a", source_ip=ip) for ip in SOURCE_IPS}
    for ip in SOURCE_IPS:
        assert once(g.port, f"{path}/b", {"X-User-Id": ip}, ip) == by_ip[ip], ip
    assert len(set(by_ip.values())) >= 3, by_ip


@pytest.mark.parametrize("path,headers", [
    ("/hdr", {}),
    ("/hdr", {"X-User-Idx": "u1", "Cookie": "X-User-Id=u1"}),
    ("/ck", {}),
    ("/ck", {"Cookie": "sessionx=s1; other=session"}),
    ("/anon", {}),
], ids=["no-header", "other-header", "no-cookie", "other-cookie", "no-consumer"])
def test_consistent_hash_missing_key_falls_back_to_client_ip(hash_env, path, headers):
    g, _ = hash_env
    local = {once(g.port, f"{path}/{i}", headers) for i in range(15)}
    assert len(local) == 1, f"requests from 127.0.0.1 without the key went to {local}"
    # The fallback key is the address, not a constant: other addresses spread, each stable.
    by_ip = {ip: once(g.port, f"{path}/a", headers, ip) for ip in SOURCE_IPS}
    for ip in SOURCE_IPS[::4]:
        assert once(g.port, f"{path}/b", headers, ip) == by_ip[ip], ip
    assert len(set(by_ip.values())) >= 3, by_ip


def test_consistent_hash_on_consumer(hash_env):
    """The key is the consumer, not its API key and not the address: both keys of a consumer,
    from different addresses, land on the same endpoint."""
    g, eps = hash_env
    before = counts(eps)
    by_consumer = {}
    for i, c in enumerate(CONSUMERS):
        k1, k2 = c["api_keys"]
        e1 = once(g.port, "/cons/1", {"X-API-Key": k1})
        e2 = once(g.port, "/cons/2", {"X-API-Key": k2}, SOURCE_IPS[i])
        e3 = once(g.port, "/cons/3", {"X-API-Key": k1}, SOURCE_IPS[-1 - i])
        assert e1 == e2 == e3, (c["name"], e1, e2, e3)
        by_consumer[c["name"]] = e1
    assert len(set(by_consumer.values())) >= 2, by_consumer
    assert sum(delta(eps, before).values()) == 3 * len(CONSUMERS)


# ----- config validation --------------------------------------------------------------------------
def _validate(portico_bin, tmp_path, upstream):
    cfg = gw.config([gw.route("r", {"path_prefix": "/"}, "svc")], {"svc": upstream})
    text = gw.to_yaml(cfg).replace("@PORT@", "18080").replace("@ADMIN@", "19901")
    p = tmp_path / "portico.yaml"
    p.write_text(text)
    run = subprocess.run([portico_bin, "validate", "-c", str(p)], capture_output=True, text=True,
                         timeout=20, cwd=str(tmp_path))
    return run, text


A, B, C = "127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"


@pytest.mark.parametrize("upstream", [
    {"endpoints": [A, {"address": B, "weight": 0}, {"address": C, "weight": 1000}]},
    {"endpoints": [{"address": A}, B], "load_balancing": "round_robin"},
    {"endpoints": [{"address": A, "weight": 2}, B], "load_balancing": "least_request"},
    {"endpoints": [{"address": A, "weight": 0}, {"address": B, "weight": 5}],
     "load_balancing": "random"},
    {"endpoints": [A, B], "load_balancing": "consistent_hash"},
    {"endpoints": [A, B], "load_balancing": "consistent_hash", "hash_on": "ip"},
    {"endpoints": [A, B], "load_balancing": "consistent_hash", "hash_on": "consumer"},
    {"endpoints": [A, B], "load_balancing": "consistent_hash", "hash_on": "header:X-User-Id"},
    {"endpoints": [A, B], "load_balancing": "consistent_hash", "hash_on": "cookie:session"},
], ids=["weights", "object-default-weight", "least_request", "random", "ch-default", "ch-ip",
        "ch-consumer", "ch-header", "ch-cookie"])
def test_validate_accepts(portico_bin, tmp_path, upstream):
    run, text = _validate(portico_bin, tmp_path, upstream)
    assert run.returncode == 0, run.stdout + run.stderr + "\n" + text
    assert run.stdout.strip() == "ok"


@pytest.mark.parametrize("upstream,word", [
    ({"endpoints": [A, B], "hash_on": "ip"}, "hash_on"),
    ({"endpoints": [A, B], "load_balancing": "round_robin", "hash_on": "ip"}, "hash_on"),
    ({"endpoints": [A, B], "load_balancing": "least_request", "hash_on": "header:X-A"}, "hash_on"),
    ({"endpoints": [A, B], "load_balancing": "random", "hash_on": "cookie:s"}, "hash_on"),
    ({"endpoints": [A, B], "load_balancing": "consistent_hash", "hash_on": "query:id"}, "hash_on"),
    ({"endpoints": [A, B], "load_balancing": "consistent_hash", "hash_on": "header:"}, "hash_on"),
    ({"endpoints": [A, B], "load_balancing": "consistent_hash", "hash_on": "bogus"}, "hash_on"),
    ({"endpoints": [A, B], "load_balancing": "fastest"}, "load_balancing"),
    ({"endpoints": [{"address": A, "weight": -1}, B]}, "weight"),
    ({"endpoints": [{"address": A, "weight": 1001}, B]}, "weight"),
    ({"endpoints": [{"address": A, "weight": "heavy"}, B]}, "weight"),
    ({"endpoints": [{"address": A, "weight": 2.5}, B]}, "weight"),
    ({"endpoints": [{"address": A, "weight": 0}, {"address": B, "weight": 0}]}, "weight"),
    ({"endpoints": [{"address": A, "weight": 0}], "load_balancing": "random"}, "weight"),
    ({"endpoints": [{"weight": 2}, B]}, "address"),
    ({"endpoints": [{"address": A, "wieght": 2}, B]}, "wieght"),
], ids=["hash_on-default-lb", "hash_on-rr", "hash_on-lr", "hash_on-random", "hash_on-query",
        "hash_on-empty-header", "hash_on-bogus", "lb-unknown", "weight-negative", "weight-1001",
        "weight-text", "weight-fraction", "weights-all-zero", "weight-only-zero",
        "no-address", "unknown-key"])
def test_validate_refuses(portico_bin, tmp_path, upstream, word):
    run, text = _validate(portico_bin, tmp_path, upstream)
    out = run.stdout + run.stderr
    assert run.returncode != 0, f"validate accepted it: {out}\n{text}"
    assert "not supported" not in out, f"refused only because the feature is missing: {out}"
    assert word.lower() in out.lower(), f"the error does not name {word}: {out}"
