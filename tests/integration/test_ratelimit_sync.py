"""The batched Redis mode of rate limits (`store: redis` with `sync`, docs/rate-limiting.md,
"Batched mode"), end to end against real gateways and a real `redis-server`:

  1. one gateway, a steady client at 3x the limit: exactly the limit in the window, the 429s
     with their SPEC body, Retry-After and RateLimit headers
  2. traffic that moves from one gateway to another: the idle gateway's lease goes back to a
     standby lease and the other can use the rest of the window
  3. sliding_window across two gateways: the previous window weighs on the next one
  4. a gateway killed while it holds a lease: it drops out of the live set and its room is used
  5. Redis killed and restarted: each gateway admits its share meanwhile, never waits, logs one
     line each way, and its admissions reach Redis's counts afterwards; with traffic all through
     the recovery the window stays within the bound
  6. reloads from plain `store: redis` to `sync` and back; a changed interval keeps the counters;
     switching between per-request and batched Redis counters starts afresh, as documented
  7. what is kept in Redis: key_prefix, names, fields, time to live
  8. Redis round trips under load: about one script call per interval, not per request
  9. a route with a batched limit and another that refuses: the batched one is given back
 10. Redis down from the start under `on_error: deny`: the whole limit, no 503

Every test is named test_sync_* and checks what the upstream received against what the gateway
admitted. Windows are aligned to the clock (gateways, Redis and the tests share it), and a test
that needs a whole window waits for the next one to start.
"""
import math
import re
import signal
import socket
import threading
import time

import pytest

from support import gateway as gw
from support.redis_limits import (  # noqa: F401 - `redis` is a fixture
    Client, assert_rate_limited, client_route, limit, make_cfg, policy_of, redis,
    redis_section, remaining, send, sf_items, upstream_count, wait_window_room)
from support.util import SLACK, wait_until

SYNC = 0.1           # the `sync` of every test here, in seconds
HOST = socket.gethostname()


# ----- config -----------------------------------------------------------------------------------
def batched(name, n, window, algorithm="fixed_window", key="header:X-Client", sync="100ms"):
    return limit(name, key, n, f"{window}s", algorithm=algorithm, sync=sync)


def cfg_of(upstream, r, limits, prefix, timeout="100ms", extra_routes=()):
    """One route per (path prefix, limit): route name == limit name."""
    routes = [client_route(lim["name"], path, lim) for path, lim in limits]
    routes += list(extra_routes)
    return make_cfg(upstream, routes, redis_section(r, timeout=timeout, prefix=prefix))


# ----- Redis ------------------------------------------------------------------------------------
def members_key(prefix):
    return prefix + "sync:gateways"


def redis_now_us(r):
    sec, usec = r.command("TIME")
    return int(sec) * 1_000_000 + int(usec)


def gateway_id(r, prefix, g):
    """This gateway's id in the live set (`<host>-<pid>-<random>`)."""
    ids = [m for m in r.command("ZRANGE", members_key(prefix), 0, -1)
           if m.startswith(f"{HOST}-{g.pid}-")]
    assert len(ids) == 1, (g.pid, r.command("ZRANGE", members_key(prefix), 0, -1, "WITHSCORES"))
    return ids[0]


def wait_fleet(r, prefix, gws, timeout=5.0):
    """Until every gateway has synced (is in the live set); returns their ids, in order."""
    def all_in():
        live = r.command("ZRANGE", members_key(prefix), 0, -1) or []
        return all(any(m.startswith(f"{HOST}-{g.pid}-") for m in live) for g in gws)
    wait_until(all_in, timeout, message="every gateway in the live set")
    time.sleep(2 * SYNC)   # and knows the fleet's size from a sync that counted all of them
    return [gateway_id(r, prefix, g) for g in gws]


def batch_key(r, prefix, route, value, window_index):
    """The hash of one key's window: `<prefix><limit id>\\x1f<value>:b<window>`."""
    keys = [k for k in r.keys(prefix + "*")
            if k.startswith(f"{prefix}route:{route}\x1f")
            and k.endswith(f"\x1f{value}:b{window_index}")]
    return keys[0] if len(keys) == 1 else None


def hash_of(r, key):
    flat = r.command("HGETALL", key) or []
    return {flat[i]: int(flat[i + 1]) for i in range(0, len(flat), 2)}


def fleet_count(r, prefix, route, value, window_index):
    k = batch_key(r, prefix, route, value, window_index)
    return hash_of(r, k).get("n", 0) if k else 0


def evalsha_calls(r):
    info = r.command("INFO", "commandstats")
    return sum(int(c) for name, c in re.findall(r"^cmdstat_(evalsha|eval):calls=(\d+)", info,
                                                re.M))


# ----- traffic ----------------------------------------------------------------------------------
def pace(g, client, rate, until, path, out, stop=None):
    """`rate` requests per second on one keep-alive connection until `until` (monotonic)."""
    c = Client(g.port)
    t0 = time.monotonic()
    k = 0
    try:
        while not (stop and stop()):
            at = t0 + k / rate
            if at >= until:
                return
            time.sleep(max(0.0, at - time.monotonic()))
            out.append(c.get(path, {"X-Client": client}))
            k += 1
    finally:
        c.close()


def run_all(jobs, timeout=30.0):
    """Runs (fn, args) jobs in threads; re-raises the first exception of any."""
    errors = []

    def wrap(fn, args):
        try:
            fn(*args)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
    ts = [threading.Thread(target=wrap, args=job) for job in jobs]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout)
    if errors:
        raise errors[0]


