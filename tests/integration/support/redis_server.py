"""A real `redis-server` for the rate-limit tests, and a tiny RESP client to look inside it.

    r = RedisServer(workdir)          # starts on a free 127.0.0.1 port, waits for PING
    r.command("SET", "k", "v")        # -> "OK"; errors raise RedisReplyError
    r.kill()                          # SIGKILL: a crash (nothing is persisted: --save "")
    r.start()                         # again, on the same port, empty
    r.pause(); r.resume()             # SIGSTOP / SIGCONT: a Redis that hangs
    r.close()                         # SIGKILL for good (also done by the watchdog, and by the
                                      # kernel if the test process dies: PR_SET_PDEATHSIG)

Only 127.0.0.1, stopped by PID. `password=` sets `requirepass` (and the client sends AUTH).
Start and restart it from the test's main thread: PR_SET_PDEATHSIG fires when the *thread* that
started the server ends, so a server started from a helper thread dies with that thread.
"""
import ctypes
import errno
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time

from . import util

REDIS_SERVER = os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")
MAX_LIFETIME = 900.0  # seconds; a forgotten server is killed by the watchdog after this

_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when the process that started it goes away."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:  # noqa: BLE001 - best effort; the watchdog still bounds the lifetime
        pass


class RedisReplyError(Exception):
    """An error reply (-ERR ..., -WRONGPASS ..., -NOAUTH ...)."""


# ----- RESP ------------------------------------------------------------------------------------
def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, bytes):
            b = a
        else:
            b = str(a).encode("utf-8")
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class _Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("redis closed the connection")
            self.buf += data

    def _exact(self, n):
        while len(self.buf) < n + 2:
            data = self.sock.recv(max(65536, n + 2 - len(self.buf)))
            if not data:
                raise ConnectionError("redis closed the connection")
            self.buf += data
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        """One parsed reply: str (simple and bulk strings), int, None, list, RedisReplyError.

        Errors nested in arrays (EXEC) are returned as RedisReplyError objects."""
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode("utf-8", "replace")
        if kind == b"-":
            return RedisReplyError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            return self._exact(n).decode("utf-8", "surrogateescape")
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self.reply() for _ in range(n)]
        raise ValueError(f"unexpected RESP reply {line[:80]!r}")


class RespConnection:
    """One connection to Redis (AUTH first when a password is given)."""

    def __init__(self, port, password=None, timeout=2.0, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.reader = _Reader(self.sock)
        if password is not None:
            self.command("AUTH", password)

    def command(self, *args):
        self.sock.sendall(encode(*args))
        r = self.reader.reply()
        if isinstance(r, RedisReplyError):
            raise r
        return r

    def raw(self, *args):
        """Like command() but returns an error reply instead of raising it."""
        self.sock.sendall(encode(*args))
        return self.reader.reply()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ----- the server ------------------------------------------------------------------------------
class RedisServer:
    def __init__(self, workdir=None, password=None, port=None, max_lifetime=MAX_LIFETIME,
                 start=True):
        if not os.access(REDIS_SERVER, os.X_OK):
            raise RuntimeError(f"{REDIS_SERVER} not found (apt-get install redis-server)")
        self.workdir = workdir or tempfile.mkdtemp(prefix="redis-")
        os.makedirs(self.workdir, exist_ok=True)
        self.password = password
        self.port = port
        self._fixed_port = port is not None
        self.proc = None
        self.paused = False
        self.closed = False
        self.starts = 0
        self.log_path = os.path.join(self.workdir, "redis.log")
        self._watchdog = threading.Timer(max_lifetime, self._expire)
        self._watchdog.daemon = True
        self._watchdog.start()
        self._log_offset = 0
        if start:
            self.start()
        elif self.port is None:
            self.port = util.free_port()  # chosen now, started later on this port
            self._fixed_port = True

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # ----- lifecycle -----
    def _argv(self):
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--dir", self.workdir, "--logfile", self.log_path,
                "--databases", "1", "--protected-mode", "yes"]
        if self.password is not None:
            argv += ["--requirepass", self.password]
        return argv

    def start(self, timeout=5.0):
        """Starts redis-server (again, on the same port once it has one) and waits for PING."""
        if self.closed:
            raise RuntimeError("this Redis was closed")
        if self.running():
            return
        same_port = self._fixed_port or self.starts > 0
        for _ in range(3):
            if self.port is None:
                self.port = util.free_port()
            try:
                self._spawn(timeout, retry_in_use=same_port)
                self.starts += 1
                return
            except RuntimeError as e:
                if same_port or "in use" not in str(e):
                    raise
                self.port = None  # a free port was taken meanwhile: pick another
        raise RuntimeError("redis-server found no free port")

    def _spawn(self, timeout, retry_in_use):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._log_offset = os.path.getsize(self.log_path)
            except OSError:
                self._log_offset = 0
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(self._argv(), stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
                                             cwd=self.workdir)
            self.paused = False
            err = self._wait_ping(deadline)
            if err is None:
                return
            self._reap()
            # A restart right after a kill may find the port still held: try again until the
            # deadline when the port must stay the same.
            if retry_in_use and "in use" in err and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            raise RuntimeError(f"redis-server did not start on port {self.port}: {err}")

    def _wait_ping(self, deadline):
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_tail()
                if "Address already in use" in tail or "EADDRINUSE" in tail:
                    return "address in use\n" + tail
                return f"exited with {self.proc.returncode}\n{tail}"
            try:
                if self.command("PING", timeout=0.5) == "PONG":
                    return None
            except (OSError, RedisReplyError, ConnectionError):
                pass
            time.sleep(0.02)
        return "no PONG in time\n" + self.log_tail()

    def log_tail(self, n=4000):
        """The end of what the current (last started) process logged."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                return f.read().decode("utf-8", "replace")[-n:]
        except OSError:
            return ""

    def _reap(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.paused = False

    def kill(self):
        """SIGKILL by PID: a crash. start() brings it back on the same port, empty."""
        self._reap()

    def stop(self):
        self._reap()

    def restart(self, timeout=5.0):
        self.kill()
        self.start(timeout)

    def pause(self):
        """SIGSTOP: the kernel still accepts connections and buffers commands; nothing answers."""
        if self.running():
            os.kill(self.proc.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self):
        if self.proc is not None and self.proc.poll() is None and self.paused:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def close(self):
        self.closed = True
        self._watchdog.cancel()
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)  # harmless if not stopped
            except ProcessLookupError:
                pass
        self._reap()

    def _expire(self):
        # The watchdog: a server left behind by a broken test does not outlive its bound.
        if not self.closed:
            self._reap()

    # ----- talking to it -----
    def connect(self, timeout=2.0):
        return RespConnection(self.port, self.password, timeout)

    def command(self, *args, timeout=2.0):
        """One command on a fresh connection; the parsed reply (error replies raise)."""
        with self.connect(timeout) as c:
            return c.command(*args)

    def keys(self, pattern="*"):
        return sorted(self.command("KEYS", pattern) or [])

    def dbsize(self):
        return self.command("DBSIZE")

    def flushall(self):
        return self.command("FLUSHALL")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RedisFactory:
    """For fixtures: redis(password=None) -> a started RedisServer; close() kills them all."""

    def __init__(self, tmpdir_fn):
        self.tmpdir_fn = tmpdir_fn
        self.servers = []

    def __call__(self, **kw):
        r = RedisServer(self.tmpdir_fn(), **kw)
        self.servers.append(r)
        return r

    def close(self):
        for r in self.servers:
            r.close()
        self.servers = []


def port_is_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError as e:
        return e.errno != errno.EADDRINUSE
    finally:
        s.close()
