"""Shared by the Redis rate-limit suites (test_ratelimit_redis.py, test_ratelimit_sync.py):
the `redis` fixture, config builders, a keep-alive HTTP client, the RateLimit header parsers and
429 checks, and the helpers of the batched mode (`sync`).

Import the `redis` fixture into a test module to use it (`from support.redis_limits import
redis`). Everything talks to 127.0.0.1 only; every server is stopped by PID.
"""
import concurrent.futures
import http.client
import json
import re
import time

import pytest

from . import gateway as gw
from .redis_server import RedisFactory


# ----- fixtures ---------------------------------------------------------------------------------
@pytest.fixture
def redis(tmp_path_factory):
    """Factory: redis(password=None, start=True) -> a RedisServer on a free 127.0.0.1 port.

    Every server is stopped by PID (SIGCONT, then SIGKILL) when the test ends."""
    counter = [0]

    def tmpdir():
        counter[0] += 1
        return str(tmp_path_factory.mktemp(f"redis{counter[0]}"))

    factory = RedisFactory(tmpdir)
    yield factory
    factory.close()


# ----- config -----------------------------------------------------------------------------------
def yaml_text(cfg):
    """gw.to_yaml, with key_prefix always quoted (a plain `t1:` would end in a mapping colon)."""
    text = cfg if isinstance(cfg, str) else gw.to_yaml(cfg)

    def quote(m):
        v = m.group(2)
        return m.group(1) + (v if v.startswith('"') else json.dumps(v))
    return re.sub(r"^(\s*key_prefix: )(.*)$", quote, text, flags=re.M)


def redis_section(r, on_error="allow", timeout="50ms", prefix="t:", password=None):
    d = {"address": r.address, "timeout": timeout, "on_error": on_error, "key_prefix": prefix}
    if password is not None:
        d["password"] = password
    return d


def make_cfg(upstream, routes, redis_sec=None, workers=2, **top):
    cfg = gw.config(routes, {"u": gw.up(upstream)}, workers=workers,
                    access_log={"path": "off"}, **top)
    if redis_sec is not None:
        cfg["redis"] = redis_sec
    return yaml_text(cfg)


def limit(name, key, n, window, store="redis", **extra):
    d = {"name": name, "key": key, "limit": n, "window": window, "store": store}
    d.update(extra)
    return d


def client_route(name, prefix, rate_limit, **extra):
    """A public route on upstream `u` with the given rate_limit (one dict or a list)."""
    return gw.route(name, {"path_prefix": prefix}, "u", rate_limit=rate_limit, **extra)


API_PROVIDERS = {"keys": {"type": "api_key", "from": ["header:X-API-Key"]}}


# ----- HTTP -------------------------------------------------------------------------------------
class Resp:
    def __init__(self, status, headers, body, elapsed, sent):
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed
        self.sent = sent

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def header_all(self, name):
        return self.headers.get_all(name) or []

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return (f"<Resp {self.status} {self.elapsed * 1000:.0f}ms "
                f"{[(k, v) for k, v in self.headers.items()]!r} body={self.body[:300]!r}>")


class Client:
    """A keep-alive HTTP/1.1 client for one gateway; reconnects when the gateway closed."""

    def __init__(self, port, timeout=5.0):
        self.port = port
        self.timeout = timeout
        self.conn = None
        self.reconnects = 0

    def get(self, path="/", headers=None):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                       timeout=self.timeout)
            sent = time.monotonic()
            try:
                self.conn.request("GET", path, headers=dict(headers or {}))
                r = self.conn.getresponse()
                body = r.read()
            except (http.client.RemoteDisconnected, http.client.CannotSendRequest,
                    ConnectionResetError, BrokenPipeError):
                # Only a stale keep-alive connection is retried (once, on a new one).
                self.close()
                if attempt:
                    raise
                self.reconnects += 1
                continue
            resp = Resp(r.status, r.headers, body, time.monotonic() - sent, sent)
            if r.will_close:
                self.close()
            return resp

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def send(g, path="/", headers=None, timeout=5.0):
    """One request on a fresh connection."""
    c = Client(g.port, timeout)
    try:
        return c.get(path, headers)
    finally:
        c.close()


def parallel(fn, n, threads=16):
    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        return list(ex.map(fn, range(n)))


