"""WebSocket proxying: an HTTP/1.1 `Upgrade: websocket` request is routed and authenticated like
any other; when the upstream answers 101 the connection becomes a two-way byte tunnel (frames
relayed as they come), closed after the listener's idle_timeout without traffic, and closed on
one side when the other side closes. A non-101 answer goes to the client as a normal response.

The clients are Python's `websockets` 10.4 (asyncio API) and raw sockets; the upstream is a real
`websockets` server (support/ws.py) that records every handshake, or a raw-socket fake that
answers 101 and echoes bytes where exact bytes on the wire matter.
"""
import asyncio
import hashlib
import os
import socket
import struct
import time

import pytest
import websockets
import websockets.exceptions

from support import gateway as gw
from support import jwt
from support import rawhttp
from support.rawhttp import RawConn, request_bytes
from support.util import (SLACK, assert_error, free_port, pattern_chunks, pattern_sha256,
                          proc_status_kib, wait_until)
from support.ws import SUBPROTOCOL, RawUpgradeUpstream, WsUpstream, accept_key

SECRET = "portico-ws-test-secret-0123456789-abcdef"
ISSUER = "https://idp.test/"
ALICE_KEY = "k-alice-ws-123"
BOB_KEY = "k-bob-ws-456"
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="   # RFC 6455's sample key
MiB = 1024 * 1024

OPEN = 10.0 * SLACK    # handshake through the gateway
STEP = 5.0 * SLACK     # one echo / one close


# ----- fixtures ----------------------------------------------------------------------------------
def ws_config(wsup, plain, raw, dead_port, limits=None, **top):
    def r(name, prefix, upstream, auth="public", **kw):
        return gw.route(name, {"path_prefix": prefix}, upstream, auth=auth, **kw)

    routes = [
        r("ws", "/ws", "wsup"),
        r("wsauth", "/wsauth", "wsup", auth=["keys", "jwt"]),
        r("wsjwt", "/wsjwt", "wsup", auth=["jwt"]),
        r("plain", "/plain", "plain"),
        r("raw", "/raw", "raw"),
        r("dead", "/dead", "dead"),
    ]
    upstreams = {
        "wsup": gw.up(wsup),
        "plain": gw.up(plain),
        "raw": gw.up(raw),
        "dead": gw.up(f"127.0.0.1:{dead_port}", timeouts={"connect": "1s"}),
    }
    providers = {
        "keys": {"type": "api_key", "from": ["header:X-API-Key"]},
        "jwt": {"type": "jwt", "algorithms": ["HS256"], "secret": SECRET, "issuer": ISSUER,
                "audiences": ["api"], "leeway": "0s", "require_exp": True,
                "token_from": ["header:Authorization:Bearer", "query:token"],
                "forward_claims": {"sub": "X-User-Id"}},
    }
    consumers = [
        {"name": "alice", "groups": ["admins"], "api_keys": [ALICE_KEY],
         "jwt_subjects": ["alice"]},
        {"name": "bob", "groups": ["users"], "api_keys": [BOB_KEY]},
    ]
    top.setdefault("workers", 2)
    return gw.config(routes, upstreams, limits=limits, auth_providers=providers,
                     consumers=consumers, **top)


class Env:
    pass


@pytest.fixture(scope="module")
def env(module_gateway, module_upstreams):
    e = Env()
    e.ws = WsUpstream("wsup", max_size=16 * MiB)
    e.raw = RawUpgradeUpstream(lifetime=600)
    e.plain = module_upstreams("plain")
    e.dead_port = free_port()  # nothing listens here
    try:
        e.g = module_gateway(ws_config(e.ws, e.plain, e.raw, e.dead_port))
        yield e
    finally:
        e.ws.stop()
        e.raw.stop()
    assert not e.ws.errors, e.ws.errors


@pytest.fixture
def wsup():
    u = WsUpstream("wsup-fn", max_size=16 * MiB)
    yield u
    u.stop()


@pytest.fixture
def rawup():
    u = RawUpgradeUpstream(lifetime=120)
    yield u
    u.stop()


