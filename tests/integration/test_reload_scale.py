"""A 100,000-route config: validated, compiled off the serving threads, and reloaded under load
without failing a single request."""
import http.client
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from support import util

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GEN = os.path.join(ROOT, "bench", "gen-routes.py")
ROUTES = 100_000

pytestmark = pytest.mark.slow


def _generate(path, port, admin, variant):
    subprocess.run([sys.executable, GEN, str(ROUTES), str(port), str(admin), path, variant],
                   check=True, timeout=60)


def _wait_ready(admin, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "portico exited during start"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("portico did not become ready")


def test_validate_100k_routes(portico_bin, tmp_path):
    cfg = str(tmp_path / "big.yaml")
    _generate(cfg, util.free_port(), util.free_port(), "a")
    out = subprocess.run([portico_bin, "validate", "-c", cfg], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_reload_100k_routes_under_load_fails_nothing(portico_bin, tmp_path):
    port, admin = util.free_port(), util.free_port()
    a, b = str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")
    live = str(tmp_path / "portico.yaml")
    _generate(a, port, admin, "a")
    _generate(b, port, admin, "b")
    with open(a) as src, open(live, "w") as dst:
        dst.write(src.read())
    proc = subprocess.Popen([portico_bin, "run", "-c", live, "--log-level", "warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_ready(admin, proc)
        stop = threading.Event()
        results = {"ok": 0, "variants": set()}
        failures = []
        lock = threading.Lock()

        def client(n):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            i = 0
            while not stop.is_set():
                path = f"/svc{(n * 37 + i * 7919) % ROUTES}/item"
                i += 1
                try:
                    conn.request("GET", path)
                    resp = conn.getresponse()
                    body = resp.read()
                    if resp.status != 200 or path.encode() not in body:
                        failures.append((path, resp.status, body[:200]))
                    with lock:
                        results["ok"] += 1
                        results["variants"].add(resp.getheader("X-Variant"))
                except Exception as e:  # any connection error is a failed request
                    failures.append((path, "error", repr(e)))
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                if i % 50 == 0:  # new connections too, not only keep-alive
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.close()

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        try:
            for i in range(3):
                time.sleep(1.0)
                src = b if i % 2 == 0 else a
                with open(src) as s, open(live, "w") as d:
                    d.write(s.read())
                req = urllib.request.Request(f"http://127.0.0.1:{admin}/admin/reload",
                                             method="POST")
                with urllib.request.urlopen(req, timeout=60) as r:
                    assert r.status == 200
            time.sleep(1.0)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        assert not failures, failures[:5]
        assert results["ok"] > 100
        assert {"a", "b"} <= results["variants"], results["variants"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        err = proc.stderr.read()
        assert rc == 0, err
