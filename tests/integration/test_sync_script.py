"""The batched mode's Redis script (src/ratelimit/sync_script.hpp), run by hand on a real
`redis-server`: the lease arithmetic the fleet's accuracy rests on, case by case.

The script is read from the header, so these tests check the text the gateway sends.
"""
import pathlib
import re

import pytest

from support.redis_server import RedisServer

SCRIPT_HEADER = pathlib.Path(__file__).resolve().parents[2] / "src/ratelimit/sync_script.hpp"
MEMBERS = "p:sync:gateways"
HORIZON_US = 2_000_000


@pytest.fixture(scope="module")
def script():
    text = SCRIPT_HEADER.read_text()
    m = re.search(r'R"lua\((.*)\)lua"', text, re.S)
    assert m, "no script in sync_script.hpp"
    return m.group(1)


@pytest.fixture
def r(tmp_path):
    server = RedisServer(str(tmp_path))
    yield server
    server.close()


def sync(r, script, gateway, items, horizon_us=HORIZON_US):
    """items: (key, op, delta, limit, weight_ppm=0, prev=None, ttl_ms=60000, standby=0).
    Returns (live gateways, [(count, previous count, room, lease)])."""
    keys, args = [MEMBERS], [gateway, str(horizon_us)]
    for item in items:
        key, op, delta, limit, *rest = item
        weight, prev, ttl, standby = (rest + [0, None, 60000, 0][len(rest):])[:4]
        keys += [key, prev or key]
        args += [op, str(delta), str(limit), str(weight), str(ttl), str(standby)]
    out = r.command("EVAL", script, str(len(keys)), *keys, *args)
    assert len(out) == 1 + 4 * len(items), out
    return out[0], [tuple(out[1 + 4 * i: 5 + 4 * i]) for i in range(len(items))]


def test_a_lone_gateway_leases_all_that_is_left(r, script):
    live, [(count, _, room, lease)] = sync(r, script, "a", [("k", "u", 10, 100)])
    assert (live, count, room, lease) == (1, 10, 90, 90)
    assert int(r.command("HGET", "k", "l:a")) == 90


def test_holders_split_the_room_and_never_lease_more_than_it(r, script):
    sync(r, script, "a", [("k", "u", 10, 100)])             # a holds 90
    _, [(_, _, room_b, lease_b)] = sync(r, script, "b", [("k", "u", 0, 100)])
    assert (room_b, lease_b) == (0, 0)                      # all of it is a's
    _, [(_, _, room_a, lease_a)] = sync(r, script, "a", [("k", "u", 30, 100)])
    assert (room_a, lease_a) == (60, 30)                    # b now holds a (zero) lease too
    _, [(_, _, room_b, lease_b)] = sync(r, script, "b", [("k", "u", 0, 100)])
    assert (room_b, lease_b) == (30, 15)
    leases = sum(int(r.command("HGET", "k", f"l:{g}")) for g in "ab")
    count = int(r.command("HGET", "k", "n"))
    assert count + leases <= 100


def test_the_leases_of_a_gateway_that_stopped_syncing_are_ignored(r, script):
    sync(r, script, "dead", [("k", "u", 5, 100)], horizon_us=1)  # gone a microsecond later
    live, [(count, _, room, lease)] = sync(r, script, "a", [("k", "u", 0, 100)])
    assert live == 1
    assert (count, room, lease) == (5, 95, 95)
    assert r.command("HEXISTS", "k", "l:dead") == 0
    assert r.command("ZSCORE", MEMBERS, "dead") is None


def test_an_idle_gateway_keeps_a_standby_lease_that_still_counts(r, script):
    sync(r, script, "a", [("k", "u", 10, 100)])             # a holds 90
    _, [(_, _, _, standby)] = sync(r, script, "a", [("k", "r", 0, 100, 0, None, 60000, 4)])
    assert standby == 4
    assert r.command("HEXISTS", "k", "l:a") == 0
    assert int(r.command("HGET", "k", "s:a")) == 4
    # Another gateway gets the rest, less the standby lease, and is the only holder.
    _, [(_, _, room, lease)] = sync(r, script, "b", [("k", "u", 0, 100)])
    assert (room, lease) == (86, 86)
    # Back in use, a's standby lease turns into a lease again.
    _, [(_, _, room, lease)] = sync(r, script, "a", [("k", "u", 4, 100)])
    assert (room, lease) == (100 - 14 - 86, 0)
    assert r.command("HEXISTS", "k", "s:a") == 0


def test_the_standby_lease_is_never_more_than_the_lease(r, script):
    sync(r, script, "a", [("k", "u", 98, 100)])             # a holds 2
    _, [(_, _, _, standby)] = sync(r, script, "a", [("k", "r", 0, 100, 0, None, 60000, 10)])
    assert standby == 2


def test_the_previous_window_weighs_by_its_weight_rounded_up(r, script):
    sync(r, script, "a", [("prev", "a", 50, 100)])
    _, [(count, before, room, lease)] = sync(
        r, script, "a", [("cur", "u", 10, 100, 250_001, "prev")])
    # 50 * 0.250001 = 12.5, rounded up: 13
    assert (count, before, room, lease) == (10, 50, 100 - 10 - 13, 77)


def test_only_add_touches_no_lease(r, script):
    _, [(count, _, room, lease)] = sync(r, script, "a", [("k", "a", 7, 100)])
    assert (count, room, lease) == (7, 0, 0)
    assert r.command("HEXISTS", "k", "l:a") == 0


def test_counts_can_be_taken_back(r, script):
    """A request counted and then refused by another limit is subtracted (delta < 0)."""
    sync(r, script, "a", [("k", "u", 3, 100)])
    _, [(count, _, _, _)] = sync(r, script, "a", [("k", "u", -1, 100)])
    assert count == 2


def test_keys_and_the_members_set_expire(r, script):
    sync(r, script, "a", [("k", "u", 1, 100, 0, None, 5000)])
    assert 0 < r.command("PTTL", "k") <= 5000
    assert 0 < r.command("PTTL", MEMBERS) <= 86_400_000


def test_a_batch_of_many_keys_is_one_call(r, script):
    items = [(f"k{i}", "u", i, 1000) for i in range(256)]
    live, answers = sync(r, script, "a", items)
    assert live == 1
    assert [a[0] for a in answers] == list(range(256))
    assert all(a[3] == 1000 - a[0] for a in answers)