# ----- helpers -----------------------------------------------------------------------------------
def run(coro, timeout=60.0 * SLACK):
    """Runs one coroutine on a fresh event loop, with an overall bound."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def connect(g, path, **kw):
    kw.setdefault("open_timeout", OPEN)
    kw.setdefault("close_timeout", STEP)
    kw.setdefault("ping_interval", None)
    return websockets.connect(f"ws://127.0.0.1:{g.port}{path}", **kw)


async def echo(ws, msg, timeout=STEP):
    await ws.send(msg)
    return await asyncio.wait_for(ws.recv(), timeout)


def handshake_status(g, path, **kw):
    """Connects expecting the handshake to fail; returns the InvalidStatusCode exception."""
    async def go():
        try:
            ws = await connect(g, path, **kw)
        except websockets.exceptions.InvalidStatusCode as exc:
            return exc
        await ws.close()
        raise AssertionError(f"the handshake on {path} succeeded")
    return run(go())


def upgrade_request(path, headers=(), key=WS_KEY, host="ws.test"):
    return request_bytes("GET", path, host=host, headers=[
        ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13")] + list(headers))


def frame(payload, opcode=0x1, fin=True, mask=b"\x37\xfa\x21\x3d"):
    """A masked client frame (RFC 6455 §5.2)."""
    if isinstance(payload, str):
        payload = payload.encode()
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def read_exactly(conn, n, timeout=STEP):
    """Reads until conn.buf holds at least n bytes; returns and consumes them."""
    deadline = time.monotonic() + timeout
    while len(conn.buf) < n:
        data = conn._recv(deadline)
        if not data:
            raise AssertionError(f"connection closed after {len(conn.buf)} of {n} bytes: "
                                 f"{conn.buf[:200]!r}")
        conn.buf += data
    out, conn.buf = conn.buf[:n], conn.buf[n:]
    return out


def sha(data):
    return hashlib.sha256(data).hexdigest()


def plain_still_works(e, path="/plain/health"):
    before = e.plain.count()
    resp = rawhttp.exchange(e.g.port, request_bytes("GET", path), timeout=STEP)
    assert resp.status == 200, resp
    assert resp.json()["path"] == path
    assert e.plain.count() == before + 1
    e.g.assert_healthy()


# ----- 1. echo and what the upstream receives ----------------------------------------------------
def test_text_and_binary_echo_and_forwarded_headers(env):
    path = "/ws/echo-basic"

    async def go():
        async with connect(env.g, path, extra_headers=[("X-Request-Id", "ws-req-0001")]) as ws:
            assert await echo(ws, "hello, tunnel") == "hello, tunnel"
            assert await echo(ws, b"\x00\x01\xfe\xff binary") == b"\x00\x01\xfe\xff binary"
            assert await echo(ws, "") == ""
            assert await echo(ws, "ünïcødé ✓") == "ünïcødé ✓"
            return dict(ws.response_headers.raw_items())
    run(go())
    h = env.ws.wait_for(path, closed=True, timeout=STEP)
    assert h.path == path
    assert h.header_all("X-Forwarded-For") == ["127.0.0.1"], h.headers
    assert h.header_all("X-Forwarded-Proto") == ["http"], h.headers
    assert h.header_all("X-Request-Id") == ["ws-req-0001"], h.headers
    assert h.header("Upgrade", "").lower() == "websocket", h.headers
    assert "upgrade" in h.header("Connection", "").lower(), h.headers
    assert h.header("Sec-WebSocket-Version") == "13", h.headers
    assert h.header("Sec-WebSocket-Key"), h.headers
    assert h.received == ["hello, tunnel", b"\x00\x01\xfe\xff binary", "", "ünïcødé ✓"]
    assert h.close_code == 1000


def test_generated_request_id_forwarded_and_returned_on_101(env):
    path = "/ws/request-id"

    async def go():
        async with connect(env.g, path) as ws:
            assert await echo(ws, "x") == "x"
            return ws.response_headers
    resp_headers = run(go())
    h = env.ws.wait_for(path, timeout=STEP)
    ids = h.header_all("X-Request-Id")
    assert len(ids) == 1 and ids[0], h.headers
    # SPEC §4: every response carries X-Request-Id, the 101 included, and it is the one sent up.
    assert resp_headers.get_all("X-Request-Id") == ids, list(resp_headers.raw_items())


def test_subprotocol_negotiated_through_the_gateway(env):
    async def go():
        async with connect(env.g, "/ws/subproto", subprotocols=[SUBPROTOCOL, "other"]) as ws:
            assert await echo(ws, "p") == "p"
            return ws.subprotocol
    assert run(go()) == SUBPROTOCOL
    h = env.ws.wait_for("/ws/subproto", timeout=STEP)
    assert SUBPROTOCOL in h.header("Sec-WebSocket-Protocol", ""), h.headers


def test_upstream_speaks_first(env):
    async def go():
        async with connect(env.g, "/ws/hello") as ws:
            first = await asyncio.wait_for(ws.recv(), STEP)
            assert await echo(ws, "after hello") == "after hello"
            return first
    assert run(go()) == "hello"


# ----- 2. a large message ------------------------------------------------------------------------
@pytest.mark.parametrize("compression", [None, "deflate"])
def test_large_binary_message_echoed_intact(env, compression):
    path = f"/ws/large-{compression}"
    data = os.urandom(8 * MiB)

    async def go():
        async with connect(env.g, path, max_size=16 * MiB, compression=compression,
                           open_timeout=OPEN) as ws:
            await ws.send(data)
            got = await asyncio.wait_for(ws.recv(), 60 * SLACK)
            assert isinstance(got, bytes)
            assert len(got) == len(data)
            assert sha(got) == sha(data)
            # The tunnel still works after the big one.
            assert await echo(ws, "small after large") == "small after large"
    run(go(), timeout=120 * SLACK)
    h = env.ws.wait_for(path, closed=True, timeout=STEP)
    assert h.received[0] == f"<{8 * MiB} bytes sha256 {sha(data)}>"


def test_many_medium_messages_in_both_directions_pipelined(env):
    """Sends 64 x 128 KiB without waiting for the echoes, then reads them all in order."""
    msgs = [os.urandom(128 * 1024) for _ in range(64)]

    async def go():
        async with connect(env.g, "/ws/pipelined", max_size=MiB, compression=None) as ws:
            async def sender():
                for m in msgs:
                    await ws.send(m)
            send_task = asyncio.ensure_future(sender())
            got = [await asyncio.wait_for(ws.recv(), 30 * SLACK) for _ in msgs]
            await send_task
            return got
    got = run(go())
    assert [sha(m) for m in got] == [sha(m) for m in msgs]


# ----- 3. fragmented messages --------------------------------------------------------------------
def test_fragmented_messages_arrive_reassembled(env):
    path = "/ws/fragments"

    async def slow_fragments():
        for i in range(5):
            yield b"piece-%d;" % i
            await asyncio.sleep(0.05)

    async def go():
        async with connect(env.g, path) as ws:
            await ws.send(["frag-1 ", "frag-2 ", "frag-3"])
            assert await asyncio.wait_for(ws.recv(), STEP) == "frag-1 frag-2 frag-3"
            await ws.send(slow_fragments())
            assert await asyncio.wait_for(ws.recv(), STEP) == \
                b"piece-0;piece-1;piece-2;piece-3;piece-4;"
            # Fragments larger than 64 KiB each.
            await ws.send([b"a" * 70000, b"b" * 70000])
            got = await asyncio.wait_for(ws.recv(), STEP)
            assert got == b"a" * 70000 + b"b" * 70000
    run(go())
    h = env.ws.wait_for(path, closed=True, timeout=STEP)
    assert h.received[:2] == ["frag-1 frag-2 frag-3", b"piece-0;piece-1;piece-2;piece-3;piece-4;"]


# ----- 4. ping / pong ----------------------------------------------------------------------------
def test_client_ping_gets_pong_through_the_gateway(env):
    async def go():
        async with connect(env.g, "/ws/ping-client") as ws:
            for i in range(3):
                pong = await ws.ping(b"are-you-there-%d" % i)
                await asyncio.wait_for(pong, STEP)
            assert await echo(ws, "after pings") == "after pings"
    run(go())


def test_upstream_ping_gets_pong_from_the_client(env):
    async def go():
        async with connect(env.g, "/ws/ping") as ws:
            # The upstream pings; this client answers with a pong; then the upstream says so.
            assert await asyncio.wait_for(ws.recv(), STEP) == "pong ok"
    run(go())


# ----- 5. closing --------------------------------------------------------------------------------
def test_client_close_code_reaches_upstream(env):
    path = "/ws/client-close"

    async def go():
        ws = await connect(env.g, path, close_timeout=10 * SLACK)
        assert await echo(ws, "before close") == "before close"
        t0 = time.monotonic()
        await ws.close(4001, "bye")
        return ws.close_code, ws.close_reason, time.monotonic() - t0
    code, reason, elapsed = run(go())
    h = env.ws.wait_for(path, closed=True, timeout=STEP)
    assert (h.close_code, h.close_reason) == (4001, "bye")
    # The upstream echoes the close frame; the gateway then closes the client's connection too
    # (the client does not have to wait for its close_timeout to drop it itself).
    assert (code, reason) == (4001, "bye")
    assert elapsed < 3 * SLACK, elapsed


def test_upstream_close_code_reaches_client(env):
    path = "/ws/close/4002"

    async def go():
        ws = await connect(env.g, path, close_timeout=10 * SLACK)
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), STEP)
        t0 = time.monotonic()
        await ws.wait_closed()
        return ws.close_code, ws.close_reason, time.monotonic() - t0
    code, reason, elapsed = run(go())
    assert (code, reason) == (4002, "closing 4002")
    assert elapsed < 3 * SLACK, f"the TCP connection was not closed after the close handshake: "\
                                f"{elapsed:.1f}s"
    h = env.ws.wait_for(path, closed=True, timeout=STEP)
    assert h.close_code == 4002


def test_upstream_drops_tcp_client_sees_1006(env):
    async def go():
        ws = await connect(env.g, "/ws/drop", close_timeout=10 * SLACK)
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), STEP)
        return ws.close_code
    assert run(go()) == 1006
    plain_still_works(env)


def test_client_drops_tcp_upstream_connection_closed(env):
    """A client that vanishes without a close frame: the gateway closes the upstream side."""
    path = "/ws/silent/client-drops"
    with RawConn(env.g.port, timeout=STEP) as c:
        c.send(upgrade_request(path))
        resp = c.read_response()
        assert resp.status == 101, resp
        env.ws.wait_for(path, timeout=STEP)
    h = env.ws.wait_for(path, closed=True, timeout=5 * SLACK)
    assert h.close_code == 1006, h


# ----- 6. many connections -----------------------------------------------------------------------
def test_fifty_concurrent_connections(env):
    n, per = 50, 6

    async def one(i):
        async with connect(env.g, f"/ws/many/{i}", open_timeout=30 * SLACK) as ws:
            for j in range(per):
                msg = f"conn {i} message {j} " + "z" * (i * 37)
                assert await echo(ws, msg, timeout=20 * SLACK) == msg
                bmsg = os.urandom(i * 100 + j)
                assert await echo(ws, bmsg, timeout=20 * SLACK) == bmsg
            return i

    async def go():
        results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise AssertionError(f"{len(errors)} of {n} connections failed; first: {errors[0]!r}")
        return results
    assert sorted(run(go(), timeout=120 * SLACK)) == list(range(n))
    for i in range(n):
        h = env.ws.wait_for(f"/ws/many/{i}", closed=True, timeout=STEP)
        assert len(h.received) == 2 * per and h.close_code == 1000, h
    plain_still_works(env)


# ----- 7. non-101 answers from the upstream ------------------------------------------------------
def test_upstream_rejects_handshake_403_reaches_client(env):
    before = env.ws.count()
    exc = handshake_status(env.g, "/ws/reject")
    assert exc.status_code == 403
    assert env.ws.count() == before + 1
    # The same thing seen on the wire: a normal 403 response, the upstream's body, no upgrade.
    resp = rawhttp.exchange(env.g.port, upgrade_request("/ws/reject"), timeout=STEP)
    assert resp.status == 403, resp
    assert resp.body == b"rejected\n"
    assert resp.header("X-Upstream-Name") == "wsup", resp
    assert not resp.has_header("Sec-WebSocket-Accept")
    assert resp.header("X-Request-Id"), resp
    plain_still_works(env)


@pytest.mark.parametrize("status", [404, 426, 500, 503])
def test_upstream_other_status_reaches_client(env, status):
    resp = rawhttp.exchange(env.g.port, upgrade_request(f"/ws/status/{status}"), timeout=STEP)
    assert resp.status == status, resp
    assert resp.body == f"status {status}\n".encode()


# ----- 8. auth -----------------------------------------------------------------------------------
def test_unauthenticated_upgrade_is_401_and_reaches_no_upstream(env):
    before = env.ws.count()
    exc = handshake_status(env.g, "/wsauth/no-credentials")
    assert exc.status_code == 401
    exc = handshake_status(env.g, "/wsauth/wrong-key", extra_headers=[("X-API-Key", "nope")])
    assert exc.status_code == 401
    exc = handshake_status(env.g, "/wsjwt/bad-token",
                           extra_headers=[("Authorization", "Bearer not.a.token")])
    assert exc.status_code == 401
    # On the wire: the gateway's JSON 401, with a challenge, and no upgrade.
    with RawConn(env.g.port, timeout=STEP) as c:
        c.send(upgrade_request("/wsauth/raw"))
        resp = c.read_response()
        assert_error(resp, 401, "unauthenticated")
        assert resp.header_all("WWW-Authenticate"), resp
        assert not resp.has_header("Upgrade") and not resp.has_header("Sec-WebSocket-Accept")
        # Bytes sent after a refused upgrade are not tunnelled anywhere either.
        try:
            c.send(frame("should go nowhere"))
        except OSError:
            pass
    time.sleep(0.2 * SLACK)
    assert env.ws.count() == before, env.ws.snapshot()[before:]


def test_api_key_upgrade_works_and_identity_is_forwarded(env):
    path = "/wsauth/with-key"

    async def go():
        async with connect(env.g, path, extra_headers=[("X-API-Key", ALICE_KEY)]) as ws:
            assert await echo(ws, "authenticated") == "authenticated"
    run(go())
    h = env.ws.wait_for(path, closed=True, timeout=STEP)
    assert h.header_all("X-Consumer-Name") == ["alice"], h.headers
    assert h.header_all("X-Consumer-Groups") == ["admins"], h.headers
    assert h.received == ["authenticated"]


def test_jwt_upgrade_works_header_and_query(env):
    token = jwt.hs(jwt.claims(iss=ISSUER), SECRET)

    async def go(path, **kw):
        async with connect(env.g, path, **kw) as ws:
            assert await echo(ws, "jwt") == "jwt"
    run(go("/wsjwt/header", extra_headers=[("Authorization", f"Bearer {token}")]))
    run(go(f"/wsjwt/query?token={token}"))
    for path in ("/wsjwt/header", "/wsjwt/query"):
        h = env.ws.wait_for(path, timeout=STEP)
        assert h.header_all("X-Consumer-Name") == ["alice"], h.headers
        assert h.header_all("X-User-Id") == ["alice"], h.headers


# ----- 9. client-sent identity headers -----------------------------------------------------------
def test_client_sent_identity_headers_not_forwarded(env):
    spoof = [("X-Consumer-Name", "mallory"), ("X-Consumer-Groups", "root"),
             ("X-User-Id", "mallory")]

    async def go(path, extra):
        async with connect(env.g, path, extra_headers=spoof + extra) as ws:
            assert await echo(ws, "x") == "x"
    run(go("/ws/spoof-public", []))
    h = env.ws.wait_for("/ws/spoof-public", timeout=STEP)
    for name, _ in spoof:
        assert h.header_all(name) == [], (name, h.headers)
    run(go("/wsauth/spoof-keyed", [("X-API-Key", BOB_KEY)]))
    h = env.ws.wait_for("/wsauth/spoof-keyed", timeout=STEP)
    assert h.header_all("X-Consumer-Name") == ["bob"], h.headers
    assert h.header_all("X-Consumer-Groups") == ["users"], h.headers
    assert h.header_all("X-User-Id") == [], h.headers


# ----- 10. idle timeout --------------------------------------------------------------------------
IDLE = 1.0


@pytest.fixture
def idle_env(gateway, upstreams, wsup, rawup):
    e = Env()
    e.ws, e.raw, e.plain = wsup, rawup, upstreams("plain")
    e.g = gateway(ws_config(e.ws, e.plain, e.raw, free_port(), limits={"idle_timeout": "1s"}))
    return e


def test_idle_tunnel_closed_after_idle_timeout(idle_env):
    e = idle_env
    path = "/ws/silent/idle"

    async def go():
        ws = await connect(e.g, path)
        t0 = time.monotonic()
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), IDLE + 6 * SLACK)
        return ws.close_code, time.monotonic() - t0
    code, elapsed = run(go())
    assert code == 1006
    assert IDLE * 0.8 <= elapsed <= IDLE + 3 * SLACK, elapsed
    # The upstream side is closed too.
    h = e.ws.wait_for(path, closed=True, timeout=3 * SLACK)
    assert h.close_code == 1006, h
    plain_still_works(e)


def test_tunnel_with_traffic_outlives_idle_timeout(idle_env):
    e = idle_env
    path = "/ws/busy"

    async def go():
        async with connect(e.g, path) as ws:
            t0 = time.monotonic()
            i = 0
            while time.monotonic() - t0 < 3 * IDLE:
                assert await echo(ws, f"tick {i}") == f"tick {i}"
                i += 1
                await asyncio.sleep(0.3)
            assert ws.open
            return i
    ticks = run(go())
    h = e.ws.wait_for(path, closed=True, timeout=STEP)
    assert len(h.received) == ticks and h.close_code == 1000, h


def test_one_way_traffic_keeps_tunnel_open(idle_env):
    """Client -> upstream only (the /silent upstream never answers) is traffic too."""
    e = idle_env
    path = "/ws/silent/one-way"

    async def go():
        async with connect(e.g, path) as ws:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 3 * IDLE:
                await ws.send("one way")
                await asyncio.sleep(0.3)
            assert ws.open
            pong = await ws.ping()   # still connected end to end
            await asyncio.wait_for(pong, STEP)
    run(go())


def test_upstream_to_client_traffic_keeps_tunnel_open(idle_env):
    """Upstream -> client only (the client never sends) is traffic too."""
    e = idle_env
    path = "/ws/tick/300"

    async def go():
        async with connect(e.g, path) as ws:
            t0 = time.monotonic()
            ticks = []
            while time.monotonic() - t0 < 3 * IDLE:
                ticks.append(await asyncio.wait_for(ws.recv(), STEP))
            assert ws.open
            return ticks
    ticks = run(go())
    assert ticks[:3] == ["tick 0", "tick 1", "tick 2"] and len(ticks) >= 6, ticks


def test_tunnel_outlives_upstream_request_timeout(gateway, upstreams, wsup, rawup):
    """timeouts.request bounds the wait for the response head, not the life of the tunnel."""
    cfg = ws_config(wsup, upstreams("plain"), rawup, free_port())
    cfg["upstreams"]["wsup"]["timeouts"] = {"connect": "1s", "request": "1s", "idle": "30s"}
    g = gateway(cfg)

    async def go():
        async with connect(g, "/ws/quiet-then-talk") as ws:
            await asyncio.sleep(2.5)
            assert await echo(ws, "still here") == "still here"
    run(go())


@pytest.mark.parametrize("traffic", ["none", "client-to-upstream"])
def test_tunnel_idle_is_the_listeners_not_the_upstream_pools(gateway, upstreams, wsup, rawup,
                                                             traffic):
    """timeouts.idle of the upstream is for idle pooled connections; a tunnel in use is idle
    only by the listener's idle_timeout (60 s by default here)."""
    cfg = ws_config(wsup, upstreams("plain"), rawup, free_port())
    cfg["upstreams"]["wsup"]["timeouts"] = {"connect": "1s", "request": "10s", "idle": "1s"}
    g = gateway(cfg)

    async def go():
        async with connect(g, f"/ws/silent/past-pool-idle-{traffic}") as ws:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 2.5:
                if traffic == "none":
                    await asyncio.sleep(2.5)
                else:
                    await ws.send("one way")
                    await asyncio.sleep(0.3)
            assert ws.open, "the tunnel was closed while quiet for the upstream pool's idle"
            pong = await ws.ping()   # still connected end to end
            await asyncio.wait_for(pong, STEP)
    run(go())


