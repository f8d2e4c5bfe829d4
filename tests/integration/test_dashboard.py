"""The admin dashboard (GET / on the admin address): one self-contained page, rendered by
headless Chromium from /admin/stats and /admin/upstreams."""
import fcntl
import html.parser
import http.client
import json
import os
import re
import select
import shutil
import signal
import subprocess
import time

import pytest

from support import gateway as gw
from support import util

TOKEN = "dash-t0ken-0123456789"
DASH = "\u2013"

# Chromium talks to loopback only: every host name fails to resolve but 127.0.0.1.
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-extensions"]
CHROMIUM_TIMEOUT = 60 * max(1.0, util.SLACK / 2)


@pytest.fixture(scope="session")
def chromium():
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("chromium is not installed (scripts/install-deps installs it)")
    return path


def admin_get(g, path, token=None):
    """(status, headers, body bytes) of one GET on the admin address; token=None sends none."""
    c = http.client.HTTPConnection("127.0.0.1", g.admin_port, timeout=5)
    try:
        c.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        r = c.getresponse()
        return r.status, r.headers, r.read()
    finally:
        c.close()


def _stop_group(proc):
    """Kills what is left of the process group this test started for Chromium."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=10)


def dump_dom(chromium, url, profile_dir, budget_ms=8000):
    """The DOM after `budget_ms` of virtual time: enough for the load and several 2 s polls
    (virtual time does not advance while a fetch is pending)."""
    proc = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}",
                             f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=CHROMIUM_TIMEOUT)
    except subprocess.TimeoutExpired:
        _stop_group(proc)
        pytest.fail(f"chromium --dump-dom did not finish in {CHROMIUM_TIMEOUT}s")
    finally:
        _stop_group(proc)
    assert proc.returncode == 0, err.decode("utf-8", "replace")[-3000:]
    return out.decode("utf-8")


class Tables(html.parser.HTMLParser):
    """The rows of every table by table id: [{"attrs": {...}, "cells": {class: text}}]."""

    def __init__(self, text):
        super().__init__()
        self.tables = {}
        self._rows = self._row = self._cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._rows = self.tables.setdefault(a.get("id", ""), [])
        elif tag == "tr" and self._rows is not None:
            self._row = {"attrs": a, "cells": {}}
        elif tag == "td" and self._row is not None:
            self._cell = ((a.get("class") or "").split(), [])

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1].append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            for cls in self._cell[0]:
                self._row["cells"][cls] = "".join(self._cell[1]).strip()
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self._rows.append(self._row)
            self._row = None
        elif tag == "table":
            self._rows = None

    def rows(self, table, attr):
        """{attrs[attr]: cells} for the rows of `table` that have `attr`."""
        return {r["attrs"][attr]: r for r in self.tables.get(table, []) if attr in r["attrs"]}


def quantile(q, bounds, counts):
    """histogram_quantile over per-bucket counts, as the page computes it."""
    total = sum(counts)
    rank = q * total
    below = 0
    for i, c in enumerate(counts):
        if c > 0 and below + c >= rank:
            if i == len(bounds):
                return bounds[-1]
            lo = bounds[i - 1] if i else 0.0
            return lo + (bounds[i] - lo) * (rank - below) / c
        below += c
    return bounds[-1]


def two_route_gateway(gateway, upstreams, **admin):
    a, b = upstreams("a"), upstreams("b")
    routes = [gw.route("alpha", {"path_prefix": "/alpha"}, "ua"),
              gw.route("beta", {"path_prefix": "/beta"}, "ub", rewrite={"strip_prefix": True})]
    cfg = gw.config(routes, {"ua": gw.up(a), "ub": gw.up(b)})
    cfg["admin"].update(admin)
    return cfg, a, b


# ----- the page itself -----------------------------------------------------------------------
def test_page_is_self_contained_html(gateway, upstream, repo_dir):
    g = gateway(gw.config([gw.route("all", {"path_prefix": "/"}, "u")], {"u": gw.up(upstream)}))
    status, headers, body = admin_get(g, "/")
    assert status == 200, body[:500]
    assert headers.get("Content-Type", "").startswith("text/html"), headers
    text = body.decode("utf-8")
    with open(os.path.join(repo_dir, "src", "admin", "dashboard.html"), encoding="utf-8") as f:
        assert text == f.read(), "GET / is not src/admin/dashboard.html as written"
    lower = text.lower()
    assert "<!doctype html>" in lower and "<script>" in lower and "<style>" in lower
    assert "http://" not in lower and "https://" not in lower
    assert "<link" not in lower and "@import" not in lower and "url(" not in lower
    assert not re.search(r"<script[^>]*\ssrc\s*=", lower)
    for m in re.finditer(r"""\s(?:src|href|action|formaction)\s*=\s*["']?([^"'\s>]*)""", lower):
        assert not re.match(r"([a-z][a-z0-9+.-]*:|//)", m.group(1)), m.group(0)
    assert ")PORTICO_HTML" not in text
    # The page's own requests are root-relative.
    assert "/admin/stats" in text and "/admin/upstreams" in text
    assert 'cache: "no-store"' in text and "sessionStorage" in text
    assert admin_get(g, "/nope.html")[0] == 404


def test_token_guards_the_data_not_the_page(gateway, upstreams):
    cfg, _, _ = two_route_gateway(gateway, upstreams, token="${ADMIN_TOKEN}")
    g = gateway(cfg, env={"ADMIN_TOKEN": TOKEN}, admin_token=TOKEN)
    status, headers, body = admin_get(g, "/")
    assert status == 200 and headers.get("Content-Type", "").startswith("text/html")
    assert TOKEN.encode() not in body
    for path in ("/admin/stats", "/admin/upstreams"):
        for token in (None, "wrong"):
            status, _, body = admin_get(g, path, token)
            assert status == 401, (path, token, body[:300])
            assert b'"alpha"' not in body and b'"ua"' not in body
        status, headers, body = admin_get(g, path, TOKEN)
        assert status == 200, (path, body[:300])
        assert headers.get("Content-Type", "").startswith("application/json")
        json.loads(body)


# ----- rendered by Chromium --------------------------------------------------------------------
def test_dashboard_renders_routes_and_upstreams(gateway, upstreams, chromium, tmp_path):
    cfg, a, b = two_route_gateway(gateway, upstreams)
    g = gateway(cfg)
    for i in range(7):
        assert g.request("GET", f"/alpha/{i}")[0] == 200
    for _ in range(3):
        assert g.request("GET", "/beta/status/404")[0] == 404
    for _ in range(2):
        assert g.request("GET", "/no-route-here")[0] == 404

    # The API first, so that a wrong count is pinned on the gateway, not on the page.
    status, stats = g.admin("GET", "/admin/stats")
    assert status == 200, stats
    api = {r["name"]: r for r in stats["routes"]}
    expected = {"alpha": (7, 0), "beta": (3, 3), "(none)": (2, 2)}
    for name, (requests, e4) in expected.items():
        assert name in api, stats
        assert (api[name]["requests"], api[name]["errors_4xx"]) == (requests, e4), api[name]

    dom = dump_dom(chromium, f"{g.admin_url}/", tmp_path / "profile")
    t = Tables(dom)
    routes = t.rows("routes", "data-route")
    assert set(expected) <= set(routes), dom
    for name, (requests, e4) in expected.items():
        cells = routes[name]["cells"]
        assert cells["requests"] == str(requests), (name, cells)
        assert cells["errors-4xx"] == str(e4), (name, cells)
        assert cells["errors-5xx"] == "0", (name, cells)
        # No traffic between the polls: a rate of 0 (so at least two polls happened).
        assert float(cells["rate"]) == 0.0, (name, cells)
        # No traffic in the interval either: the quantiles come from the cumulative counts.
        for q, cls in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            want = quantile(q, stats["duration_bounds"], api[name]["duration_counts"]) * 1000
            got = float(cells[cls])
            assert got == pytest.approx(want, rel=0.05, abs=0.01), (name, cls, cells, want)
    assert float(routes["beta"]["cells"]["error-rate"]) == 100.0
    assert float(routes["alpha"]["cells"]["error-rate"]) == 0.0

    ups = t.rows("upstreams", "data-endpoint")
    for up, name, requests in ((a, "ua", 7), (b, "ub", 3)):
        row = ups.get(up.address)
        assert row is not None, dom
        assert row["attrs"]["data-upstream"] == name
        cells = row["cells"]
        assert cells["address"] == up.address
        assert cells["state"] == "healthy" and "state-healthy" in cells, cells
        assert cells["requests"] == str(requests) and cells["failures"] == "0", cells
        assert cells["in-flight"] == "0", cells
        assert cells["circuit"] == "closed", cells

    assert "Last updated" in dom
    assert re.search(r'<p id="error"[^>]*\shidden', dom), "the error line is shown"
    assert re.search(r'<form id="auth"[^>]*\shidden', dom), "the token form is shown"
    g.assert_healthy()


class DevTools:
    """Chromium driven over --remote-debugging-pipe (fd 3 in, fd 4 out, NUL-framed JSON)."""

    def __init__(self, chromium, profile_dir):
        to_r, self._to_w = os.pipe()
        self._from_r, from_w = os.pipe()

        def child_fds():
            # Above 4 first: a pipe end may itself be fd 3 or 4.
            high_r = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10)
            high_w = fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)
        self.proc = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}",
             "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=child_fds, pass_fds=(3, 4), start_new_session=True)
        os.close(to_r)
        os.close(from_w)
        self._buf = b""
        self._id = 0
        self.session = None

    def call(self, method, params=None, timeout=20):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if self.session:
            msg["sessionId"] = self.session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    assert "error" not in reply, (method, reply)
                    return reply["result"]
            left = deadline - time.monotonic()
            assert left > 0, f"no DevTools answer to {method} in {timeout}s"
            if select.select([self._from_r], [], [], left)[0]:
                data = os.read(self._from_r, 1 << 20)
                assert data, "chromium closed the DevTools pipe"
                self._buf += data

    def open(self, url):
        target = self.call("Target.createTarget", {"url": url})["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]

    def js(self, expression):
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return r["result"].get("value")

    def wait(self, expression, timeout=15.0):
        return util.wait_until(lambda: self.js(expression), timeout * util.SLACK, interval=0.1,
                               message=expression)

    def close(self):
        for fd in (self._to_w, self._from_r):
            os.close(fd)
        _stop_group(self.proc)


def test_dashboard_asks_for_the_token_and_reports_an_unreachable_api(
        gateway, upstreams, chromium, tmp_path):
    cfg, _, _ = two_route_gateway(gateway, upstreams, token="${ADMIN_TOKEN}")
    g = gateway(cfg, env={"ADMIN_TOKEN": TOKEN}, admin_token=TOKEN)
    for i in range(4):
        assert g.request("GET", f"/alpha/{i}")[0] == 200
    browser = DevTools(chromium, tmp_path / "profile")
    try:
        browser.open(f"{g.admin_url}/")
        browser.wait("!document.getElementById('auth').hidden")
        assert browser.js("document.querySelectorAll('#routes tr[data-route]').length") == 0
        submit = ("document.getElementById('token').value = {};"
                  "document.getElementById('auth').requestSubmit(); true")
        browser.js(submit.format(json.dumps("not-the-token")))
        browser.wait("document.getElementById('auth-msg').textContent.includes('refused')")
        browser.js(submit.format(json.dumps(TOKEN)))
        cell = "document.querySelector('#routes tr[data-route=\"alpha\"] td.requests')"
        assert browser.wait(f"{cell} && {cell}.textContent") == "4"
        assert browser.js("document.getElementById('auth').hidden") is True
        assert browser.js("sessionStorage.getItem('portico.adminToken')") == TOKEN
        # Requests keep arriving: the rate column turns into a number on a later poll.
        for i in range(5):
            assert g.request("GET", f"/alpha/x{i}")[0] == 200
        assert browser.wait(f"{cell}.textContent === '9'")
        rate = "document.querySelector('#routes tr[data-route=\"alpha\"] td.rate').textContent"
        assert browser.js(rate) != DASH

        g.stop()
        text = browser.wait("!document.getElementById('error').hidden && "
                            "document.getElementById('error').textContent")
        assert "Cannot reach the admin API" in text, text
        # The last data stays on the page.
        assert browser.js(f"{cell}.textContent") == "9"
    finally:
        browser.close()