def ok(results):
    return sum(1 for x in results if x.status == 200)


def statuses(results):
    out = {}
    for x in results:
        out[x.status] = out.get(x.status, 0) + 1
    return out


def next_window(window, need=None):
    """Waits, if needed, so that at least `need` s (default: all but 0.5 s) of the current window
    remain; returns (window index, its end as time.time())."""
    idx = wait_window_room(window, window - 0.5 if need is None else need)
    return idx, (idx + 1) * window


def until_wall(t_wall, margin=0.0):
    """The monotonic time of wall-clock time `t_wall - margin`."""
    return time.monotonic() + (t_wall - margin - time.time())


def trust_share(n, window, gateways):
    return math.ceil(n * SYNC / window / gateways)


def standby_share(n, window, gateways):
    """The most an idle key keeps reserved: a tenth of the gateway's share, at least the trust
    share."""
    return max(trust_share(n, window, gateways), math.ceil(n / (10 * gateways)))


def overshoot_bound(n, window, gateways):
    return n * SYNC / window + gateways


def kill_gateway(g):
    """SIGKILL by PID, as a crash; the fixture is told it was the test's doing."""
    g.stopped_by_test = True
    g.health_checked_by_test = True
    g.signal(signal.SIGKILL)
    g.proc.wait(timeout=10)