# ----- 11. upstream down -------------------------------------------------------------------------
def test_upstream_down_is_502(env):
    exc = handshake_status(env.g, "/dead/ws")
    assert exc.status_code == 502
    resp = rawhttp.exchange(env.g.port, upgrade_request("/dead/ws"), timeout=STEP)
    assert_error(resp, 502, "bad_upstream")
    assert not resp.has_header("Upgrade")
    plain_still_works(env)


# ----- 12. plain HTTP next to WebSockets ---------------------------------------------------------
def test_plain_http_before_and_after_websocket_use(env):
    plain_still_works(env, "/plain/before")

    async def go():
        async with connect(env.g, "/ws/between") as ws:
            assert await echo(ws, "between") == "between"
    run(go())
    plain_still_works(env, "/plain/after")
    # A plain GET on the WebSocket route reaches the WebSocket server, which answers 426.
    resp = rawhttp.exchange(env.g.port, request_bytes("GET", "/ws/plain-get"), timeout=STEP)
    assert resp.status == 426, resp
    assert b"WebSocket" in resp.body
    # An upgrade request to an ordinary HTTP upstream: its 200 is a normal response, and the
    # connection stays a normal HTTP connection (a second request on it works).
    before = env.plain.count()
    with RawConn(env.g.port, timeout=STEP) as c:
        c.send(upgrade_request("/plain/upgrade-refused"))
        resp = c.read_response()
        assert resp.status == 200, resp
        assert resp.json()["path"] == "/plain/upgrade-refused"
        assert not resp.has_header("Sec-WebSocket-Accept")
        c.send(request_bytes("GET", "/plain/same-connection"))
        resp2 = c.read_response()
        assert resp2.status == 200, resp2
        assert resp2.json()["path"] == "/plain/same-connection"
    assert [r.path for r in env.plain.since(before)] == ["/plain/upgrade-refused",
                                                       "/plain/same-connection"]


