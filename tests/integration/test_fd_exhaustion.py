"""Out of file descriptors: the gateway neither spins on its listening socket nor stops serving
once descriptors are free again."""
import os
import resource
import socket
import subprocess
import time
import urllib.request

import pytest

from support import util

CONFIG = """\
workers: 1
listeners: [{address: "127.0.0.1:%(port)d"}]
admin: {address: "127.0.0.1:%(admin)d"}
access_log: {path: "off"}
upstreams: {e: {builtin: echo}}
routes: [{match: {path_prefix: /}, upstream: e, auth: public}]
"""


def _cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _get(port, path="/x"):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
        return r.status


# UBSan's vptr check tests whether memory is readable by writing it to a pipe(); with no
# descriptor left that fails, and it reports a false "invalid vptr". The premise of this test is
# a process out of descriptors, so it runs on the release build only.
@pytest.mark.skipif(util.SANITIZED, reason="sanitizer runtimes need free descriptors")
def test_fd_exhaustion_pauses_accept_and_recovers(portico_bin, tmp_path):
    port, admin = util.free_port(), util.free_port()
    cfg = tmp_path / "p.yaml"
    cfg.write_text(CONFIG % {"port": port, "admin": admin})
    limit = 40
    proc = subprocess.Popen(
        [portico_bin, "run", "-c", str(cfg), "--log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)))
    clients = []
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                assert _get(port) == 200
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
        for _ in range(limit + 20):  # more connections than the gateway has descriptors
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            clients.append(s)
        time.sleep(0.3)
        before = _cpu_seconds(proc.pid)
        time.sleep(1.0)
        used = _cpu_seconds(proc.pid) - before
        # Spinning on a readable listening socket would burn the whole second.
        assert used < 0.5, f"gateway used {used:.2f}s of CPU in 1s while out of descriptors"
        for s in clients:
            s.close()
        clients.clear()
        deadline = time.monotonic() + 5
        while True:
            try:
                assert _get(port, "/after") == 200
                break
            except OSError:
                assert time.monotonic() < deadline, "gateway did not recover"
                time.sleep(0.1)
        assert proc.poll() is None
    finally:
        for s in clients:
            s.close()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
