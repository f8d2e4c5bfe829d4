"""A raw HTTP/1.1 upstream that records when request body bytes arrived, for timeout tests.

Every request becomes an Exchange: its head, the decoded body with the arrival time of each
piece, when the body was complete, and when the gateway closed the connection. What it does once
the body is in is chosen by the last segment of the path:

  .../hang        never answer; wait until the gateway closes the connection
  .../stall-body  answer 200 with Content-Length 1000, send 100 bytes, then wait for the close
  anything else   200 with JSON {"path", "body_len", "body_sha256"} (keep-alive)

TimedUpstream(read=False) accepts connections and never reads from them: with a 64 KiB
SO_RCVBUF its receive window is soon full. It listens on 127.0.0.1, serves a connection for at
most `max_life` seconds, and stop() ends everything.
"""
import hashlib
import json
import socket
import threading
import time


class Exchange:
    def __init__(self, conn_id, head_at, method, target, headers):
        self.conn_id = conn_id
        self.head_at = head_at
        self.method = method
        self.target = target
        self.path = target.partition("?")[0]
        self.headers = headers  # {lower name: value}
        self.body = bytearray()
        self.arrivals = []  # (monotonic time, bytes) per piece of body read
        self.complete = False
        self.complete_at = None
        self.closed_at = None  # the gateway closed the connection (EOF or reset)

    def __repr__(self):
        return (f"<Exchange {self.method} {self.target} body={len(self.body)} "
                f"complete={self.complete} closed_at={self.closed_at}>")


class _Closed(Exception):
    pass


class TimedUpstream:
    def __init__(self, name="timed", read=True, max_life=12.0):
        self.name = name
        self.read = read
        self.max_life = max_life
        self.lock = threading.Lock()
        self.exchanges = []
        self.connections = 0
        self.stopping = threading.Event()
        self._socks = []
        self._threads = []
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if not read:  # inherited by accepted sockets: a small, fixed receive window
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._accept_thread.start()

    def snapshot(self):
        with self.lock:
            return list(self.exchanges)

    def stop(self):
        self.stopping.set()
        self.listener.close()
        self._accept_thread.join(2)
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass
        for t in self._threads:
            t.join(2)

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                conn_id = self.connections
                self._socks.append(sock)
            t = threading.Thread(target=self._serve, args=(sock, conn_id), daemon=True)
            self._threads.append(t)
            t.start()

    # ----- one connection -----------------------------------------------------------------------
    def _serve(self, sock, conn_id):
        deadline = time.monotonic() + self.max_life
        sock.settimeout(0.1)
        buf = bytearray()
        current = [None]

        def fill():
            while True:
                if self.stopping.is_set() or time.monotonic() > deadline:
                    raise _Closed()
                try:
                    data = sock.recv(256 * 1024)
                except socket.timeout:
                    continue
                except OSError:
                    data = b""
                if not data:
                    if current[0] is not None:
                        current[0].closed_at = time.monotonic()
                    raise _Closed()
                buf.extend(data)
                return

        def take(n):
            while len(buf) < n:
                fill()
            out = bytes(buf[:n])
            del buf[:n]
            return out

        def line():
            while b"\r\n" not in buf:
                fill()
            end = buf.index(b"\r\n")
            out = bytes(buf[:end])
            del buf[:end + 2]
            return out

        try:
            if not self.read:
                while not self.stopping.wait(0.1) and time.monotonic() < deadline:
                    pass
                return
            while True:
                while b"\r\n\r\n" not in buf:
                    fill()
                end = buf.index(b"\r\n\r\n")
                head = bytes(buf[:end]).decode("latin-1").split("\r\n")
                del buf[:end + 4]
                method, target, _ = head[0].split(" ", 2)
                headers = {}
                for ln in head[1:]:
                    k, _, v = ln.partition(":")
                    headers[k.strip().lower()] = v.strip()
                ex = Exchange(conn_id, time.monotonic(), method, target, headers)
                current[0] = ex
                with self.lock:
                    self.exchanges.append(ex)

                def piece(data, ex=ex):
                    ex.body.extend(data)
                    ex.arrivals.append((time.monotonic(), len(data)))

                if "chunked" in headers.get("transfer-encoding", "").lower():
                    while True:
                        size = int(line().split(b";")[0].strip(), 16)
                        if size == 0:
                            while line():
                                pass
                            break
                        while size:
                            if not buf:
                                fill()
                            n = min(size, len(buf))
                            piece(take(n))
                            size -= n
                        take(2)
                else:
                    left = int(headers.get("content-length", "0"))
                    while left:
                        if not buf:
                            fill()
                        n = min(left, len(buf))
                        piece(take(n))
                        left -= n
                ex.complete = True
                ex.complete_at = time.monotonic()
                last = ex.path.rsplit("/", 1)[-1]
                if last in ("hang", "stall-body"):
                    if last == "stall-body":
                        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
                    while True:
                        fill()  # until the gateway closes (or the lifetime ends)
                body = json.dumps({"path": ex.path, "body_len": len(ex.body),
                                   "body_sha256": hashlib.sha256(ex.body).hexdigest()}).encode()
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(body) + body)
        except (_Closed, OSError, ValueError):
            return
        finally:
            try:
                sock.close()
            except OSError:
                pass