# ----- 13. raw bytes: early data, partial frames -------------------------------------------------
def test_early_data_after_handshake_reaches_upstream_after_101(env):
    early = frame("early data in the same packet")
    with RawConn(env.g.port, timeout=STEP) as c:
        c.send(upgrade_request("/raw/early") + early)   # one sendall, one segment
        resp = c.read_response()
        assert resp.status == 101, resp
        assert resp.header("Sec-WebSocket-Accept") == accept_key(WS_KEY), resp
        assert resp.header("Upgrade", "").lower() == "websocket", resp
        # The raw upstream echoes every byte it got after the request head.
        assert read_exactly(c, len(early)) == early
        c.send(frame("later"))
        assert read_exactly(c, len(frame("later"))) == frame("later")
    conn = env.raw.last()
    assert conn.head == "GET /raw/early HTTP/1.1", conn.head
    assert bytes(conn.data).startswith(early)


def test_partial_frames_are_relayed_as_they_come(env):
    """Half a frame is relayed at once; the gateway does not wait for whole frames."""
    big = frame(b"q" * 100000, opcode=0x2)
    with RawConn(env.g.port, timeout=STEP) as c:
        c.send(upgrade_request("/raw/partial"))
        resp = c.read_response()
        assert resp.status == 101, resp
        conn = wait_until(lambda: env.raw.last() if env.raw.last().head and
                          "/raw/partial" in env.raw.last().head else None, STEP)
        c.send(big[:1000])
        wait_until(lambda: len(conn.data) >= 1000, STEP, message="the first 1000 bytes upstream")
        assert read_exactly(c, 1000) == big[:1000]
        c.send(big[1000:])
        assert read_exactly(c, len(big) - 1000, timeout=10 * SLACK) == big[1000:]
    assert bytes(conn.data) == big


