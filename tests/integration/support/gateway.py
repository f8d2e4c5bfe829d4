"""Starts the real portico binary on a generated config and talks to it."""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time

from . import util

# Things a sanitizer prints to stderr when it finds something.
_SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                      "ThreadSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")


# ----- YAML emission -------------------------------------------------------------------------
_PLAIN = re.compile(r"^[A-Za-z0-9_./@-][A-Za-z0-9_./@:-]*$")


def _scalar(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    if _PLAIN.match(s) and s.lower() not in ("true", "false", "yes", "no", "null", "on", "off",
                                             "y", "n", "~"):
        return s
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(value, indent=0):
    """Block-style YAML for dicts/lists/scalars (strings quoted when not plainly safe)."""
    pad = " " * indent
    out = []
    if isinstance(value, dict):
        if not value:
            return pad + "{}\n"
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{_scalar(k)}:\n{to_yaml(v, indent + 2)}")
            elif isinstance(v, dict):
                out.append(f"{pad}{_scalar(k)}: {{}}\n")
            elif isinstance(v, list):
                out.append(f"{pad}{_scalar(k)}: []\n")
            else:
                out.append(f"{pad}{_scalar(k)}: {_scalar(v)}\n")
        return "".join(out)
    if isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)) and item:
                inner = to_yaml(item, indent + 2)
                out.append(f"{pad}- {inner.lstrip()}")
            else:
                out.append(f"{pad}- {_scalar(item) if not isinstance(item, (dict, list)) else '{}'}\n")
        return "".join(out)
    return pad + _scalar(value) + "\n"


def route(name, match, upstream=None, **extra):
    """A route dict with `auth: public` (every route needs it)."""
    r = {"name": name, "match": match}
    if upstream is not None:
        r["upstream"] = upstream
    r.update(extra)
    r.setdefault("auth", "public")
    return r


def config(routes, upstreams, limits=None, trusted_proxies=None, admin=True, access_log=None,
           workers=1, drain_timeout="3s", extra_listeners=None, listener=None, **top):
    """A complete config dict; @PORT@ and @ADMIN@ are filled in by the launcher.

    `listener` adds keys to the main listener (e.g. {"http2": True, "tls": {...}})."""
    main = {"name": "main", "address": "127.0.0.1:@PORT@"}
    main.update(listener or {})
    listener = main
    if limits:
        listener["limits"] = limits
    if trusted_proxies:
        listener["trusted_proxies"] = trusted_proxies
    cfg = {"workers": workers, "drain_timeout": drain_timeout, "listeners": [listener]}
    for i, extra in enumerate(extra_listeners or []):
        cfg["listeners"].append(dict(extra))
    if admin:
        cfg["admin"] = {"address": "127.0.0.1:@ADMIN@"}
    cfg["access_log"] = access_log or {"path": "stdout", "format": "json"}
    cfg["upstreams"] = upstreams
    cfg["routes"] = routes
    cfg.update(top)
    return cfg


def up(*endpoints, **extra):
    """An upstream dict for Upstream objects or "host:port" strings."""
    eps = [e.address if hasattr(e, "address") else e for e in endpoints]
    d = {"endpoints": eps}
    d.update(extra)
    return d


def validate_upstream(portico_bin, tmp_path, upstream, **top):
    """`portico validate` on a config with one route to the upstream dict `upstream` (named
    "svc"); `top` adds top-level keys. Returns (CompletedProcess, the YAML, its path)."""
    cfg = config([route("r", {"path_prefix": "/"}, "svc")], {"svc": upstream}, **top)
    text = to_yaml(cfg).replace("@PORT@", "18080").replace("@ADMIN@", "19901")
    p = tmp_path / "portico.yaml"
    p.write_text(text)
    run = subprocess.run([portico_bin, "validate", "-c", str(p)], capture_output=True, text=True,
                         timeout=20, cwd=str(tmp_path))
    return run, text, str(p)


# ----- the process ---------------------------------------------------------------------------
class GatewayError(AssertionError):
    pass


