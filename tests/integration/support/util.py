"""Small shared helpers: free ports, polling, deterministic large bodies."""
import collections
import hashlib
import os
import random
import socket
import struct
import time

SANITIZED = os.environ.get("PORTICO_SANITIZED") == "1"
# Timing slack multiplier: sanitized builds are several times slower.
SLACK = 4.0 if SANITIZED else 1.0

CHUNK = 64 * 1024
_BASE = bytes((i * 131 + 7) & 0xFF for i in range(CHUNK))


_recent_ports = collections.deque(maxlen=256)


# Under pytest-xdist each worker draws from its own range below the kernel's ephemeral ports
# (32768 and up): a port one worker checked and let go can then be taken neither by another
# worker nor by a socket the kernel numbers itself.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_PORT_SPAN = 3000


def _candidate_port():
    if not _XDIST_WORKER.startswith("gw"):
        return 0  # the kernel's choice
    first = 11000 + int(_XDIST_WORKER[2:] or 0) % 7 * _PORT_SPAN
    return random.randrange(first, first + _PORT_SPAN)


def free_port():
    """A port that was free a moment ago on 127.0.0.1 (bind it, read it back, close), and
    not one this process handed out lately: the kernel may give the same port to two binds in a
    row once the first socket is closed (a listener and the admin API then collide)."""
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", _candidate_port()))
            port = s.getsockname()[1]
        except OSError:
            continue  # taken: draw again
        finally:
            s.close()
        if port not in _recent_ports:
            _recent_ports.append(port)
            return port
    raise RuntimeError("no fresh free port")


def wait_until(predicate, timeout=5.0, interval=0.02, message="condition"):
    """Polls predicate() until it returns a truthy value; returns it or raises AssertionError."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - polled conditions may fail transiently
            last_exc = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}"
                                 + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


def pattern_chunks(total, chunk=CHUNK):
    """Yields `total` bytes of a deterministic pattern in pieces of at most `chunk` bytes.

    Every 64 KiB block starts with its index, so dropped, duplicated or reordered blocks change
    the SHA-256 even when the length is right.
    """
    index = 0
    sent = 0
    while sent < total:
        block = struct.pack(">Q", index) + _BASE[8:]
        n = min(CHUNK, total - sent)
        piece = block[:n]
        for off in range(0, n, chunk):
            yield piece[off:off + chunk]
        sent += n
        index += 1


def pattern_sha256(total):
    h = hashlib.sha256()
    for piece in pattern_chunks(total):
        h.update(piece)
    return h.hexdigest()


def proc_status_kib(pid, field):
    """A field like VmHWM or VmRSS from /proc/PID/status, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def assert_error(resp, status, code):
    """A gateway error response (SPEC §4): status, JSON body with code, and the request id."""
    assert resp.status == status, resp
    assert resp.header("Content-Type", "").startswith("application/json")
    err = resp.json()["error"]
    assert err["status"] == status and err["code"] == code, err
    assert err["request_id"] == resp.header("X-Request-Id")