@pytest.mark.parametrize("connection,upgrade", [
    ("keep-alive, Upgrade", "websocket"),      # what Firefox sends
    ("upgrade", "WebSocket"),                  # tokens are case-insensitive
])
def test_upgrade_header_variants(env, connection, upgrade):
    req = request_bytes("GET", "/raw/variants", host="ws.test", headers=[
        ("Connection", connection), ("Upgrade", upgrade), ("Sec-WebSocket-Key", WS_KEY),
        ("Sec-WebSocket-Version", "13")])
    with RawConn(env.g.port, timeout=STEP) as c:
        c.send(req)
        resp = c.read_response()
        assert resp.status == 101, resp
        c.send(frame("variant"))
        assert read_exactly(c, len(frame("variant"))) == frame("variant")
    conn = env.raw.last()
    assert (conn.header("Upgrade") or "").lower() == "websocket", conn.headers
    assert "upgrade" in (conn.header("Connection") or "").lower(), conn.headers


def test_101_to_a_request_that_did_not_ask_for_upgrade_is_502(env):
    """The raw upstream answers 101 to anything; without an upgrade request that is invalid."""
    resp = rawhttp.exchange(env.g.port, request_bytes("GET", "/raw/not-an-upgrade"), timeout=STEP)
    assert_error(resp, 502, "bad_upstream")
    plain_still_works(env)


