"""A real HTTP/1.1 upstream, in-process, raw sockets, one thread per connection.

It records every request it receives (method, target, headers in order, body size, SHA-256 and
the first 64 KiB) and counts accepted TCP connections. What it answers is chosen by the path:

  /close            read the request, close without answering
  /reset            read the request, close with RST
  /invalid          answer with two different Content-Length headers
  /bad-response/X  one of BAD_RESPONSES, then close
  /garbage          answer with bytes that are not HTTP
  /truncate         promise 1000 bytes, send 100, close (data and FIN in one segment)
  /truncate-late    the same, but close 200 ms after the data
  /eof-body         a body delimited by the connection close (data and FIN in one segment)
  /eof-body-late    the same, the close 200 ms after the data
  /hang             never answer (until the server stops or 60 s pass)
  /slow/MS[/...]    sleep MS milliseconds, then echo
  /bytes/N          N bytes of util.pattern_chunks; ?chunked=1 chunked; ?pause_ms=X after 1 MiB
  /chunked          a chunked response: "hello " "chunked " "world"
  /chunked-trailers a chunked response "with trailers" and a trailer field
  /interim          a 103 Early Hints, then the echo
  /own-request-id   a response carrying its own X-Request-Id
  /early            answer before reading the request body, then close
  /status/CODE      that status with a small body
  /hop              a response carrying hop-by-hop headers
  /close-after      answer (keep-alive), then close the idle connection 50 ms later
  /upload?pause_ms=X   the body is read slowly: a pause after the first MiB
  anything else     echo: JSON of the request as received
"""
import hashlib
import json
import socket
import threading
import time
import urllib.parse

from . import util

KEEP_BODY = 64 * 1024

# Invalid or ambiguous responses, served at /bad-response/NAME; the gateway must answer 502.
BAD_RESPONSES = {
    "two-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "two-cl-equal": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    "cl-and-te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"5\r\nhello\r\n0\r\n\r\n",
    "cl-negative": b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello",
    "cl-non-numeric": b"HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\nhello",
    "te-unknown": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "bad-status": b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    "bad-version": b"HTTP/9.9 200 OK\r\nContent-Length: 0\r\n\r\n",
    "no-colon": b"HTTP/1.1 200 OK\r\nBroken header line\r\nContent-Length: 0\r\n\r\n",
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n",
    "nul-header": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
    "space-before-colon": b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
    "bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
    "empty": b"\r\n\r\n",
}


class Recorded:
    def __init__(self, conn_id, method, target, version, headers):
        self.conn_id = conn_id
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        path, _, query = target.partition("?")
        self.path = path
        self.query = query
        self.body = b""  # the first 64 KiB
        self.body_len = 0
        self.body_sha256 = hashlib.sha256(b"").hexdigest()
        self.complete = False  # the whole body was read
        self.time = time.monotonic()

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def header_names(self):
        return [k.lower() for k, _ in self.headers]

    def __repr__(self):
        return f"<Recorded {self.method} {self.target} {self.headers!r} body_len={self.body_len}>"


class _Closed(Exception):
    pass


