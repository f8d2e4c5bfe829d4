"""A raw HTTP/2 client for tests: exact frames in, parsed frames out.

Built on hyperframe (framing) and hpack (header compression), the libraries under python3-h2.
It keeps no h2.H2Connection state machine on the sending side, so it can send anything,
including invalid and abusive sequences (rapid reset, CONTINUATION floods, HPACK bombs,
SETTINGS/PING floods, streams over the advertised limit). Incoming frames are parsed, header
blocks decoded (keeping the HPACK decoder in sync), and per-stream results collected.

    with H2Client(port) as c:
        sid = c.request("GET", "/x")
        r = c.response(sid)            # waits for END_STREAM or RST_STREAM
        assert r.status == 200 and r.body == b"..."

Everything is on 127.0.0.1, every blocking call has a timeout.
"""
import hashlib
import json
import socket
import ssl
import time

import hpack
from hyperframe import frame as hf

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Error codes (RFC 9113 §7).
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
SETTINGS_TIMEOUT = 0x4
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
CONNECT_ERROR = 0xA
ENHANCE_YOUR_CALM = 0xB
INADEQUATE_SECURITY = 0xC
HTTP_1_1_REQUIRED = 0xD

# SETTINGS identifiers.
HEADER_TABLE_SIZE = 0x1
ENABLE_PUSH = 0x2
MAX_CONCURRENT_STREAMS = 0x3
INITIAL_WINDOW_SIZE = 0x4
MAX_FRAME_SIZE = 0x5
MAX_HEADER_LIST_SIZE = 0x6

DEFAULT_WINDOW = 65535
DEFAULT_MAX_FRAME = 16384


class Closed(Exception):
    """The server closed the connection (EOF or reset)."""


class StreamResult:
    def __init__(self, sid):
        self.sid = sid
        self.headers = None      # the final response head: list of (name, value) str
        self.interim = []        # 1xx heads
        self.trailers = None
        self.body = bytearray()  # kept only up to the client's keep_body limit
        self.body_len = 0
        self._sha = hashlib.sha256()
        self.ended = False       # END_STREAM received
        self.reset = None        # error code of a RST_STREAM from the server
        self.local_reset = False  # we sent RST_STREAM
        self.window = None       # the server's send window for this stream (our sending side)
        self.recv_unacked = 0    # DATA bytes received and not yet given back by WINDOW_UPDATE

    @property
    def done(self):
        return self.ended or self.reset is not None

    @property
    def status(self):
        if self.headers is None:
            return None
        for k, v in self.headers:
            if k == ":status":
                return int(v)
        return None

    @property
    def body_sha256(self):
        return self._sha.hexdigest()

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers or []:
            if k == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers or [] if k == name]

    def json(self):
        return json.loads(bytes(self.body).decode("utf-8"))

    def __repr__(self):
        return (f"<Stream {self.sid} status={self.status} headers={self.headers!r} "
                f"ended={self.ended} reset={self.reset} body_len={self.body_len} "
                f"body={bytes(self.body[:200])!r}>")


def frame_bytes(f):
    """Serializes one hyperframe frame."""
    return f.serialize()