_SF_ITEM = re.compile(r'"([^"]*)"((?:\s*;\s*[A-Za-z0-9_*.-]+=[^;,]*)*)')


def sf_items(resp, name):
    """A RateLimit / RateLimit-Policy header as {policy: {param: int}} (in order)."""
    value = ", ".join(resp.header_all(name))
    out = {}
    for m in _SF_ITEM.finditer(value):
        params = {}
        for p in m.group(2).split(";"):
            p = p.strip()
            if not p:
                continue
            k, _, v = p.partition("=")
            try:
                params[k] = int(v)
            except ValueError:
                params[k] = v
        out[m.group(1)] = params
    return out


def remaining(resp, policy):
    items = sf_items(resp, "RateLimit")
    assert policy in items, f"no {policy!r} in RateLimit: {resp!r}"
    return items[policy]["r"]


def policy_of(resp, policy):
    items = sf_items(resp, "RateLimit-Policy")
    assert policy in items, f"no {policy!r} in RateLimit-Policy: {resp!r}"
    return items[policy]


def assert_error(resp, status, code, message=None):
    """A gateway error (SPEC §4): status, JSON body with code/message, the request id."""
    assert resp.status == status, resp
    assert (resp.header("Content-Type") or "").startswith("application/json"), resp
    err = resp.json()["error"]
    assert err["status"] == status and err["code"] == code, err
    if message is not None:
        assert err["message"] == message, err
    assert err["request_id"] and err["request_id"] == resp.header("X-Request-Id"), (err, resp)
    return err


def assert_rate_limited(resp, n, window, code="rate_limited"):
    what = "quota" if code == "quota_exceeded" else "rate limit"
    assert_error(resp, 429, code, f"{what} of {n} per {window} exceeded")
    ra = resp.header("Retry-After")
    assert ra is not None and ra.isdigit() and int(ra) >= 1, resp
    return int(ra)


def upstream_count(upstream, header, value):
    return sum(1 for rec in upstream.snapshot() if rec.header(header) == value)


# ----- batched mode (sync) -----------------------------------------------------------------
SYNC_LIMIT, SYNC_WINDOW = 100, 10          # (a) and (c): 100 per 10 s


def sync_cfg(upstream, r, sync, n=SYNC_LIMIT, window=SYNC_WINDOW, timeout="500ms"):
    # A long Redis timeout: a request that waited for Redis would show it.
    lim = limit("s", "header:X-Client", n, f"{window}s", algorithm="fixed_window", sync=sync)
    return make_cfg(upstream, [client_route("s", "/", lim)],
                    redis_section(r, timeout=timeout, prefix="sync:"))


def sync_fleet(gateway, cfg, n=3):
    gws = [gateway(cfg, name=f"sync{i}") for i in range(n)]
    # Every gateway has synced at least once (so each knows the fleet size) before a test.
    for g in gws:
        assert send(g, "/warm", {"X-Client": "warm-up"}).status == 200
    time.sleep(1.0)
    return gws


def ms(duration):
    return int(duration[:-2]) / 1000.0


def wait_window_room(window, need):
    """Sleeps, if needed, until at least `need` seconds remain in the current fixed window
    (aligned to the clock; Redis runs on this host). Returns the window's index."""
    into = time.time() % window
    if window - into < need + 0.3:
        time.sleep(window - into + 0.15)
    return int(time.time() // window)


def hammer(g, client, until, results, pause=0.0, stop=None):
    """Sends on one keep-alive connection until `until` (monotonic) or stop() is true."""
    c = Client(g.port)
    try:
        while time.monotonic() < until and not (stop and stop()):
            results.append(c.get("/h", {"X-Client": client}))
            if pause:
                time.sleep(pause)
    finally:
        c.close()


def redis_round_trips(r):
    """Commands the gateway sent Redis so far: its script calls and their set-up (INFO
    commandstats). Not total_commands_processed, which also counts what a script runs inside."""
    info = r.command("INFO", "commandstats")
    if isinstance(info, bytes):
        info = info.decode()
    return sum(int(calls) for name, calls in
               re.findall(r"^cmdstat_([a-z|]+):calls=(\d+)", info, re.M)
               if name in ("eval", "evalsha", "script|load", "script", "auth", "hello"))