def test_raw_upgrade_to_websocket_server_then_frames(env):
    """A hand-written handshake and frames through the gateway to the real server."""
    path = "/ws/raw-client"
    with RawConn(env.g.port, timeout=STEP) as c:
        c.send(upgrade_request(path) + frame("raw hello"))
        resp = c.read_response()
        assert resp.status == 101, resp
        assert resp.header("Sec-WebSocket-Accept") == accept_key(WS_KEY), resp
        # Unmasked server frame: FIN|text, length 9, "raw hello".
        assert read_exactly(c, 11) == b"\x81\x09raw hello"
        c.send(frame(struct.pack(">H", 1000) + b"done", opcode=0x8))
        assert read_exactly(c, 8) == b"\x88\x06" + struct.pack(">H", 1000) + b"done"
        assert c.wait_closed(3 * SLACK), "the gateway did not close after the close handshake"
    h = env.ws.wait_for(path, closed=True, timeout=STEP)
    assert h.received == ["raw hello"] and h.close_code == 1000


# ----- backpressure: nothing is buffered whole ---------------------------------------------------
def _hwm_kib(g):
    return proc_status_kib(g.pid, "VmHWM")


def _raw_conn_for(env, fragment, timeout=STEP):
    return wait_until(lambda: next((c for c in reversed(env.raw.conns)
                                    if c.head and fragment in c.head), None),
                      timeout, message=f"the raw upstream connection for {fragment}")