class Gateway:
    def __init__(self, binary, workdir, cfg, subs=None, admin=True, env=None, name="gw",
                 start_timeout=None, admin_token=None, log_level="warn"):
        self.binary = binary
        self.workdir = workdir
        self.name = name
        self.subs = dict(subs or {})
        self.admin_enabled = admin
        self.admin_token = admin_token  # sent as Bearer on admin calls when set
        self.log_level = log_level  # --log-level; "info" shows the lines logged at info
        self.env = dict(os.environ, **(env or {}))
        self.start_timeout = start_timeout or 15.0 * max(1.0, util.SLACK / 2)
        self.proc = None
        self.stopped_by_test = False
        # Set by a test that asserts on the process's health itself (an expected-failure test
        # for a crash): the fixture then does not report the crash a second time.
        self.health_checked_by_test = False
        self.returncode = None
        self.config_path = os.path.join(workdir, f"{name}.yaml")
        self.stdout_path = os.path.join(workdir, f"{name}.stdout")
        self.stderr_path = os.path.join(workdir, f"{name}.stderr")
        self.port = None
        self.admin_port = None
        self._start(cfg)

    # ----- starting -----
    def render(self, cfg):
        text = cfg if isinstance(cfg, str) else to_yaml(cfg)
        subs = dict(self.subs, PORT=self.port, ADMIN=self.admin_port)
        for k, v in subs.items():
            text = text.replace(f"@{k}@", str(v))
        return text

    def write_config(self, cfg):
        """Writes the config file atomically (a reload never reads a half-written file)."""
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(self.render(cfg))
        os.replace(tmp, self.config_path)

    def _start(self, cfg):
        last_err = None
        for _attempt in range(3):
            self.port = self.subs.get("PORT") or util.free_port()
            self.admin_port = self.subs.get("ADMIN") or util.free_port()
            self.write_config(cfg)
            with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
                self.proc = subprocess.Popen(
                    [self.binary, "run", "-c", self.config_path, "--log-level", self.log_level],
                    stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=self.env,
                    cwd=self.workdir)
            try:
                self._wait_ready()
                return
            except GatewayError as e:
                last_err = e
                self._kill()
                if "in use" not in self.stderr() and "EADDRINUSE" not in self.stderr():
                    raise
        raise last_err

    def _wait_ready(self):
        deadline = time.monotonic() + self.start_timeout
        listening = False
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise GatewayError(f"portico exited with {self.proc.returncode} while starting;"
                                   f" stderr:\n{self.stderr()}")
            if not listening:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                    listening = True
                except OSError:
                    time.sleep(0.02)
                    continue
            if not self.admin_enabled:
                return
            try:
                status, _ = self.admin("GET", "/readyz", timeout=1.0)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise GatewayError(f"portico did not become ready in {self.start_timeout}s; stderr:\n"
                           f"{self.stderr()}")

    # ----- talking to it -----
    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self):
        return f"http://127.0.0.1:{self.admin_port}"

    def url(self, path):
        return self.base_url + path

    def admin(self, method, path, body=None, timeout=5.0, token=None):
        """Returns (status, parsed JSON or raw text). token="" sends no Authorization."""
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        token = self.admin_token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            data = r.read()
            try:
                return r.status, json.loads(data)
            except ValueError:
                return r.status, data.decode("latin-1")
        finally:
            c.close()

    def request(self, method, path, headers=None, body=None, timeout=5.0, host=None):
        """One request on a fresh http.client connection: (status, headers dict-ish, body)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            hdrs = dict(headers or {})
            if host:
                hdrs["Host"] = host
            c.request(method, path, body=body, headers=hdrs)
            r = c.getresponse()
            return r.status, r.headers, r.read()
        finally:
            c.close()

    def get_json(self, path, **kw):
        status, headers, body = self.request("GET", path, **kw)
        return status, headers, json.loads(body) if body else None

    def reload(self, cfg=None, via="admin", wait_for=None, timeout=5.0):
        """Rewrites the config (if given) and reloads it.

        via="admin": POST /admin/reload; returns (status, json).
        via="signal": SIGHUP; then polls wait_for() (or the admin config_version) until true.
        """
        if cfg is not None:
            self.write_config(cfg)
        if via == "admin":
            return self.admin("POST", "/admin/reload")
        before = self.config_version()
        self.proc.send_signal(signal.SIGHUP)
        if wait_for is not None:
            util.wait_until(wait_for, timeout, message="the reload to take effect")
        elif before is not None:
            util.wait_until(lambda: (self.config_version() or 0) > before, timeout,
                            message="config_version to change after SIGHUP")
        return None

    def config_version(self):
        if not self.admin_enabled:
            return None
        try:
            status, body = self.admin("GET", "/readyz", timeout=2.0)
        except OSError:
            return None
        if isinstance(body, dict):
            return body.get("config_version")
        return None

    # ----- logs -----
    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stdout(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def access_log_lines(self, path=None):
        """Non-empty lines of the access log (stdout unless a file path is given)."""
        p = path or self.stdout_path
        try:
            with open(p, "rb") as f:
                return [ln for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        except FileNotFoundError:
            return []

    def access_log_json(self, path=None):
        return [json.loads(ln) for ln in self.access_log_lines(path)]

    def assert_healthy(self):
        """The process is running and no sanitizer has reported anything."""
        err = self.stderr()
        assert not any(m in err for m in _SANITIZER_MARKERS), f"sanitizer report:\n{err[-5000:]}"
        assert self.alive(), f"portico exited with {self.proc.poll()}; stderr:\n{err[-5000:]}"

    # ----- stopping -----
    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=10.0):
        """SIGTERM, wait up to timeout, then SIGKILL; returns the exit code."""
        self.stopped_by_test = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill()
                raise GatewayError(f"portico did not exit within {timeout}s of SIGTERM; stderr:\n"
                                   f"{self.stderr()}")
        self.returncode = self.proc.returncode
        return self.returncode

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def finalize(self):
        """Called by the fixture: stops the process and fails loudly on a crash or bad exit."""
        died = self.proc.poll() is not None and not self.stopped_by_test
        try:
            rc = self.stop()
        except GatewayError as e:
            return str(e)
        problems = []
        if died:
            problems.append(f"portico died unexpectedly with exit code {rc}")
        elif rc != 0:
            problems.append(f"portico exited with code {rc}")
        err = self.stderr()
        if any(m in err for m in _SANITIZER_MARKERS):
            problems.append("sanitizer report on stderr")
        if problems and not self.health_checked_by_test:
            return "; ".join(problems) + f"\n--- stderr of {self.config_path} ---\n{err[-20000:]}"
        return None


class GatewayFactory:
    """Starts gateways and stops all of them at the end of the fixture's scope."""

    def __init__(self, binary, tmpdir_fn):
        self.binary = binary
        self.tmpdir_fn = tmpdir_fn
        self.gateways = []

    def __call__(self, cfg, **kw):
        workdir = self.tmpdir_fn()
        kw.setdefault("name", f"gw{len(self.gateways)}")
        g = Gateway(self.binary, workdir, cfg, **kw)
        self.gateways.append(g)
        return g

    def close(self):
        problems = []
        for g in self.gateways:
            p = g.finalize()
            if p:
                problems.append(p)
        self.gateways = []
        return problems
