"""A test OTLP/HTTP trace receiver: POST /v1/traces, protobuf (gzip optional), decoded by hand.

It listens on 127.0.0.1 (a free port), serves from a thread, stops itself after `lifetime`
seconds at the latest and is stopped by its fixture. Each POST is recorded (path, headers, body
size, decoded request or the decode error) and every span is flattened into a dict:

  {"trace_id": hex, "span_id": hex, "parent_span_id": hex ("" when none), "trace_state": str,
   "name": str, "kind": int, "start": int ns, "end": int ns, "attributes": {key: value},
   "status": {"code": int, "message": str}, "resource": {key: value}, "scope": str}

Modes: delay=N sleeps N seconds before answering each request (a slow collector); `count()` is
the number of requests received (answered or not).

The protobuf decoder only knows the wire format (varint, fixed64, length-delimited, fixed32) and
the field numbers of opentelemetry-proto's trace and common messages.
"""
import gzip
import http.server
import socketserver
import struct
import threading
import time

# ----- wire format ---------------------------------------------------------------------------


class DecodeError(ValueError):
    pass


def read_varint(buf, pos):
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise DecodeError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise DecodeError("varint too long")


def fields(buf):
    """Yields (field_number, wire_type, value) for every field of one message.

    value: int for varint (0), fixed64 (1) and fixed32 (5); bytes for length-delimited (2)."""
    buf = bytes(buf)
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise DecodeError("field number 0")
        if wt == 0:
            value, pos = read_varint(buf, pos)
        elif wt == 1:
            if pos + 8 > len(buf):
                raise DecodeError("truncated fixed64")
            value = int.from_bytes(buf[pos:pos + 8], "little")
            pos += 8
        elif wt == 2:
            n, pos = read_varint(buf, pos)
            if pos + n > len(buf):
                raise DecodeError("truncated length-delimited field")
            value = buf[pos:pos + n]
            pos += n
        elif wt == 5:
            if pos + 4 > len(buf):
                raise DecodeError("truncated fixed32")
            value = int.from_bytes(buf[pos:pos + 4], "little")
            pos += 4
        else:
            raise DecodeError(f"unsupported wire type {wt} (field {num})")
        yield num, wt, value


def _expect(wt, want, what):
    if wt != want:
        raise DecodeError(f"{what}: wire type {wt}, expected {want}")


def _signed64(v):
    return v - (1 << 64) if v >= 1 << 63 else v


# ----- OTLP messages -------------------------------------------------------------------------


def decode_any_value(buf):
    value = None
    for num, wt, v in fields(buf):
        if num == 1:
            _expect(wt, 2, "AnyValue.string_value")
            value = v.decode("utf-8")
        elif num == 2:
            _expect(wt, 0, "AnyValue.bool_value")
            value = bool(v)
        elif num == 3:
            _expect(wt, 0, "AnyValue.int_value")
            value = _signed64(v)
        elif num == 4:
            _expect(wt, 1, "AnyValue.double_value")
            value = struct.unpack("<d", v.to_bytes(8, "little"))[0]
        elif num == 5:  # ArrayValue {repeated AnyValue values = 1}
            value = [decode_any_value(x) for n, w, x in fields(v) if n == 1]
        elif num == 6:  # KeyValueList {repeated KeyValue values = 1}
            value = dict(decode_key_value(x) for n, w, x in fields(v) if n == 1)
        elif num == 7:
            value = bytes(v)
    return value


def decode_key_value(buf):
    key, value = None, None
    for num, wt, v in fields(buf):
        if num == 1:
            _expect(wt, 2, "KeyValue.key")
            key = v.decode("utf-8")
        elif num == 2:
            _expect(wt, 2, "KeyValue.value")
            value = decode_any_value(v)
    if key is None:
        raise DecodeError("KeyValue without a key")
    return key, value


def _attributes(pairs, where):
    out = {}
    for k, v in pairs:
        if k in out:
            raise DecodeError(f"attribute {k!r} twice in {where}")
        out[k] = v
    return out


def decode_span(buf):
    span = {"trace_id": "", "span_id": "", "parent_span_id": "", "trace_state": "", "name": "",
            "kind": 0, "start": 0, "end": 0, "attributes": {},
            "status": {"code": 0, "message": ""}}
    attrs = []
    for num, wt, v in fields(buf):
        if num in (1, 2, 4):
            _expect(wt, 2, f"Span field {num}")
            key = {1: "trace_id", 2: "span_id", 4: "parent_span_id"}[num]
            span[key] = bytes(v).hex()
        elif num == 3:
            _expect(wt, 2, "Span.trace_state")
            span["trace_state"] = v.decode("utf-8")
        elif num == 5:
            _expect(wt, 2, "Span.name")
            span["name"] = v.decode("utf-8")
        elif num == 6:
            _expect(wt, 0, "Span.kind")
            span["kind"] = v
        elif num in (7, 8):
            _expect(wt, 1, f"Span field {num}")
            span["start" if num == 7 else "end"] = v
        elif num == 9:
            _expect(wt, 2, "Span.attributes")
            attrs.append(decode_key_value(v))
        elif num == 15:
            _expect(wt, 2, "Span.status")
            for n, w, x in fields(v):
                if n == 2:
                    span["status"]["message"] = x.decode("utf-8")
                elif n == 3:
                    _expect(w, 0, "Status.code")
                    span["status"]["code"] = x
    span["attributes"] = _attributes(attrs, "a span")
    return span