def test_client_to_upstream_backpressure(env):
    """The upstream stops reading for a while: the gateway stops reading from the client too
    (what the client manages to send meanwhile is bounded by socket buffers), and everything
    arrives intact once the upstream reads again."""
    hwm_before = _hwm_kib(env.g)
    hold_ms = int(2000 + 500 * SLACK)
    with RawConn(env.g.port, timeout=30 * SLACK) as c:
        c.send(upgrade_request(f"/raw/hold/{hold_ms}/c2u"))
        resp = c.read_response()
        assert resp.status == 101, resp
        conn = _raw_conn_for(env, "/c2u")
        sock = c.sock
        sock.setblocking(False)
        h = hashlib.sha256()
        sent, cap = 0, 256 * MiB
        pieces = pattern_chunks(cap, 256 * 1024)
        buf = b""
        t_end = time.monotonic() + 1.5
        while time.monotonic() < t_end and sent < cap:
            if not buf:
                buf = next(pieces)
            try:
                n = sock.send(buf)
            except BlockingIOError:
                time.sleep(0.005)
                continue
            h.update(buf[:n])
            sent += n
            buf = buf[n:]
        assert not conn.reading, "the hold ended too early for the test to mean anything"
        assert sent < 96 * MiB, f"{sent >> 20} MiB accepted while the upstream read nothing"
        # The rest of the current piece and 4 MiB more, blocking, once the upstream reads again.
        sock.settimeout(30 * SLACK)
        more = buf + b"".join(next(pieces) for _ in range(16))
        sock.sendall(more)
        h.update(more)
        sent += len(more)
        wait_until(lambda: conn.received >= sent, 30 * SLACK,
                   message=f"{sent} bytes at the upstream (got {conn.received})")
        assert conn.received == sent
        assert conn.sha.hexdigest() == h.hexdigest()
    grown_mib = (_hwm_kib(env.g) - hwm_before) / 1024
    assert grown_mib < 64, f"gateway peak RSS grew by {grown_mib:.0f} MiB"
    wait_until(lambda: conn.done, 5 * SLACK, message="the upstream side to be closed")