def raw_frame(ftype, flags, sid, payload):
    """A frame from its parts, with no validation at all (any type, flags, length)."""
    n = len(payload)
    return bytes([(n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF, ftype & 0xFF, flags & 0xFF]) + \
        (sid & 0x7FFFFFFF).to_bytes(4, "big") + payload


def settings_frame(settings=None, ack=False):
    f = hf.SettingsFrame(0)
    if ack:
        f.flags.add("ACK")
    else:
        f.settings = dict(settings or {})
    return f.serialize()


def ping_frame(data=b"\0" * 8, ack=False):
    f = hf.PingFrame(0)
    f.opaque_data = data
    if ack:
        f.flags.add("ACK")
    return f.serialize()


def rst_frame(sid, code=CANCEL):
    return hf.RstStreamFrame(sid, error_code=code).serialize()


def window_update_frame(sid, inc):
    return hf.WindowUpdateFrame(sid, window_increment=inc).serialize()


def goaway_frame(last_sid=0, code=NO_ERROR, data=b""):
    return hf.GoAwayFrame(0, last_stream_id=last_sid, error_code=code,
                          additional_data=data).serialize()


def headers_frame(sid, block, end_stream=False, end_headers=True):
    f = hf.HeadersFrame(sid, data=block)
    if end_headers:
        f.flags.add("END_HEADERS")
    if end_stream:
        f.flags.add("END_STREAM")
    return f.serialize()


def continuation_frame(sid, block, end_headers=False):
    f = hf.ContinuationFrame(sid, data=block)
    if end_headers:
        f.flags.add("END_HEADERS")
    return f.serialize()


def data_frame(sid, data, end_stream=False):
    f = hf.DataFrame(sid, data=data)
    if end_stream:
        f.flags.add("END_STREAM")
    return f.serialize()


class H2Client:
    """One HTTP/2 connection to 127.0.0.1:port.

    settings: the client's SETTINGS (defaults: push disabled). conn_window: if given, the
    connection receive window is raised to this with a WINDOW_UPDATE after the preface.
    auto_ack: answer SETTINGS and PING. auto_window: give back received DATA with WINDOW_UPDATE.
    keep_body: how many body bytes each StreamResult keeps (sha256 and length cover all).
    tls: an ssl.SSLContext (ALPN h2 is set when it has none), or True for an unverified one.
    """

    def __init__(self, port, host="127.0.0.1", timeout=5.0, settings=None, conn_window=None,
                 auto_ack=True, auto_window=True, keep_body=1 << 20, tls=None,
                 server_hostname="localhost", preface=True, rcvbuf=None, authority=None):
        self.port = port
        self.timeout = timeout
        self.auto_ack = auto_ack
        self.auto_window = auto_window
        self.keep_body = keep_body
        self.authority = authority or f"127.0.0.1:{port}"
        self.scheme = "https" if tls else "http"
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 30
        self.decoder.max_allowed_table_size = 1 << 20
        self.next_sid = 1
        self.streams = {}
        self.goaway = None            # (last_stream_id, error_code, debug data) once received
        self.closed = False           # EOF or reset from the server
        self.close_reason = None
        self.server_settings = {}
        self.settings_acked = 0       # SETTINGS ACKs received
        self.pings_acked = 0
        self.frame_counts = {}        # frame type name -> count received
        self.bytes_received = 0
        self.send_window = DEFAULT_WINDOW          # connection-level, our sending side
        self.peer_initial_window = DEFAULT_WINDOW
        self.peer_max_frame = DEFAULT_MAX_FRAME
        self._rbuf = bytearray()
        self._hdr_block = None        # (sid, frame type, flags, bytearray) while awaiting END_HEADERS
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.connect((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            ctx = tls
            if ctx is True:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                ctx.set_alpn_protocols(["h2"])
            sock = ctx.wrap_socket(sock, server_hostname=server_hostname)
            self.alpn = sock.selected_alpn_protocol()
        else:
            self.alpn = None
        self.sock = sock
        if preface:
            s = {ENABLE_PUSH: 0}
            s.update(settings or {})
            out = PREFACE + settings_frame(s)
            if conn_window and conn_window > DEFAULT_WINDOW:
                out += window_update_frame(0, conn_window - DEFAULT_WINDOW)
            self.send(out)

    # ----- sending ------------------------------------------------------------------------------
    def send(self, data):
        """Sends bytes; on a closed connection marks it closed and raises Closed."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLEOFError) as e:
            self._mark_closed(repr(e))
            raise Closed(repr(e)) from e

    def try_send(self, data):
        """Sends bytes; returns False (instead of raising) when the connection is gone or the
        send timed out because the server stopped reading."""
        try:
            self.send(data)
            return True
        except Closed:
            return False
        except socket.timeout:
            return False

    def new_sid(self):
        sid = self.next_sid
        self.next_sid += 2
        return sid

    def encode(self, headers, huffman=True):
        """HPACK-encodes headers (list of pairs) with the connection's encoder."""
        return self.encoder.encode(list(headers), huffman=huffman)

    def request_headers(self, method, path, headers=(), authority=None, scheme=None):
        return [(":method", method), (":scheme", scheme or self.scheme),
                (":authority", authority or self.authority), (":path", path)] + list(headers)

    def send_headers(self, sid, headers, end_stream=False):
        """HEADERS (+ CONTINUATION when the block is over the peer's max frame size)."""
        block = self.encode(headers)
        self._register(sid)
        limit = self.peer_max_frame
        if len(block) <= limit:
            self.send(headers_frame(sid, block, end_stream=end_stream))
            return
        out = [headers_frame(sid, block[:limit], end_stream=end_stream, end_headers=False)]
        pos = limit
        while pos < len(block):
            piece = block[pos:pos + limit]
            pos += limit
            out.append(continuation_frame(sid, piece, end_headers=pos >= len(block)))
        self.send(b"".join(out))

    def _register(self, sid):
        st = self.streams.get(sid)
        if st is None:
            st = self.streams[sid] = StreamResult(sid)
            st.window = self.peer_initial_window
        return st

    def request(self, method, path, headers=(), body=None, authority=None, end_stream=None,
                timeout=None):
        """Opens a stream; sends the head and (flow-controlled) body; returns the stream id."""
        sid = self.new_sid()
        hdrs = self.request_headers(method, path, headers, authority)
        if body is not None and not any(k.lower() == "content-length" for k, _ in headers):
            hdrs.append(("content-length", str(len(body))))
        no_body = body is None or len(body) == 0
        self.send_headers(sid, hdrs, end_stream=no_body if end_stream is None else end_stream)
        if body:
            self.send_body(sid, body, end_stream=True if end_stream is None else end_stream,
                           timeout=timeout)
        return sid

    def send_body(self, sid, body, end_stream=True, timeout=None):
        """DATA frames respecting the connection and stream windows (reads while blocked)."""
        st = self._register(sid)
        deadline = time.monotonic() + (timeout or self.timeout)
        pos = 0
        view = memoryview(body)
        while pos < len(body):
            avail = min(self.send_window, st.window, self.peer_max_frame, len(body) - pos)
            if avail <= 0:
                if st.reset is not None or self.closed:
                    raise Closed(f"stream {sid} reset ({st.reset}) while sending its body")
                if time.monotonic() > deadline:
                    raise socket.timeout(f"no flow-control window for stream {sid}")
                self.read_some(0.05)
                continue
            last = pos + avail >= len(body)
            self.send(data_frame(sid, bytes(view[pos:pos + avail]), end_stream=end_stream and last))
            self.send_window -= avail
            st.window -= avail
            pos += avail
        if not body and end_stream:
            self.send(data_frame(sid, b"", end_stream=True))

    def rst(self, sid, code=CANCEL):
        self._register(sid).local_reset = True
        self.send(rst_frame(sid, code))

    def ping(self, data=b"pingpong"):
        self.send(ping_frame(data))

    def window_update(self, sid, inc):
        self.send(window_update_frame(sid, inc))

    def settings(self, settings):
        self.send(settings_frame(settings))

    # ----- receiving ----------------------------------------------------------------------------
    def _mark_closed(self, reason):
        if not self.closed:
            self.closed = True
            self.close_reason = reason

    def _recv(self, timeout):
        """Reads what is there within timeout into the buffer; False on timeout."""
        if self.closed:
            raise Closed(self.close_reason)
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            return False
        except ssl.SSLWantReadError:
            return False
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError) as e:
            self._mark_closed(repr(e))
            raise Closed(repr(e)) from e
        finally:
            try:
                self.sock.settimeout(self.timeout)
            except OSError:
                pass
        if not data:
            self._mark_closed("EOF")
            raise Closed("EOF")
        self.bytes_received += len(data)
        self._rbuf += data
        return True

    def _next_frame(self):
        """Parses one complete frame from the buffer, or None."""
        if len(self._rbuf) < 9:
            return None
        f, length = hf.Frame.parse_frame_header(memoryview(bytes(self._rbuf[:9])))
        if len(self._rbuf) < 9 + length:
            return None
        body = bytes(self._rbuf[9:9 + length])
        del self._rbuf[:9 + length]
        f.parse_body(memoryview(body))
        f._wire_length = length  # noqa: SLF001 - flow-controlled length incl. padding
        return f

    def read_frame(self, timeout=None):
        """The next frame (already processed), or None on timeout. Raises Closed on EOF."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            f = self._next_frame()
            if f is not None:
                self._process(f)
                return f
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._recv(left)

    def read_some(self, timeout):
        """Processes frames arriving within timeout; returns the number processed."""
        n = 0
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                f = self.read_frame(max(left, 0))
            except Closed:
                return n
            if f is None:
                return n
            n += 1

    def _process(self, f):
        name = type(f).__name__
        self.frame_counts[name] = self.frame_counts.get(name, 0) + 1
        if isinstance(f, hf.SettingsFrame):
            if "ACK" in f.flags:
                self.settings_acked += 1
                return
            for k, v in f.settings.items():
                self.server_settings[k] = v
                if k == INITIAL_WINDOW_SIZE:
                    delta = v - self.peer_initial_window
                    self.peer_initial_window = v
                    for st in self.streams.values():
                        st.window += delta
                elif k == MAX_FRAME_SIZE:
                    self.peer_max_frame = v
                elif k == HEADER_TABLE_SIZE:
                    # Our encoder must not use more dynamic table than the server allows.
                    self.encoder.header_table_size = min(v, 4096)
            if self.auto_ack:
                self.try_send(settings_frame(ack=True))
        elif isinstance(f, hf.PingFrame):
            if "ACK" in f.flags:
                self.pings_acked += 1
            elif self.auto_ack:
                self.try_send(ping_frame(f.opaque_data, ack=True))
        elif isinstance(f, hf.GoAwayFrame):
            self.goaway = (f.last_stream_id, f.error_code, f.additional_data)
        elif isinstance(f, hf.WindowUpdateFrame):
            if f.stream_id == 0:
                self.send_window += f.window_increment
            elif f.stream_id in self.streams:
                self.streams[f.stream_id].window += f.window_increment
        elif isinstance(f, hf.RstStreamFrame):
            self._register(f.stream_id).reset = f.error_code
        elif isinstance(f, (hf.HeadersFrame, hf.PushPromiseFrame)):
            self._hdr_block = (f.stream_id, f, bytearray(f.data))
            if "END_HEADERS" in f.flags:
                self._finish_headers()
        elif isinstance(f, hf.ContinuationFrame):
            if self._hdr_block is None:
                raise AssertionError("CONTINUATION without HEADERS from the server")
            self._hdr_block[2].extend(f.data)
            if "END_HEADERS" in f.flags:
                self._finish_headers()
        elif isinstance(f, hf.DataFrame):
            st = self._register(f.stream_id)
            data = f.data
            st.body_len += len(data)
            st._sha.update(data)  # noqa: SLF001
            if len(st.body) < self.keep_body:
                st.body.extend(data[:self.keep_body - len(st.body)])
            if "END_STREAM" in f.flags:
                st.ended = True
            flow = f._wire_length  # noqa: SLF001
            if self.auto_window and flow:
                out = window_update_frame(0, flow)
                if not st.ended and not st.local_reset and st.reset is None:
                    out += window_update_frame(f.stream_id, flow)
                self.try_send(out)

    def _finish_headers(self):
        sid, first, block = self._hdr_block
        self._hdr_block = None
        headers = self.decoder.decode(bytes(block), raw=False)
        if isinstance(first, hf.PushPromiseFrame):
            return
        st = self._register(sid)
        status = next((v for k, v in headers if k == ":status"), None)
        if st.headers is None and status is not None and status.startswith("1"):
            st.interim.append(headers)
        elif st.headers is None:
            st.headers = headers
        else:
            st.trailers = headers
        if "END_STREAM" in first.flags:
            st.ended = True

    # ----- waiting ------------------------------------------------------------------------------
    def wait(self, predicate, timeout=None, message="condition"):
        """Reads frames until predicate() is true; raises AssertionError on timeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {message}; goaway={self.goaway} "
                                     f"closed={self.closed} streams={self.streams!r}")
            try:
                self.read_frame(left)
            except Closed:
                if predicate():
                    return
                raise
        return True

    def response(self, sid, timeout=None):
        """Waits until the stream ends (END_STREAM or RST_STREAM); returns its StreamResult."""
        st = self._register(sid)
        self.wait(lambda: st.done, timeout, message=f"stream {sid} to finish")
        return st

    def wait_settings(self, timeout=None):
        """Waits for the server's first SETTINGS frame."""
        self.wait(lambda: "SettingsFrame" in self.frame_counts, timeout, "server SETTINGS")
        return self.server_settings

    def wait_end(self, timeout=None):
        """Reads (discarding) until the server sends GOAWAY or closes; returns
        ("goaway", error_code) or ("closed", reason), or None if neither happened in time."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if self.goaway is not None:
                return ("goaway", self.goaway[1])
            if self.closed:
                return ("closed", self.close_reason)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                self.read_frame(left)
            except Closed:
                pass
            except (hpack.HPACKError, ValueError, AssertionError) as e:
                # A half-decoded block after a flood, or garbage: the connection is unusable.
                self._mark_closed(f"undecodable input from the server: {e!r}")

    def drain_until_closed(self, timeout=None):
        """Reads raw bytes until EOF/reset (no frame processing); True if it closed in time."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(max(left, 0.001))
            try:
                data = self.sock.recv(1 << 20)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError) as e:
                self._mark_closed(repr(e))
                return True
            if not data:
                self._mark_closed("EOF")
                return True
            self.bytes_received += len(data)
            # Keep the buffer small: only the frames' tail matters (a GOAWAY near the end).
            self._rbuf += data
            self._scan_for_goaway()
        return True

    def _scan_for_goaway(self):
        while True:
            try:
                f = self._next_frame()
            except Exception:  # noqa: BLE001 - garbage in a drained stream
                self._rbuf.clear()
                return
            if f is None:
                return
            name = type(f).__name__
            self.frame_counts[name] = self.frame_counts.get(name, 0) + 1
            if isinstance(f, hf.GoAwayFrame):
                self.goaway = (f.last_stream_id, f.error_code, f.additional_data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