def decode_export_request(buf):
    """ExportTraceServiceRequest -> list of flattened span dicts."""
    spans = []
    for num, wt, rs in fields(buf):
        if num != 1:
            continue
        _expect(wt, 2, "ExportTraceServiceRequest.resource_spans")
        resource = {}
        scope_spans = []
        for n, w, v in fields(rs):
            if n == 1:
                _expect(w, 2, "ResourceSpans.resource")
                resource = _attributes(
                    [decode_key_value(x) for a, b, x in fields(v) if a == 1], "the resource")
            elif n == 2:
                _expect(w, 2, "ResourceSpans.scope_spans")
                scope_spans.append(v)
        for ss in scope_spans:
            scope = ""
            raw = []
            for n, w, v in fields(ss):
                if n == 1:
                    _expect(w, 2, "ScopeSpans.scope")
                    scope = next((x.decode("utf-8") for a, b, x in fields(v) if a == 1), "")
                elif n == 2:
                    _expect(w, 2, "ScopeSpans.spans")
                    raw.append(v)
            for r in raw:
                span = decode_span(r)
                span["resource"] = resource
                span["scope"] = scope
                spans.append(span)
    return spans


# ----- the server ----------------------------------------------------------------------------


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False


class OtlpReceiver:
    def __init__(self, delay=0.0, lifetime=300.0, status=200):
        self.delay = delay
        self.status = status
        self.lock = threading.Lock()
        self.requests = []   # {"path", "headers", "body_len", "spans" or "error", "time"}
        self.spans = []
        self.errors = []
        self.received = 0    # requests seen (counted on arrival, before any delay)
        self.stopping = threading.Event()
        self._stop_lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30

            def log_message(self, *args):
                pass

            def _body(self):
                te = (self.headers.get("Transfer-Encoding") or "").lower()
                if "chunked" in te:
                    out = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return bytes(out)
                        out += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n)

            def _answer(self, code):
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self):
                with receiver.lock:
                    receiver.received += 1
                body = self._body()
                rec = {"path": self.path, "headers": [(k.lower(), v) for k, v in
                                                      self.headers.items()],
                       "body_len": len(body), "time": time.monotonic()}
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                try:
                    if self.path != "/v1/traces":
                        raise DecodeError(f"POST to {self.path}, not /v1/traces")
                    if ctype != "application/x-protobuf":
                        raise DecodeError(f"Content-Type {ctype!r}")
                    enc = (self.headers.get("Content-Encoding") or "identity").lower()
                    if enc == "gzip":
                        body = gzip.decompress(body)
                    elif enc != "identity":
                        raise DecodeError(f"Content-Encoding {enc!r}")
                    spans = decode_export_request(body)
                    rec["spans"] = spans
                except (DecodeError, OSError, EOFError, UnicodeDecodeError, ValueError) as e:
                    rec["error"] = repr(e)
                    spans = []
                if receiver.delay and receiver.stopping.wait(receiver.delay):
                    self.close_connection = True
                    return  # stopped while sleeping: no answer
                with receiver.lock:
                    receiver.requests.append(rec)
                    receiver.spans.extend(spans)
                    if "error" in rec:
                        receiver.errors.append(rec["error"])
                self._answer(400 if "error" in rec else receiver.status)

            def do_GET(self):
                self._answer(405)

            do_PUT = do_GET

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        self.endpoint = f"http://127.0.0.1:{self.port}/v1/traces"
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True,
                                        name="otlp-receiver")
        self._thread.start()
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()

    # ----- inspection -----
    def count(self):
        """Requests received so far (including those still being delayed)."""
        with self.lock:
            return self.received

    def snapshot(self):
        with self.lock:
            return list(self.spans)

    def requests_snapshot(self):
        with self.lock:
            return list(self.requests)

    def wait_for_spans(self, n, timeout=10.0):
        """Waits until at least n spans arrived (or the deadline passed); returns the spans."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spans = self.snapshot()
            if len(spans) >= n:
                return spans
            time.sleep(0.05)
        return self.snapshot()

    # ----- lifecycle -----
    def stop(self):
        with self._stop_lock:
            if self.stopping.is_set():
                return
            self.stopping.set()
        self._timer.cancel()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