def test_upstream_to_client_backpressure(env):
    """The client stops reading for a while: the gateway stops reading from the upstream too."""
    n = 128 * MiB
    hwm_before = _hwm_kib(env.g)
    with RawConn(env.g.port, timeout=30 * SLACK) as c:
        c.send(upgrade_request(f"/raw/flood/{n}/u2c"))
        resp = c.read_response()
        assert resp.status == 101, resp
        conn = _raw_conn_for(env, "/u2c")
        time.sleep(1.5)   # not reading
        sent_while_paused = conn.sent
        assert sent_while_paused < 96 * MiB, \
            f"the upstream sent {sent_while_paused >> 20} MiB to a client that read nothing"
        h = hashlib.sha256(c.buf)
        got = len(c.buf)
        c.buf = b""
        c.sock.settimeout(30 * SLACK)
        while got < n:
            d = c.sock.recv(1 << 20)
            assert d, f"connection closed after {got} of {n} bytes"
            h.update(d)
            got += len(d)
        assert got == n
        assert h.hexdigest() == pattern_sha256(n)
    grown_mib = (_hwm_kib(env.g) - hwm_before) / 1024
    assert grown_mib < 64, f"gateway peak RSS grew by {grown_mib:.0f} MiB"


def test_data_just_before_client_close_reaches_upstream(env):
    """The client sends 8 MiB and closes at once: the gateway delivers everything it accepted
    to the upstream before closing that side."""
    n = 8 * MiB
    data = b"".join(pattern_chunks(n))
    sock = socket.create_connection(("127.0.0.1", env.g.port), timeout=30 * SLACK)
    try:
        c = RawConn.from_socket(sock, 30 * SLACK)
        c.send(upgrade_request("/raw/hold/300/close-after-send"))
        resp = c.read_response()
        assert resp.status == 101, resp
        conn = _raw_conn_for(env, "/close-after-send")
        sock.sendall(data)
    finally:
        sock.close()
    wait_until(lambda: conn.done, 30 * SLACK, message="the upstream side to be closed")
    assert conn.received == n, f"the upstream got {conn.received} of {n} bytes"
    assert conn.sha.hexdigest() == pattern_sha256(n)


def test_data_just_before_upstream_close_reaches_client(env):
    """The upstream sends 8 MiB and closes at once: the client gets all of it, then EOF."""
    n = 8 * MiB
    with RawConn(env.g.port, timeout=30 * SLACK) as c:
        c.send(upgrade_request(f"/raw/flood/{n}/close/u-close"))
        resp = c.read_response()
        assert resp.status == 101, resp
        data, closed = c.read_until_close(30 * SLACK)
    assert closed, "the gateway did not close the client side after the upstream closed"
    assert len(data) == n, f"the client got {len(data)} of {n} bytes"
    assert hashlib.sha256(data).hexdigest() == pattern_sha256(n)


# ----- reload and drain with open tunnels --------------------------------------------------------
def test_open_tunnel_survives_reload(gateway, upstreams, wsup, rawup):
    plain = upstreams("plain")
    cfg = ws_config(wsup, plain, rawup, free_port())
    g = gateway(cfg)

    async def go():
        async with connect(g, "/ws/across-reload") as ws:
            assert await echo(ws, "before reload") == "before reload"
            status, body = await asyncio.get_running_loop().run_in_executor(None, g.reload, cfg)
            assert status == 200, body
            assert await echo(ws, "after reload") == "after reload"
    run(go())


def test_sigterm_closes_open_tunnel_within_drain_timeout(gateway, upstreams, wsup, rawup):
    cfg = ws_config(wsup, upstreams("plain"), rawup, free_port(), drain_timeout="1s")
    g = gateway(cfg)
    path = "/ws/silent/drain"

    async def go():
        ws = await connect(g, path)
        assert ws.open
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        rc = await loop.run_in_executor(None, g.stop)
        elapsed = time.monotonic() - t0
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), STEP)
        return rc, elapsed
    rc, elapsed = run(go())
    assert rc == 0
    assert elapsed <= 1 + 3 * SLACK, elapsed
    h = wsup.wait_for(path, closed=True, timeout=3 * SLACK)
    assert h.closed


def test_gateway_healthy_at_the_end(env):
    env.g.assert_healthy()
    assert not env.ws.errors, env.ws.errors
    st, body = env.g.admin("GET", "/readyz")
    assert st == 200 and body["status"] == "ready", body
