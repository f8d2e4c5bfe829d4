#!/usr/bin/python3
"""The client of bench/idle-memory: opens N connections to 127.0.0.1:PORT, makes one
GET PATH on each (HTTP/1.1, h2c with prior knowledge, or HTTP/1.1 over TLS 1.3), reads the
whole response, then keeps the connection open and idle.

At most --window connections are being set up at once, so the proxy holds few upstream
connections. When every connection has its answer it prints "ready OK ERRORS", keeps the
connections open (answering what the server sends, e.g. h2 SETTINGS) until a line or EOF on
stdin or --hold seconds, then prints "closed K" (K: connections the server closed meanwhile)
and exits. Exit status 1 if a connection failed or was closed."""
import argparse
import resource
import selectors
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events

p = argparse.ArgumentParser()
p.add_argument("kind", choices=["http1", "h2c", "tls"])
p.add_argument("port", type=int)
p.add_argument("-n", type=int, default=8000)
p.add_argument("--path", default="/100b")
p.add_argument("--body", type=int, default=100, help="expected body size")
p.add_argument("--window", type=int, default=64)
p.add_argument("--timeout", type=float, default=120, help="seconds to set up all N")
p.add_argument("--hold", type=float, default=300, help="longest idle hold, seconds")
a = p.parse_args()

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < a.n + 64:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, a.n + 64) if hard > 0 else a.n + 64, hard))

sel = selectors.DefaultSelector()
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
tls.check_hostname = False
tls.verify_mode = ssl.CERT_NONE
tls.minimum_version = ssl.TLSVersion.TLSv1_3
request = f"GET {a.path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()


class Conn:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.setblocking(False)
        self.sock.connect_ex(("127.0.0.1", a.port))
        self.state = "connect"  # connect -> [handshake] -> response -> idle | failed
        self.out = b""
        self.buf = b""
        self.status = None
        self.h2 = None
        sel.register(self.sock, selectors.EVENT_WRITE, self)

    def start(self):  # connected (and TLS handshake done): send the request
        self.state = "response"
        if a.kind == "h2c":
            self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            self.h2.initiate_connection()
            self.h2.send_headers(1, [(":method", "GET"), (":scheme", "http"),
                                     (":authority", "localhost"), (":path", a.path)], end_stream=True)
            self.out = self.h2.data_to_send()
        else:
            self.out = request

    def on_event(self):
        if self.state == "connect":
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                return self.fail(f"connect: {err}")
            if a.kind == "tls":
                self.sock = tls.wrap_socket(self.sock, do_handshake_on_connect=False)
                sel.modify(self.sock, selectors.EVENT_READ, self)
                self.state = "handshake"
            else:
                self.start()
        if self.state == "handshake":
            try:
                self.sock.do_handshake()
            except ssl.SSLWantReadError:
                return self.want(selectors.EVENT_READ)
            except ssl.SSLWantWriteError:
                return self.want(selectors.EVENT_WRITE)
            self.start()
        self.read()
        if self.state != "failed":
            self.flush()

    def want(self, events):
        sel.modify(self.sock, events, self)

    def flush(self):
        try:
            while self.out:
                self.out = self.out[self.sock.send(self.out):]
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            pass
        except OSError as e:
            return self.fail(f"send: {e}")
        self.want(selectors.EVENT_READ | (selectors.EVENT_WRITE if self.out else 0))

    def read(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except OSError as e:
                return self.fail(f"recv: {e}")
            if not data:
                return self.fail("closed by the server")
            if self.h2:
                self.on_h2(data)
            elif self.state == "response":
                self.buf += data
                self.on_http1()
            # data on an idle HTTP/1.1 connection is ignored

    def on_http1(self):
        head, sep, body = self.buf.partition(b"\r\n\r\n")
        if not sep:
            return
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        fields = dict(l.split(":", 1) for l in lines[1:])
        fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
        if "content-length" in fields:
            if len(body) >= int(fields["content-length"]):
                self.done(len(body))
        elif body.endswith(b"0\r\n\r\n"):  # chunked: good enough for a small body
            self.done(a.body)

    def on_h2(self, data):
        ended = False
        for ev in self.h2.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                self.status = int(dict(ev.headers)[b":status"])
            elif isinstance(ev, h2.events.DataReceived):
                self.buf += ev.data
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                ended = ev.stream_id == 1
            elif isinstance(ev, h2.events.ConnectionTerminated):
                return self.fail(f"GOAWAY {ev.error_code}")
        self.out += self.h2.data_to_send()  # SETTINGS ack, WINDOW_UPDATE, PING ack
        if ended:
            self.done(len(self.buf))

    def done(self, size):
        global active, ok
        if self.status != 200 or size != a.body:
            return self.fail(f"status {self.status}, {size} bytes")
        self.state = "idle"
        self.buf = b""
        active -= 1
        ok += 1

    def fail(self, why):
        global active, failed
        if self.state != "idle":
            active -= 1
        self.state = "failed"
        failed.append(why)
        sel.unregister(self.sock)
        self.sock.close()


conns, active, ok, failed = [], 0, 0, []
deadline = time.monotonic() + a.timeout
while (len(conns) < a.n or active) and time.monotonic() < deadline:
    while len(conns) < a.n and active < a.window:
        conns.append(Conn())
        active += 1
    for key, _ in sel.select(timeout=0.2):
        key.data.on_event()
errors = len(failed) + (a.n - ok - len(failed))
print("ready", ok, errors, flush=True)
if failed:
    print("first failure:", failed[0], file=sys.stderr)

# Hold: keep answering the server until told to stop.
before = len(failed)
sel.register(sys.stdin, selectors.EVENT_READ, None)
hold_until = time.monotonic() + a.hold
while time.monotonic() < hold_until:
    events = sel.select(timeout=0.5)
    if any(key.data is None for key, _ in events):
        break
    for key, _ in events:
        key.data.on_event()
closed = len(failed) - before
print("closed", closed, flush=True)
if closed:
    print("closed while idle:", failed[before], file=sys.stderr)
sys.exit(1 if errors or closed else 0)
