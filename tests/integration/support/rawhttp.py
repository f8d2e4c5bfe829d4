"""Raw-socket HTTP/1.1 client helpers: send exact bytes, read and parse responses."""
import json
import socket
import time


class IncompleteResponse(Exception):
    """The connection ended (or timed out) before a complete response was read."""

    def __init__(self, message, data=b""):
        super().__init__(message)
        self.data = data


class Response:
    def __init__(self, version, status, reason, headers, body, interim=None, raw_head=b""):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) as received
        self.body = body
        self.interim = interim or []  # 1xx responses seen before this one: list of status codes
        self.raw_head = raw_head

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def has_header(self, name):
        return bool(self.header_all(name))

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return (f"<Response {self.status} {self.reason!r} headers={self.headers!r} "
                f"body={self.body[:300]!r}>")


def _parse_head(head):
    lines = head.split(b"\r\n")
    status_line = lines[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"bad status line {status_line!r}")
    version, status = parts[0], int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise ValueError(f"bad header line {line!r}")
        headers.append((name, value.strip(" \t")))
    return version, status, reason, headers


def _chunked_end(buf, start):
    """Returns (body, end_offset) for a complete chunked body at buf[start:], or None."""
    pos = start
    body = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_text = buf[pos:eol].split(b";", 1)[0].strip()
        size = int(size_text, 16)
        pos = eol + 2
        if size == 0:
            # Trailers, then an empty line.
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                line = buf[pos:eol]
                pos = eol + 2
                if not line:
                    return bytes(body), pos
        if len(buf) < pos + size + 2:
            return None
        body += buf[pos:pos + size]
        pos += size + 2


def parse_one(buf, method="GET", eof=False):
    """Parses one response (skipping 1xx) from the start of buf.

    Returns (Response, consumed) or None when more bytes are needed. With eof=True a body
    delimited by the connection close is taken whole.
    """
    interim = []
    offset = 0
    while True:
        end = buf.find(b"\r\n\r\n", offset)
        if end < 0:
            return None
        head = buf[offset:end]
        version, status, reason, headers = _parse_head(head)
        body_start = end + 4
        if 100 <= status < 200 and status != 101:
            interim.append(status)
            offset = body_start
            continue
        break
    lower = {}
    for k, v in headers:
        lower.setdefault(k.lower(), []).append(v)
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return Response(version, status, reason, headers, b"", interim, head), body_start
    te = ",".join(lower.get("transfer-encoding", [])).lower()
    if "chunked" in te:
        got = _chunked_end(buf, body_start)
        if got is None:
            return None
        body, consumed = got
        return Response(version, status, reason, headers, body, interim, head), consumed
    if "content-length" in lower:
        n = int(lower["content-length"][0])
        if len(buf) < body_start + n:
            return None
        return (Response(version, status, reason, headers, bytes(buf[body_start:body_start + n]),
                         interim, head), body_start + n)
    if not eof:
        return None
    return Response(version, status, reason, headers, bytes(buf[body_start:]), interim, head), len(buf)


def parse_all(data, methods=None):
    """Parses every complete response in data (read until the connection closed)."""
    out = []
    pos = 0
    i = 0
    while pos < len(data):
        method = methods[i] if methods and i < len(methods) else "GET"
        got = parse_one(data[pos:], method, eof=True)
        if got is None:
            break
        resp, consumed = got
        out.append(resp)
        pos += consumed
        i += 1
    return out


class RawConn:
    """One TCP connection to the gateway; every operation has a timeout."""

    def __init__(self, port, timeout=5.0, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.buf = b""
        self.eof = False

    @classmethod
    def from_socket(cls, sock, timeout=5.0):
        """Wraps an already connected socket."""
        self = cls.__new__(cls)
        sock.settimeout(timeout)
        self.sock, self.timeout, self.buf, self.eof = sock, timeout, b"", False
        return self

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _recv(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("deadline passed")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(256 * 1024)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
        return data

    def read_response(self, method="GET", timeout=None):
        """Reads exactly one response; raises IncompleteResponse if the peer closes first."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            got = parse_one(self.buf, method, eof=self.eof)
            if got is not None:
                resp, consumed = got
                self.buf = self.buf[consumed:]
                return resp
            if self.eof:
                raise IncompleteResponse("connection closed before a complete response", self.buf)
            try:
                data = self._recv(deadline)
            except socket.timeout:
                raise IncompleteResponse("timed out waiting for a response", self.buf) from None
            self.buf += data

    def read_until_close(self, timeout=None):
        """Reads everything until EOF; returns (data, closed) where closed=False means timeout."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while not self.eof:
            try:
                self.buf += self._recv(deadline)
            except socket.timeout:
                return self.buf, False
        return self.buf, True

    def wait_closed(self, timeout=None):
        """True when the peer closes within timeout (any unread data is kept in self.buf)."""
        _, closed = self.read_until_close(timeout)
        return closed

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def request_bytes(method, target, host="test.local", headers=None, body=b"", version="HTTP/1.1"):
    """Builds a well-formed request; adds Content-Length when there is a body."""
    lines = [f"{method} {target} {version}", f"Host: {host}"]
    names = set()
    for k, v in headers or []:
        lines.append(f"{k}: {v}")
        names.add(k.lower())
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exchange(port, data, method="GET", timeout=5.0):
    """Opens a connection, sends data, reads one response, closes."""
    with RawConn(port, timeout) as c:
        c.send(data)
        return c.read_response(method)


def send_and_read_all(port, data, timeout=5.0):
    """Sends data, then reads until the peer closes; returns (responses, raw bytes, closed)."""
    with RawConn(port, timeout) as c:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        raw, closed = c.read_until_close(timeout)
        return parse_all(raw), raw, closed


def chunked(pieces, trailers=b"", ext=None):
    """Encodes pieces as a chunked body."""
    out = bytearray()
    for i, p in enumerate(pieces):
        if not p:
            continue
        suffix = f";{ext}" if ext and i == 0 else ""
        out += f"{len(p):x}{suffix}\r\n".encode() + p + b"\r\n"
    out += b"0\r\n" + trailers + b"\r\n"
    return bytes(out)
