"""An upstream that keeps the exact bytes each connection sent it, for tests about what reaches
the upstream on the wire (chunk extensions, trailers, smuggled requests).

It answers `200 ok` (Content-Length 2, Connection: close) once a request looks complete: a
head without a body, a Content-Length body, or a chunked body up to its last chunk and final
CRLF. It listens on 127.0.0.1, serves each connection for at most 10 s, and stops when asked.
"""
import re
import socket
import threading
import time

_CHUNKED_END = re.compile(rb"(^|\r\n)0(;[^\r\n]*)?\r\n(([^\r\n]+\r\n)*)\r\n")


def _complete(data):
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    head = data[:head_end].lower()
    body = data[head_end + 4:]
    if b"transfer-encoding: chunked" in head:
        return _CHUNKED_END.search(body) is not None
    m = re.search(rb"content-length: *(\d+)", head)
    return len(body) >= (int(m.group(1)) if m else 0)


class RawUpstream:
    def __init__(self):
        self.lock = threading.Lock()
        self.received = []  # bytes per connection, in accept order
        self.stopping = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def all_bytes(self):
        with self.lock:
            return b"".join(bytes(b) for b in self.received)

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            buf = bytearray()
            with self.lock:
                self.received.append(buf)
            threading.Thread(target=self._serve, args=(sock, buf), daemon=True).start()

    def _serve(self, sock, buf):
        deadline = time.monotonic() + 10
        sock.settimeout(0.2)
        try:
            while not self.stopping.is_set() and time.monotonic() < deadline:
                try:
                    data = sock.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    return
                with self.lock:
                    buf += data
                if _complete(bytes(buf)):
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                    return
        except OSError:
            return
        finally:
            sock.close()

    def stop(self):
        self.stopping.set()
        self.listener.close()
        self._thread.join(2)