# =================================================================================================
# 1. One gateway, one key, a steady client at three times the limit
# =================================================================================================
def test_sync_single_gateway_exact_limit_and_headers(redis, gateway, upstream):
    LIMIT, WINDOW = 50, 5
    r = redis()
    g = gateway(cfg_of(upstream, r, [("/", batched("one", LIMIT, WINDOW))], "one:"))
    wait_fleet(r, "one:", [g])
    win, end = next_window(WINDOW)
    rate = 3.0 * LIMIT / WINDOW
    results = []
    pace(g, "steady", rate, until_wall(end, 0.3), "/steady", results)
    assert int(time.time() // WINDOW) == win, "the run left its window"

    admitted = [x for x in results if x.status == 200]
    refused = [x for x in results if x.status == 429]
    print(f"\nsingle gateway: sent {len(results)}, admitted {len(admitted)}, "
          f"statuses {statuses(results)}")
    assert len(admitted) + len(refused) == len(results), statuses(results)
    assert len(results) >= 2.5 * LIMIT, "the client fell behind"
    assert LIMIT <= len(admitted) <= LIMIT + 2, statuses(results)
    assert upstream_count(upstream, "X-Client", "steady") == len(admitted)

    last_ok = max(i for i, x in enumerate(results) if x.status == 200)
    for x in results:
        assert policy_of(x, "one") == {"q": LIMIT, "w": WINDOW}, x
        assert 1 <= sf_items(x, "RateLimit")["one"]["t"] <= WINDOW, x
    # What is left counts down as the window is used (the fleet's count as last heard, plus
    # what this gateway admitted since): from about the limit to 0.
    rs = [remaining(x, "one") for x in admitted]
    assert rs == sorted(rs, reverse=True), rs
    assert rs[0] >= LIMIT - 3 and rs[-1] <= 2, rs
    for i, x in enumerate(results):
        if x.status != 429:
            continue
        ra = assert_rate_limited(x, LIMIT, f"{WINDOW}s")
        assert remaining(x, "one") == 0, x
        if i < last_ok:
            # Refused before the limit was reached (the lease or the trust allowance was used
            # up): until the next sync.
            assert ra == 1, x
        else:
            # The window is used up: until it ends.
            left = end - (time.time() - (time.monotonic() - x.sent))
            assert abs(ra - math.ceil(left)) <= 1, (ra, left, x)
    assert sum(1 for x in results[last_ok + 1:] if x.status == 200) == 0
    # The fleet's count in Redis is what was admitted.
    wait_until(lambda: fleet_count(r, "one:", "one", "steady", win) == len(admitted), 2.0,
               message=f"n == {len(admitted)} in Redis")
    g.assert_healthy()


# =================================================================================================
# 2. Traffic moves from one gateway to another
# =================================================================================================
@pytest.mark.slow  # timing-heavy: release build only (make test deselects slow under ASan)
def test_sync_skewed_traffic_moves_between_gateways(redis, gateway, upstream):
    LIMIT, WINDOW, FIRST = 120, 6, 40
    r = redis()
    cfg = cfg_of(upstream, r, [("/", batched("skew", LIMIT, WINDOW))], "skew:")
    a, b = gateway(cfg, name="a"), gateway(cfg, name="b")
    id_a, id_b = wait_fleet(r, "skew:", [a, b])
    trust = trust_share(LIMIT, WINDOW, 2)
    win, end = next_window(WINDOW)

    # Gateway A alone, until it has admitted FIRST of the key.
    res_a = []
    pace(a, "skew", 60.0, time.monotonic() + 2.0, "/a", res_a, stop=lambda: ok(res_a) >= FIRST)
    admitted_a = ok(res_a)
    assert admitted_a == FIRST, statuses(res_a)
    key = batch_key(r, "skew:", "skew", "skew", win)
    assert key, r.keys()
    print(f"\nskew: A admitted {admitted_a} ({statuses(res_a)}); hash {hash_of(r, key)}")

    # Then only B. A's key goes idle: its lease shrinks to a standby one.
    res_b = []
    b_until = min(time.monotonic() + 2.5, until_wall(end, 0.4))
    t_b = time.monotonic()
    run_all([(pace, (b, "skew", 150.0, b_until, "/b", res_b))])
    assert int(time.time() // WINDOW) == win, "the run left its window"
    admitted_b = ok(res_b)
    ok_at = [x.sent - t_b for x in res_b if x.status == 200]
    first_room = ok_at[trust + 1] if len(ok_at) > trust + 1 else None
    h = hash_of(r, key)
    total = admitted_a + admitted_b
    print(f"skew: B admitted {admitted_b} of {len(res_b)} (room after "
          f"{first_room and round(first_room, 3)} s); total {total}; hash {h}")
    assert set(statuses(res_b)) <= {200, 429}, statuses(res_b)
    # A's idle lease went back; at most a standby lease stays reserved: a tenth of its share of
    # the limit, or the trust allowance if larger.
    standby = standby_share(LIMIT, WINDOW, 2)
    assert h.get("l:" + id_a, 0) == 0, h
    assert h.get("s:" + id_a, 0) <= standby, h
    # B could use (almost) all the rest, and the fleet stays within the bound.
    assert admitted_b >= LIMIT - admitted_a - standby - 2, (admitted_a, admitted_b)
    assert total <= LIMIT + overshoot_bound(LIMIT, WINDOW, 2), total
    assert upstream_count(upstream, "X-Client", "skew") == total
    # B's headers count what A admitted once B has synced, and end at A's standby lease.
    b_ok = [x for x in res_b if x.status == 200]
    assert min(remaining(x, "skew") for x in b_ok) <= standby + 3, b_ok[-1]
    assert any(remaining(x, "skew") <= LIMIT - admitted_a for x in b_ok), b_ok[:5]
    # Refused while the fleet still had room (B's lease used up, A's not yet given back):
    # Retry-After 1, until B's next sync. Once the window is used up: until it ends.
    last_ok = max(i for i, x in enumerate(res_b) if x.status == 200)
    for i, x in enumerate(res_b):
        if x.status != 429:
            continue
        ra = assert_rate_limited(x, LIMIT, f"{WINDOW}s")
        if i < last_ok:
            assert ra == 1, x
    wait_until(lambda: fleet_count(r, "skew:", "skew", "skew", win) == total, 2.0,
               message=f"n == {total} in Redis")
    for g in (a, b):
        g.assert_healthy()


# =================================================================================================
# 3. sliding_window across two gateways
# =================================================================================================
@pytest.mark.slow  # timing-heavy: release build only (make test deselects slow under ASan)
def test_sync_sliding_window_two_gateways(redis, gateway, upstream):
    LIMIT, WINDOW, EARLY = 60, 4, 1.0
    r = redis()
    cfg = cfg_of(upstream, r, [("/", batched("sw", LIMIT, WINDOW, "sliding_window"))], "sw:")
    gws = [gateway(cfg, name=f"sw{i}") for i in range(2)]
    wait_fleet(r, "sw:", gws)
    bound = overshoot_bound(LIMIT, WINDOW, 2)
    win, end = next_window(WINDOW)

    # A whole window at three times the limit, spread over both gateways.
    first = [[], []]
    rate = 3.0 * LIMIT / WINDOW / 2
    run_all([(pace, (g, "slide", rate, until_wall(end, 0.25), f"/w1/{j}", first[j]))
             for j, g in enumerate(gws)])
    assert int(time.time() // WINDOW) == win, "the run left its window"
    in_first = sum(ok(rs) for rs in first)
    print(f"\nsliding: window 1: admitted {in_first} ({[ok(rs) for rs in first]}) of "
          f"{sum(len(rs) for rs in first)}")
    assert LIMIT - 3 <= in_first <= LIMIT + bound, in_first
    assert all(ok(rs) > 0 for rs in first), [ok(rs) for rs in first]

    # The next window, from its start for EARLY s: the previous one still weighs
    # (WINDOW - t) / WINDOW of its count, so about LIMIT * t / WINDOW pass by time t.
    time.sleep(max(0.0, end - time.time() + 0.05))
    second = [[], []]
    run_all([(pace, (g, "slide", 60.0, until_wall(end + EARLY), f"/w2/{j}", second[j]))
             for j, g in enumerate(gws)])
    flat = [x for rs in second for x in rs]
    offset = time.time() - time.monotonic()
    t_last = max(x.sent + offset for x in flat) - end
    in_early = sum(ok(rs) for rs in second)
    allowed_by_then = LIMIT - in_first * (WINDOW - t_last) / WINDOW
    print(f"sliding: window 2, first {t_last:.2f} s: admitted {in_early} "
          f"({[ok(rs) for rs in second]}) of {len(flat)}; the limit allows "
          f"{allowed_by_then:.1f} by then")
    for x in flat:
        assert x.status in (200, 429), x
        assert policy_of(x, "sw") == {"q": LIMIT, "w": WINDOW}, x
        if x.status == 429:
            assert_rate_limited(x, LIMIT, f"{WINDOW}s")
    assert in_early < LIMIT / 2, in_early              # a fixed window would admit LIMIT here
    assert in_early <= allowed_by_then + bound, (in_early, allowed_by_then)
    assert in_early >= allowed_by_then - LIMIT * 0.3 / WINDOW - bound, (in_early, allowed_by_then)
    assert upstream_count(upstream, "X-Client", "slide") == in_first + in_early
    for g in gws:
        g.assert_healthy()


# =================================================================================================
# 4. A gateway that dies while holding a lease
# =================================================================================================
def test_sync_dead_gateway_drops_out_and_its_lease_is_reused(redis, gateway, upstream):
    LIMIT, WINDOW, TIMEOUT = 100, 8, "100ms"
    r = redis()
    cfg = cfg_of(upstream, r, [("/", batched("dead", LIMIT, WINDOW))], "dead:", timeout=TIMEOUT)
    a, b = gateway(cfg, name="a"), gateway(cfg, name="b")
    id_a, id_b = wait_fleet(r, "dead:", [a, b])
    horizon_us = (3 * 100 + 100) * 1000
    win, end = next_window(WINDOW, 5.5)

    # Both use the key: each holds a lease on it. A is still busy when it is killed.
    res = [[], []]
    killed = threading.Event()

    def busy_a():
        c = Client(a.port, timeout=2.0)
        k = 0
        t0 = time.monotonic()
        try:
            while not killed.is_set():
                time.sleep(max(0.0, t0 + k / 25.0 - time.monotonic()))
                try:
                    res[0].append(c.get("/a", {"X-Client": "dead"}))
                except Exception:  # noqa: BLE001 - A was killed under it
                    if killed.is_set():
                        return
                    raise
                k += 1
        finally:
            c.close()
    ta = threading.Thread(target=busy_a)
    ta.start()
    try:
        pace(b, "dead", 25.0, time.monotonic() + 1.2, "/b", res[1])
        key = batch_key(r, "dead:", "dead", "dead", win)
        assert key, r.keys()
        h = hash_of(r, key)
        print(f"\ndead gateway: before the kill: A {ok(res[0])}, B {ok(res[1])} admitted; "
              f"hash {h}")
        assert h.get("l:" + id_a, 0) > 0 and h.get("l:" + id_b, 0) > 0, h
        killed.set()
        kill_gateway(a)
    finally:
        killed.set()
        ta.join(10)
    t_kill = time.monotonic()
    # The live set stops counting A: its score (last sync + horizon) passes, and the next sync
    # of B removes it.
    score = r.command("ZSCORE", members_key("dead:"), id_a)
    assert score is None or int(float(score)) <= redis_now_us(r) + horizon_us + 50_000, score

    def a_gone():
        s = r.command("ZSCORE", members_key("dead:"), id_a)
        return s is None or int(float(s)) <= redis_now_us(r)
    wait_until(a_gone, 2.0, interval=0.02, message="A's score to expire")
    t_expired = time.monotonic() - t_kill
    wait_until(lambda: r.command("ZCARD", members_key("dead:")) == 1, 2.0,
               message="A removed from the live set")
    t_removed = time.monotonic() - t_kill
    assert r.command("ZRANGE", members_key("dead:"), 0, -1) == [id_b]

    # B alone: it gets the room A's lease held.
    res_b = []
    pace(b, "dead", 150.0, min(time.monotonic() + 1.0, until_wall(end, 0.3)), "/b", res_b)
    assert int(time.time() // WINDOW) == win, "the run left its window"
    a_total = sum(1 for rec in upstream.snapshot() if rec.path == "/a")
    b_total = ok(res[1]) + ok(res_b)
    assert b_total == sum(1 for rec in upstream.snapshot() if rec.path == "/b")
    assert ok(res[0]) <= a_total <= ok(res[0]) + 1, (a_total, ok(res[0]))  # one maybe cut off
    wait_until(lambda: fleet_count(r, "dead:", "dead", "dead", win) >= LIMIT - 1, 2.0,
               message="the fleet's count to reach the limit")
    time.sleep(3 * SYNC)
    n = fleet_count(r, "dead:", "dead", "dead", win)
    h = hash_of(r, key)
    a_unsynced = a_total + b_total - n
    print(f"dead gateway: A expired after {t_expired:.2f} s, removed after {t_removed:.2f} s; "
          f"B then admitted {ok(res_b)} of {len(res_b)}; A {a_total} ({a_unsynced} never "
          f"synced), B {b_total}; n {n}; hash {h}")
    assert "l:" + id_a not in h and "s:" + id_a not in h, h
    assert LIMIT - 1 <= n <= LIMIT + overshoot_bound(LIMIT, WINDOW, 2), n
    assert 0 <= a_unsynced <= 25 * 2 * SYNC + 2, a_unsynced   # what A admitted since its last sync
    assert set(statuses(res_b)) <= {200, 429}, statuses(res_b)
    b.assert_healthy()


# =================================================================================================
# 5. Redis killed during a run, then restarted on the same port
# =================================================================================================
def test_sync_redis_killed_and_restarted(redis, gateway, upstream):
    LIMIT, WINDOW, N = 40, 8, 2
    r = redis()
    cfg = cfg_of(upstream, r, [("/", batched("rk", LIMIT, WINDOW))], "rk:", timeout="50ms")
    gws = [gateway(cfg, name=f"rk{i}", log_level="info") for i in range(N)]
    wait_fleet(r, "rk:", gws)
    share = math.ceil(LIMIT / N)
    win, end = next_window(WINDOW, 6.5)

    r.kill()
    t_kill = time.monotonic()
    res = [[] for _ in gws]
    run_all([(pace, (g, "outage", 100.0, time.monotonic() + 1.5, f"/o/{j}", res[j]))
             for j, g in enumerate(gws)])
    flat = [x for rs in res for x in rs]
    lat = sorted(x.elapsed for x in flat)
    per_gw = [ok(rs) for rs in res]
    print(f"\nRedis down: per gateway {per_gw} admitted of {[len(rs) for rs in res]}, "
          f"latency max {lat[-1] * 1000:.1f} ms")
    assert set(statuses(flat)) <= {200, 429}, statuses(flat)
    assert lat[-1] < 0.25 * SLACK, f"a request waited for Redis: {lat[-5:]}"
    # Each gateway admits its own share of the window, no more; hammered, all of it.
    assert per_gw == [share] * N, (per_gw, share)
    for x in flat:
        if x.status == 429:
            assert_rate_limited(x, LIMIT, f"{WINDOW}s")
    assert upstream_count(upstream, "X-Client", "outage") == sum(per_gw)

    r.start()
    t_restart = time.monotonic() - t_kill
    for g in gws:
        wait_until(lambda: "answers again" in g.stderr(), 5.0, interval=0.05,
                   message=f"'answers again' in {g.name}'s log")
    t_back = time.monotonic() - t_kill
    # The admissions made while Redis was down reach the fleet's count.
    total = upstream_count(upstream, "X-Client", "outage")
    wait_until(lambda: fleet_count(r, "rk:", "rk", "outage", win) == total, 3.0,
               message=f"n == {total} after the restart")
    # Once every gateway has synced again, the fleet knows the limit is used up: each gateway
    # admits at most its standby lease (the trust allowance), the rest is refused.
    time.sleep(3 * SYNC)
    after = [[send(g, "/after", {"X-Client": "outage"}) for _ in range(3)] for g in gws]
    assert int(time.time() // WINDOW) == win, "the run left its window"
    print(f"Redis back: restarted after {t_restart:.2f} s, answering after {t_back:.2f} s; "
          f"n {fleet_count(r, 'rk:', 'rk', 'outage', win)}; afterwards "
          f"{[statuses(rs) for rs in after]}")
    trust = trust_share(LIMIT, WINDOW, N)
    for rs in after:
        assert ok(rs) <= trust, rs
        for x in rs:
            if x.status != 200:
                assert_rate_limited(x, LIMIT, f"{WINDOW}s")
    total += sum(ok(rs) for rs in after)
    assert upstream_count(upstream, "X-Client", "outage") == total
    wait_until(lambda: fleet_count(r, "rk:", "rk", "outage", win) == total, 2.0,
               message=f"n == {total}")
    for g in gws:
        err = g.stderr()
        down = [ln for ln in err.splitlines() if "did not answer the rate limit sync" in ln]
        back = [ln for ln in err.splitlines() if "answers again" in ln]
        print(f"{g.name}: {down} {back}")
        assert len(down) == 1, err[-3000:]
        assert len(back) == 1, err[-3000:]
        g.assert_healthy()


@pytest.mark.slow  # timing-heavy: release build only (make test deselects slow under ASan)
def test_sync_no_overshoot_when_redis_answers_again(redis, gateway, upstream):
    """Traffic on every gateway all through an outage and the recovery: the window's total stays
    within the limit plus the documented bound."""
    LIMIT, WINDOW, N = 40, 8, 2
    r = redis()
    cfg = cfg_of(upstream, r, [("/", batched("rb", LIMIT, WINDOW))], "rb:", timeout="50ms")
    gws = [gateway(cfg, name=f"rb{i}", log_level="info") for i in range(N)]
    wait_fleet(r, "rb:", gws)
    win, end = next_window(WINDOW, 6.5)
    r.kill()
    res = [[] for _ in gws]
    recovered = [None]

    def stop():
        return recovered[0] is not None and time.monotonic() > recovered[0] + 1.0

    senders = [threading.Thread(target=pace, args=(g, "through", 200.0, until_wall(end, 0.3),
                                                   f"/t/{j}", res[j], stop))
               for j, g in enumerate(gws)]
    for t in senders:
        t.start()
    try:
        # From this thread: redis-server dies with the thread that started it (PDEATHSIG).
        time.sleep(1.0)
        r.start()
        wait_until(lambda: all("answers again" in g.stderr() for g in gws), 5.0, interval=0.02,
                   message="'answers again' in every gateway's log")
        recovered[0] = time.monotonic()
    finally:
        if recovered[0] is None:
            recovered[0] = 0.0
        for t in senders:
            t.join(15)
    assert int(time.time() // WINDOW) == win, "the run left its window"
    assert recovered[0] is not None
    flat = [x for rs in res for x in rs]
    total = sum(ok(rs) for rs in res)
    offset = time.time() - time.monotonic()
    after = [sum(1 for x in rs if x.status == 200 and x.sent > recovered[0] - 0.5)
             for rs in res]
    bound = overshoot_bound(LIMIT, WINDOW, N)
    print(f"\nthrough the outage: admitted {total} ({[ok(rs) for rs in res]}) of {len(flat)}; "
          f"around and after the recovery {after}; limit {LIMIT} + bound {bound}; "
          f"n {fleet_count(r, 'rb:', 'rb', 'through', win)}; recovery at "
          f"{recovered[0] + offset - win * WINDOW:.2f} s into the window")
    assert set(statuses(flat)) <= {200, 429}, statuses(flat)
    assert upstream_count(upstream, "X-Client", "through") == total
    assert total <= LIMIT + bound, (total, [ok(rs) for rs in res], after)
    for g in gws:
        g.assert_healthy()


# =================================================================================================
# 6. Reload: plain `store: redis` -> `sync` -> plain
# =================================================================================================
def reload_cfg(upstream, r, prefix, sync, version, n=5, window="1m"):
    """A batched (or, with sync=None, plain `store: redis`) fixed window on /rl, and a marker
    route /marker<version> that tells when this config is in force."""
    extra = {} if sync is None else {"sync": sync}
    lim = limit("rl", "header:X-Client", n, window, algorithm="fixed_window", **extra)
    marker = gw.route(f"marker{version}", {"path_prefix": f"/marker{version}"}, "u")
    return cfg_of(upstream, r, [("/rl", lim)], prefix, extra_routes=[marker])


def reload_and_wait(g, cfg, version):
    status, body = g.reload(cfg)
    assert status == 200, body
    wait_until(lambda: send(g, f"/marker{version}").status == 200, 5.0,
               message=f"config {version} in force")


def use_up(g, upstream, client, n, path="/rl"):
    """Admits n for `client` (a batched key refuses before its first sync: retried), then
    checks the next one is refused."""
    got = []
    deadline = time.monotonic() + 3.0
    while ok(got) < n and time.monotonic() < deadline:
        got.append(send(g, path, {"X-Client": client}))
        if got[-1].status == 429:
            assert got[-1].header("Retry-After") == "1", got[-1]   # until the next sync
            time.sleep(0.03)
    assert ok(got) == n, statuses(got)
    time.sleep(3 * SYNC)
    for _ in range(3):
        assert_rate_limited(send(g, path, {"X-Client": client}), n, "1m")
    assert upstream_count(upstream, "X-Client", client) == n
    return got


def test_sync_reload_between_plain_and_batched(redis, gateway, upstream):
    """Plain `store: redis` -> `sync: 100ms` -> plain -> sync, by reload: limiting works after
    each (a fresh client each time: exactly the limit, then 429)."""
    r = redis()
    wait_window_room(60, 8.0)
    g = gateway(reload_cfg(upstream, r, "rel:", None, 0))
    use_up(g, upstream, "plain-1", 5)
    assert not any(":b" in k for k in r.keys()), r.keys()     # no batch hash yet

    reload_and_wait(g, reload_cfg(upstream, r, "rel:", "100ms", 1), 1)
    got = use_up(g, upstream, "batched-1", 5)
    win = int(time.time() // 60)
    assert fleet_count(r, "rel:", "rl", "batched-1", win) == 5, r.keys()
    print(f"\nreload: batched after the reload: {[x.status for x in got]}")

    reload_and_wait(g, reload_cfg(upstream, r, "rel:", None, 2), 2)
    use_up(g, upstream, "plain-2", 5)
    # Without batched limits the sync thread has nothing to do (not in the doc: printed only).
    members = members_key("rel:")
    s1 = r.command("ZSCORE", members, gateway_id(r, "rel:", g))
    time.sleep(4 * SYNC)
    s2 = r.command("ZSCORE", members, gateway_id(r, "rel:", g))
    print(f"reload: back to plain: live-set score {'renewed' if s1 != s2 else 'not renewed'}")

    reload_and_wait(g, reload_cfg(upstream, r, "rel:", "100ms", 3), 3)
    use_up(g, upstream, "batched-2", 5)
    status, body = g.admin("GET", "/readyz")
    assert status == 200, body
    g.assert_healthy()


@pytest.mark.parametrize("sync", [None, "100ms"], ids=["per-request", "batched"])
def test_sync_reload_to_another_redis(redis, gateway, upstream, sync):
    """A reload that names another Redis moves the connection (per worker, or the sync
    thread's) there: the old one gets nothing more, the new one counts from zero."""
    r1, r2 = redis(), redis()
    wait_window_room(60, 6.0)
    g = gateway(reload_cfg(upstream, r1, "mv:", sync, 0))
    use_up(g, upstream, "before", 5)
    keys_before = r1.keys()
    reload_and_wait(g, reload_cfg(upstream, r2, "mv:", sync, 1), 1)
    use_up(g, upstream, "after", 5)
    assert any("after" in k for k in r2.keys()), r2.keys()
    assert not any("before" in k for k in r2.keys()), r2.keys()
    assert not any("after" in k for k in r1.keys()), r1.keys()
    assert [k for k in r1.keys() if "before" in k] == [k for k in keys_before if "before" in k]
    g.assert_healthy()


def test_sync_reload_changing_only_the_interval_keeps_counters(redis, gateway, upstream):
    """`sync` 100ms -> 50ms: the same limit (the doc's list of what makes a limit new does not
    name `sync`), so its counters go on."""
    r = redis()
    wait_window_room(60, 6.0)
    g = gateway(reload_cfg(upstream, r, "ri:", "100ms", 0))
    use_up(g, upstream, "c", 5)
    reload_and_wait(g, reload_cfg(upstream, r, "ri:", "50ms", 1), 1)
    again = [send(g, "/rl", {"X-Client": "c"}) for _ in range(3)]
    time.sleep(3 * 0.05)
    again += [send(g, "/rl", {"X-Client": "c"}) for _ in range(3)]
    for x in again:
        assert_rate_limited(x, 5, "1m")
    assert upstream_count(upstream, "X-Client", "c") == 5
    use_up(g, upstream, "fresh", 5)      # and a new key works at the new interval
    g.assert_healthy()


def test_sync_reload_switching_to_batched_starts_afresh(redis, gateway, upstream):
    """As docs/rate-limiting.md "Reloads" says: per-request and batched Redis counters are kept
    apart, so switching a limit between them starts it afresh (changing only the interval
    keeps it: test_sync_reload_changing_only_the_interval_keeps_counters)."""
    r = redis()
    wait_window_room(60, 6.0)
    g = gateway(reload_cfg(upstream, r, "rk2:", None, 0))
    use_up(g, upstream, "c", 5)
    reload_and_wait(g, reload_cfg(upstream, r, "rk2:", "100ms", 1), 1)
    after = []
    for _ in range(4):
        after.append(send(g, "/rl", {"X-Client": "c"}))
        time.sleep(1.5 * SYNC)
    print(f"\nplain -> sync, a client that had used the limit up: {statuses(after)}")
    g.assert_healthy()
    assert [x.status for x in after] == [200] * 4, statuses(after)
    assert upstream_count(upstream, "X-Client", "c") == 5 + 4


# =================================================================================================
# 7. What is kept in Redis
# =================================================================================================
def test_sync_redis_keys_prefix_fields_and_ttl(redis, gateway, upstream):
    WINDOW = 3
    r = redis()
    g = gateway(cfg_of(upstream, r, [("/f", batched("fw", 30, WINDOW)),
                                     ("/s", batched("sw", 30, WINDOW, "sliding_window"))],
                       "hyg:", timeout="100ms"))
    (gid,) = wait_fleet(r, "hyg:", [g])
    win, end = next_window(WINDOW, 2.0)
    for _ in range(3):   # an interval apart: before its first sync a key admits only 1 here
        for path in ("/f", "/s"):
            x = send(g, path, {"X-Client": "key-1"})
            assert x.status == 200, x
        time.sleep(1.5 * SYNC)
    value = "key-1"
    wait_until(lambda: fleet_count(r, "hyg:", "fw", value, win) == 3
               and fleet_count(r, "hyg:", "sw", value, win) == 3, 2.0,
               message="both hashes with n == 3")
    now = time.time()
    keys = r.keys()
    fw, sw = batch_key(r, "hyg:", "fw", value, win), batch_key(r, "hyg:", "sw", value, win)
    assert fw and sw, keys
    ttl = {k: r.command("PTTL", k) for k in keys}
    print(f"\nkeys: {ttl}")
    assert all(k.startswith("hyg:") for k in keys), keys
    assert sorted(keys) == sorted([members_key("hyg:"), fw, sw]), keys
    # The limit id and the key's value, joined by \x1f, then the window number.
    for k, name in ((fw, "fw"), (sw, "sw")):
        assert k.startswith(f"hyg:route:{name}\x1f{name}\x1f"), k
        assert k.endswith(f"\x1f{value}:b{win}"), k
        assert r.command("TYPE", k) == "hash", k
        h = hash_of(r, k)
        assert set(h) <= {"n", "l:" + gid, "s:" + gid}, h
        assert h["n"] == 3, h
        # This gateway's lease, or once the key went idle for an interval, its standby lease
        # (at most the trust allowance, here 1).
        assert ("l:" + gid in h) != ("s:" + gid in h), h
        assert h.get("s:" + gid, 0) <= standby_share(30, WINDOW, 1), h
    # Each expires on its own: a fixed window's at its end (plus a little), a sliding window's
    # one window later, since it weighs on the next one.
    left_ms = (end - now) * 1000
    assert 0 < ttl[fw] <= WINDOW * 1000 + 2000, ttl[fw]
    assert ttl[fw] >= left_ms - 200, (ttl[fw], left_ms)
    assert 0 < ttl[sw] <= 2 * WINDOW * 1000 + 2000, ttl[sw]
    assert ttl[sw] >= left_ms + WINDOW * 1000 - 200, (ttl[sw], left_ms)
    # The live set: a sorted set, with a time to live, this gateway's score ahead of Redis's
    # clock by at most its horizon (3 intervals + timeout).
    members = members_key("hyg:")
    assert r.command("TYPE", members) == "zset"
    assert ttl[members] > 0, ttl[members]
    score = int(float(r.command("ZSCORE", members, gid)))
    now_us = redis_now_us(r)
    assert now_us < score <= now_us + (3 * 100 + 100) * 1000 + 20_000, (score, now_us)
    # The fixed window's hash is gone soon after its window ends.
    wait_until(lambda: r.command("EXISTS", fw) == 0, end - time.time() + 2.5, interval=0.1,
               message="the fixed window's hash to expire")
    assert time.time() >= end, "expired before its window ended"
    g.assert_healthy()


# =================================================================================================
# 8. Redis round trips under load
# =================================================================================================
def test_sync_round_trips_per_request_under_load(redis, gateway, upstream):
    REQUESTS, KEYS, THREADS = 2000, 30, 4
    r = redis()
    g = gateway(cfg_of(upstream, r, [("/", batched("load", 1000, 10))], "load:"))
    wait_fleet(r, "load:", [g])
    wait_window_room(10, 4.0)
    before = evalsha_calls(r)
    results = [[] for _ in range(THREADS)]

    def run(j):
        c = Client(g.port)
        try:
            for i in range(j, REQUESTS, THREADS):
                results[j].append(c.get(f"/l/{i}", {"X-Client": f"key-{i % KEYS}"}))
        finally:
            c.close()
    t0 = time.monotonic()
    run_all([(run, (j,)) for j in range(THREADS)])
    elapsed = time.monotonic() - t0
    calls = evalsha_calls(r) - before
    flat = [x for rs in results for x in rs]
    intervals = elapsed / SYNC
    print(f"\nround trips: {len(flat)} requests over {KEYS} keys in {elapsed:.2f} s "
          f"({statuses(flat)}): {calls} EVALSHA, {intervals:.0f} intervals, "
          f"{calls / len(flat):.4f} per request")
    assert len(flat) == REQUESTS
    assert set(statuses(flat)) <= {200, 429}, statuses(flat)
    # 1000 per key: all are admitted but the ones a key gets before its first lease comes back
    # (the trust share, ceil(1000 * SYNC / 10) = 10, covers that long only at a slower pace): the
    # faster the clients, the more a key sees in its first interval and the Redis round trip.
    per_key_rate = REQUESTS / KEYS / elapsed
    pre_sync = math.ceil(per_key_rate * (2 * SYNC + 0.05)) - math.ceil(1000 * SYNC / 10)
    assert ok(flat) >= REQUESTS - KEYS * max(3, pre_sync), (statuses(flat), elapsed)
    assert upstream.count() == ok(flat)
    # One script call per interval (30 keys fit one call), not one per request.
    assert calls <= 1.3 * intervals + 3, (calls, intervals)
    assert calls / len(flat) < 0.05, calls
    g.assert_healthy()


# =================================================================================================
# 9. Several limits on a route: the batched one gives back what another refused
# =================================================================================================
@pytest.mark.parametrize("narrow_store", ["local", "redis"])
def test_sync_refusing_limit_gives_back_the_batched_one(redis, gateway, upstream, narrow_store):
    WIDE, NARROW = 100, 3
    r = redis()
    lims = [batched("wide", WIDE, 10), limit("narrow", "header:X-Client", NARROW, "1h",
                                             store=narrow_store)]
    g = gateway(make_cfg(upstream, [client_route("multi", "/", lims)],
                         redis_section(r, timeout="100ms", prefix="multi:")))
    wait_fleet(r, "multi:", [g])
    win = wait_window_room(10, 4.0)
    # The batched limit may refuse before a sync (its lease or trust allowance used up:
    # Retry-After 1); those are retried. What the narrow limit decides is kept.
    got, wide_refused = [], 0
    deadline = time.monotonic() + 4.0
    while len(got) < 10 and time.monotonic() < deadline:
        x = send(g, "/m", {"X-Client": "m"})
        if x.status == 429 and x.json()["error"]["message"] == f"rate limit of {WIDE} per 10s " \
                "exceeded":
            assert x.header("Retry-After") == "1", x
            wide_refused += 1
            time.sleep(0.03)
            continue
        got.append(x)
    print(f"\nmulti ({narrow_store}): {[x.status for x in got]} ({wide_refused} refused by "
          f"the batched limit before a sync); {[x.header('RateLimit') for x in got]}")
    assert [x.status for x in got] == [200] * NARROW + [429] * (10 - NARROW), got
    for x in got[NARROW:]:
        assert_rate_limited(x, NARROW, "1h")
        # The batched limit reports the request given back: as after the last admitted one.
        assert abs(remaining(x, "wide") - remaining(got[NARROW - 1], "wide")) <= 1, x
    wait_until(lambda: fleet_count(r, "multi:", "multi", "m", win) == NARROW, 2.0,
               message=f"n == {NARROW} for the batched limit")
    time.sleep(3 * SYNC)
    assert fleet_count(r, "multi:", "multi", "m", win) == NARROW
    assert upstream_count(upstream, "X-Client", "m") == NARROW
    g.assert_healthy()


# =================================================================================================
# 10. Redis down from the start, under on_error: deny
# =================================================================================================
def test_sync_redis_down_at_start_ignores_on_error(redis, gateway, upstream):
    """A gateway that never synced counts itself alone: the whole limit, per window, no more;
    `on_error: deny` does not apply to batched limits (no 503). Once Redis is up, what it
    admitted is in the fleet's count."""
    LIMIT, WINDOW = 10, 5
    r = redis(start=False)
    g = gateway(make_cfg(upstream, [client_route("down", "/", batched("down", LIMIT, WINDOW))],
                         redis_section(r, on_error="deny", timeout="50ms", prefix="down:")),
                log_level="info")
    wait_until(lambda: "did not answer the rate limit sync" in g.stderr(), 3.0,
               message="the sync failure logged")
    win, end = next_window(WINDOW, 3.5)
    got = []
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        got.append(send(g, "/d", {"X-Client": "d"}))
        time.sleep(0.01)
    print(f"\nRedis down from the start: {statuses(got)}")
    assert set(statuses(got)) <= {200, 429}, statuses(got)   # no 503: on_error is not used
    assert ok(got) == LIMIT, statuses(got)
    for x in got:
        if x.status == 429:
            assert_rate_limited(x, LIMIT, f"{WINDOW}s")
    assert upstream_count(upstream, "X-Client", "d") == LIMIT

    r.start()
    wait_until(lambda: "answers again" in g.stderr(), 5.0, interval=0.05,
               message="'answers again' in the log")
    wait_until(lambda: fleet_count(r, "down:", "down", "d", win) == LIMIT, 2.0,
               message=f"n == {LIMIT} once Redis is up")
    assert int(time.time() // WINDOW) == win, "the run left its window"
    down = [ln for ln in g.stderr().splitlines() if "did not answer the rate limit sync" in ln]
    assert len(down) == 1, down
    g.assert_healthy()