class Upstream:
    def __init__(self, name="up"):
        self.name = name
        self.lock = threading.Lock()
        self.requests = []
        self.connections = 0
        self.open_connections = 0
        self.max_open_connections = 0
        self.closed_by_peer = 0  # connections the gateway closed (EOF between requests)
        self.stopping = threading.Event()
        self._socks = set()
        self._threads = []
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(512)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True,
                                               name=f"upstream-{name}")
        self._accept_thread.start()

    # ----- inspection -------------------------------------------------------------------------
    def count(self):
        with self.lock:
            return len(self.requests)

    def snapshot(self):
        with self.lock:
            return list(self.requests)

    def last(self):
        with self.lock:
            return self.requests[-1] if self.requests else None

    def since(self, n):
        with self.lock:
            return list(self.requests[n:])

    def connection_count(self):
        with self.lock:
            return self.connections

    def wait_for_requests(self, n, timeout=5.0):
        util.wait_until(lambda: self.count() >= n, timeout, message=f"{n} upstream requests")

    # ----- lifecycle --------------------------------------------------------------------------
    def stop(self):
        self.stopping.set()
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        self._accept_thread.join(timeout=5)
        for t in list(self._threads):
            t.join(timeout=5)

    def _accept_loop(self):
        conn_id = 0
        while not self.stopping.is_set():
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn_id += 1
            with self.lock:
                self.connections += 1
                self.open_connections += 1
                self.max_open_connections = max(self.max_open_connections, self.open_connections)
                self._socks.add(sock)
            t = threading.Thread(target=self._serve, args=(sock, conn_id), daemon=True)
            self._threads = [x for x in self._threads if x.is_alive()]
            self._threads.append(t)
            t.start()

    # ----- one connection ---------------------------------------------------------------------
    def _serve(self, sock, conn_id):
        sock.settimeout(30)
        reader = _Reader(sock, self.stopping)
        try:
            while not self.stopping.is_set():
                head = reader.read_head()
                if head is None:
                    with self.lock:
                        self.closed_by_peer += 1
                    return
                keep = self._handle(sock, reader, conn_id, head)
                if not keep:
                    return
        except (_Closed, OSError, ValueError):
            return
        finally:
            with self.lock:
                self._socks.discard(sock)
                self.open_connections -= 1
            try:
                sock.close()
            except OSError:
                pass

    def _handle(self, sock, reader, conn_id, head):
        lines = head.split(b"\r\n")
        method, target, version = lines[0].decode("latin-1").split(" ", 2)
        headers = []
        for line in lines[1:]:
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name, value.strip(" \t")))
        rec = Recorded(conn_id, method, target, version, headers)
        query = urllib.parse.parse_qs(rec.query)
        with self.lock:
            self.requests.append(rec)

        if rec.path == "/early":
            # Answer at once without reading the request body, then close.
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nearly\n")
            return False
        if (rec.header("expect") or "").lower() == "100-continue":
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        pause_ms = int(query.get("pause_ms", ["0"])[0]) if rec.path == "/upload" else 0
        self._read_body(reader, rec, pause_ms)
        rec.complete = True

        conn_hdr = (rec.header("connection") or "").lower()
        keep = version == "HTTP/1.1" and "close" not in conn_hdr
        path = rec.path
        if path == "/close":
            return False
        if path == "/reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return False
        if path == "/invalid":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
            return False
        if path.startswith("/bad-response/"):
            sock.sendall(BAD_RESPONSES[path.split("/")[2]])
            return False
        if path == "/garbage":
            sock.sendall(b"THIS IS NOT HTTP\r\n\r\n")
            return False
        if path in ("/truncate", "/truncate-late"):
            if path == "/truncate":
                # Corked: the data and the FIN leave in one segment, arriving together.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
            if path == "/truncate-late":
                time.sleep(0.2)  # the close comes separately from the data
            return False
        if path in ("/eof-body", "/eof-body-late"):
            # No Content-Length, no chunking: the body ends when the connection closes.
            if path == "/eof-body":
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         b"Connection: close\r\n\r\n" + b"until-eof " * 100)
            if path == "/eof-body-late":
                time.sleep(0.2)
            return False
        if path == "/hang":
            self.stopping.wait(60)
            return False
        if path.startswith("/slow/"):
            ms = int(path.split("/")[2])
            if self.stopping.wait(ms / 1000.0):
                return False
            return self._echo(sock, rec, keep)
        if path.startswith("/bytes/"):
            n = int(path.split("/")[2])
            return self._send_bytes(sock, n, query, keep, rec.method == "HEAD")
        if path == "/chunked":
            body = b"6\r\nhello \r\n8;ext=1\r\nchunked \r\n5\r\nworld\r\n0\r\n\r\n"
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n" + body)
            return keep
        if path == "/chunked-trailers":
            sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
                         b"4\r\nwith\r\n9\r\n trailers\r\n0\r\nX-Sum: 42\r\n\r\n")
            return keep
        if path == "/interim":
            sock.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
            return self._echo(sock, rec, keep)
        if path == "/own-request-id":
            body = b"rid"
            sock.sendall(b"HTTP/1.1 200 OK\r\nX-Request-Id: from-upstream\r\n"
                         b"Content-Length: 3\r\n\r\n" + body)
            return keep
        if path.startswith("/status/"):
            code = int(path.split("/")[2])
            body = b"" if code in (204, 304) else f"status {code}\n".encode()
            close = query.get("close") == ["1"]
            head = f"HTTP/1.1 {code} Whatever\r\nX-Upstream-Name: {self.name}\r\n"
            if code not in (204, 304):
                head += f"Content-Length: {len(body)}\r\n"
            if close:
                head += "Connection: close\r\n"
            sock.sendall(head.encode() + b"\r\n" + body)
            return keep and not close
        if path == "/hop":
            body = b"hop\n"
            sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop-Custom\r\n"
                         b"X-Hop-Custom: secret\r\nKeep-Alive: timeout=5\r\n"
                         b"Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nTrailer: X-T\r\n"
                         b"X-End-To-End: kept\r\nContent-Length: 4\r\n\r\n" + body)
            return keep
        if path == "/close-after":
            self._echo(sock, rec, True)
            time.sleep(0.05)
            return False
        return self._echo(sock, rec, keep)

    def _read_body(self, reader, rec, pause_ms):
        te = ",".join(rec.header_all("transfer-encoding")).lower()
        h = hashlib.sha256()
        kept = bytearray()
        total = 0
        paused = False

        def take(data):
            nonlocal total, paused
            h.update(data)
            if len(kept) < KEEP_BODY:
                kept.extend(data[:KEEP_BODY - len(kept)])
            total += len(data)
            rec.body_len = total
            if pause_ms and not paused and total >= 1 << 20:
                paused = True
                time.sleep(pause_ms / 1000.0)

        if "chunked" in te:
            while True:
                line = reader.read_line()
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while reader.read_line():
                        pass
                    break
                reader.read_exact(size, take)
                if reader.read_line() != b"":
                    raise ValueError("bad chunk terminator")
        else:
            cl = rec.header("content-length")
            if cl:
                reader.read_exact(int(cl), take)
        rec.body = bytes(kept)
        rec.body_len = total
        rec.body_sha256 = h.hexdigest()

    def _echo(self, sock, rec, keep):
        payload = {
            "upstream": self.name,
            "method": rec.method,
            "target": rec.target,
            "path": rec.path,
            "query": rec.query,
            "version": rec.version,
            "headers": rec.headers,
            "body_len": rec.body_len,
            "body_sha256": rec.body_sha256,
            "body": rec.body.decode("latin-1"),
            "conn": rec.conn_id,
        }
        body = json.dumps(payload).encode()
        head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nX-Upstream-Name: {self.name}\r\n"
                f"X-Remove-Me: secret\r\nServer: test-upstream\r\n")
        if not keep:
            head += "Connection: close\r\n"
        sock.sendall(head.encode() + b"\r\n" + body)
        return keep

    def _send_bytes(self, sock, n, query, keep, head_only=False):
        chunked = query.get("chunked") == ["1"]
        pause_ms = int(query.get("pause_ms", ["0"])[0])
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {n}\r\n"
        if not keep:
            head += "Connection: close\r\n"
        sock.sendall(head.encode() + b"\r\n")
        if head_only:
            return keep
        sent = 0
        paused = False
        for piece in util.pattern_chunks(n):
            if self.stopping.is_set():
                return False
            if chunked:
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            else:
                sock.sendall(piece)
            sent += len(piece)
            if pause_ms and not paused and sent >= 1 << 20:
                paused = True
                time.sleep(pause_ms / 1000.0)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
        return keep


class _Reader:
    """Buffered reads from a socket, raising _Closed on EOF."""

    def __init__(self, sock, stopping):
        self.sock = sock
        self.buf = bytearray()
        self.stopping = stopping

    def _fill(self):
        data = self.sock.recv(256 * 1024)
        if not data:
            raise _Closed()
        self.buf += data

    def read_head(self):
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self.buf[:end])
                del self.buf[:end + 4]
                return head
            if len(self.buf) > 1 << 20:
                raise ValueError("head too large")
            try:
                self._fill()
            except _Closed:
                return None

    def read_line(self):
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[:end + 2]
                return line
            self._fill()

    def read_exact(self, n, sink):
        while n > 0:
            if not self.buf:
                self._fill()
            take = min(n, len(self.buf))
            sink(bytes(self.buf[:take]))
            del self.buf[:take]
            n -= take
