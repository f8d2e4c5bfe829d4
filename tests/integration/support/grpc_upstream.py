"""A gRPC upstream for tests: grpcio's own server, in-process, 127.0.0.1 only, a bounded lifetime.

No protoc: the service is registered with generic handlers and no serializers, so every message
is raw bytes on both sides. h2c (add_insecure_port) or, given tls=(cert_path, key_path), TLS
(add_secure_port). The same handlers are served under every name in `services` (so a gateway can
route several path prefixes, e.g. /test.Echo/ and /keyed.Echo/, to one server).

Methods of each service:

  Unary         echo the request. b"sleep:<ms>..." sleeps that long first (checking for
                cancellation every 10 ms; a cancelled call is never answered);
                b"status:<CODE>:<message>" aborts with that grpc.StatusCode (a name such as
                NOT_FOUND, or its number) and message, sending no initial metadata (so the
                server's answer is trailers-only).
  ServerStream  request b"n=5;gate=NAME;interval_ms=50;size=1024" (every part optional; n
                defaults to 3): n messages b"msg-<i>" (padded to `size` bytes when given).
                gate: message 0 is sent, then the handler waits (up to GATE_WAIT s) until the
                test calls open_gate(NAME) before sending the rest; interval_ms: a pause before
                each message after the first (checking for cancellation).
                fail_after=K;fail=<CODE>:<message>: after K messages (K <= n) the handler aborts
                with that status and message (trailing metadata TRAILERS) instead of going on;
                the message may not contain ";".
  ClientStream  reads every message; answers JSON {"count", "bytes", "sha256"} (the SHA-256 of
                all the messages concatenated).
  Bidi          echoes each message as it arrives (b"status:<CODE>:<msg>" aborts instead).

Every method echoes the client's metadata whose key starts with "x-" (except the gateway's own
x-request-id and x-forwarded-*) as initial metadata, and sets the trailing metadata TRAILERS.

Every call is recorded as a GrpcCall: method, invocation metadata, the size and SHA-256 of each
request and response message, the deadline it saw, and how it ended (the handler returned
normally or aborted; the RPC was cancelled: by the client, a deadline or a reset stream, as gRPC
core reports it), with times. Find a
test's calls by the metadata key x-test-id.
"""
import hashlib
import json
import os
import re
import threading
import time
from concurrent import futures

# Must be set before grpc is imported: no fork handlers (the tests fork gateways and openssl while
# gRPC threads run; gRPC's fork support only logs warnings about that).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import grpc  # noqa: E402

from . import util  # noqa: E402

MAX_MESSAGE = 16 << 20
COMMON_OPTIONS = [("grpc.max_send_message_length", MAX_MESSAGE),
                  ("grpc.max_receive_message_length", MAX_MESSAGE)]
# For clients: no proxy from the environment, no subchannel sharing between channels (each
# channel is its own connection, so a test's "one channel" really is one connection).
CHANNEL_OPTIONS = COMMON_OPTIONS + [("grpc.enable_http_proxy", 0),
                                    ("grpc.use_local_subchannel_pool", 1)]
TRAILERS = (("x-trailer", "t"), ("x-trailer-bin", b"\x00\x01\xfe\xff"))
GATE_WAIT = 15.0 * util.SLACK
METHODS = ("Unary", "ServerStream", "ClientStream", "Bidi")

_SLEEP = re.compile(rb"^sleep:(\d+)")


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def status_code(text):
    """grpc.StatusCode from a name ("NOT_FOUND") or a number ("5")."""
    text = text.decode() if isinstance(text, bytes) else str(text)
    if text.isdigit():
        for c in grpc.StatusCode:
            if c.value[0] == int(text):
                return c
        raise ValueError(f"no status code {text}")
    return grpc.StatusCode[text.upper()]


def stream_message(i, size=None):
    """Message i of ServerStream (the client can compute what it should get)."""
    m = f"msg-{i}".encode()
    if size is None:
        return m
    pad = hashlib.sha256(m).digest()
    body = (m + b":" + pad * (size // len(pad) + 1))
    return body[:size]


def parse_params(request):
    """b"n=5;gate=x" -> {"n": "5", "gate": "x"}."""
    out = {}
    for part in request.decode("latin-1").split(";"):
        if "=" in part:
            k, _, v = part.partition("=")
            out[k.strip()] = v.strip()
    return out


class GrpcCall:
    """What the server saw of one call."""

    def __init__(self, server_name, method, metadata, peer, time_remaining):
        self.server = server_name
        self.method = method                  # "/test.Echo/Unary"
        self.metadata = metadata              # [(key, value)]; -bin values are bytes
        self.peer = peer
        self.time_remaining = time_remaining  # seconds of deadline left when it started, or None
        self.test_id = self.header("x-test-id")
        self.started = time.monotonic()
        self.requests = []                    # [(size, sha256)] in arrival order
        self.request_times = []
        self.request_prefixes = []            # the first 64 bytes of each request message
        self.responses = []                   # [(size, sha256)] handed to gRPC, in order
        self.returned = False                 # the handler finished normally
        self.aborted = None                   # the StatusCode it aborted with
        self.failed = None                    # an unexpected exception in the handler
        self.gate_timed_out = False
        self.noticed_inactive_at = None       # when the handler saw is_active() turn False
        self.ended_at = None                  # when the RPC terminated (add_callback)
        self.cancelled = None                 # known once ended: gRPC reported it cancelled
        self.done = threading.Event()

    def header(self, name, default=None):
        for k, v in self.metadata:
            if k == name:
                return v
        return default

    def header_all(self, name):
        return [v for k, v in self.metadata if k == name]

    @property
    def request_sizes(self):
        return [n for n, _ in self.requests]

    @property
    def response_sizes(self):
        return [n for n, _ in self.responses]

    def add_request(self, data):
        self.requests.append((len(data), sha256(data)))
        self.request_times.append(time.monotonic())
        self.request_prefixes.append(bytes(data[:64]))

    def add_response(self, data):
        self.responses.append((len(data), sha256(data)))

    def wait_done(self, timeout):
        """Waits until the RPC ended on the server; True if it did in time."""
        return self.done.wait(timeout)

    def __repr__(self):
        return (f"<GrpcCall {self.method} id={self.test_id} requests={self.request_sizes} "
                f"responses={self.response_sizes} returned={self.returned} "
                f"aborted={self.aborted} cancelled={self.cancelled} failed={self.failed!r} "
                f"ended_at={self.ended_at} metadata={self.metadata!r}>")


class GrpcUpstream:
    def __init__(self, name="grpcup", services=("test.Echo",), tls=None, lifetime=120.0,
                 max_workers=64):
        """tls: (cert_path, key_path) for TLS, else h2c."""
        self.name = name
        self.services = tuple(services)
        self.lock = threading.Lock()
        self.calls = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._gates = {}
        self._stopped = False
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers,
                                       thread_name_prefix=f"grpcup-{name}"),
            handlers=[self._generic(s) for s in self.services],
            options=COMMON_OPTIONS + [("grpc.so_reuseport", 0)])
        if tls:
            with open(tls[0], "rb") as f:
                cert = f.read()
            with open(tls[1], "rb") as f:
                key = f.read()
            creds = grpc.ssl_server_credentials([(key, cert)])
            self.port = self.server.add_secure_port("127.0.0.1:0", creds)
        else:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        if not self.port:
            raise RuntimeError("the gRPC test server could not bind 127.0.0.1:0")
        self.tls = bool(tls)
        self.address = f"127.0.0.1:{self.port}"
        self.server.start()
        # Safety net: never outlive the tests by much, even if a fixture forgets to stop it.
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()

    # ----- registration -------------------------------------------------------------------------
    def _generic(self, service):
        def bind(fn, method):
            path = f"/{service}/{method}"
            return lambda req, ctx: fn(path, req, ctx)
        return grpc.method_handlers_generic_handler(service, {
            "Unary": grpc.unary_unary_rpc_method_handler(bind(self._unary, "Unary")),
            "ServerStream": grpc.unary_stream_rpc_method_handler(
                bind(self._server_stream, "ServerStream")),
            "ClientStream": grpc.stream_unary_rpc_method_handler(
                bind(self._client_stream, "ClientStream")),
            "Bidi": grpc.stream_stream_rpc_method_handler(bind(self._bidi, "Bidi")),
        })

    # ----- inspection ---------------------------------------------------------------------------
    def snapshot(self):
        with self.lock:
            return list(self.calls)

    def count(self):
        with self.lock:
            return len(self.calls)

    def calls_for(self, test_id):
        with self.lock:
            return [c for c in self.calls if c.test_id == test_id]

    def wait_call(self, test_id, timeout=5.0):
        """The one call carrying x-test-id: test_id (waits for it to arrive)."""
        util.wait_until(lambda: self.calls_for(test_id), timeout,
                        message=f"the upstream {self.name} to see call {test_id}")
        calls = self.calls_for(test_id)
        assert len(calls) == 1, calls
        return calls[0]

    def open_gate(self, name):
        self._gate(name).set()

    def _gate(self, name):
        with self.lock:
            ev = self._gates.get(name)
            if ev is None:
                ev = self._gates[name] = threading.Event()
            return ev

    # ----- lifecycle ----------------------------------------------------------------------------
    def stop(self):
        with self.lock:
            if self._stopped:
                return
            self._stopped = True
            gates = list(self._gates.values())
        self._timer.cancel()
        for g in gates:  # release handlers waiting on a gate
            g.set()
        self.server.stop(grace=0).wait(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ----- handlers -----------------------------------------------------------------------------
    def _begin(self, method, context):
        md = [(m.key, m.value) for m in context.invocation_metadata()]
        rec = GrpcCall(self.name, method, md, context.peer(), context.time_remaining())
        with self.lock:
            self.calls.append(rec)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

        def ended():
            if rec.ended_at is not None:
                return
            rec.ended_at = time.monotonic()
            rec.cancelled = self._was_cancelled(context, rec)
            with self.lock:
                self.in_flight -= 1
            rec.done.set()

        if not context.add_callback(ended):  # already terminated
            ended()
        return rec

    @staticmethod
    def _was_cancelled(context, rec):
        """Whether the RPC ended cancelled (client cancel, deadline, reset stream): what gRPC
        core reported when it closed the call (RECV_CLOSE_ON_SERVER's `cancelled`, kept in the
        context's private state; grpcio has no public accessor on a sync server). Without
        it: the call ended while the handler had neither returned nor aborted."""
        state = getattr(context, "_state", None)
        client = getattr(state, "client", None)
        if isinstance(client, str):
            return client == "cancelled"
        return not rec.returned and rec.aborted is None and rec.failed is None

    @staticmethod
    def _echo_metadata(rec):
        return tuple((k, v) for k, v in rec.metadata
                     if k.startswith("x-") and k != "x-request-id"
                     and not k.startswith("x-forwarded-"))

    @staticmethod
    def _sleep(rec, context, seconds):
        """Sleeps, watching for cancellation; False if the call ended meanwhile."""
        end = time.monotonic() + seconds
        while True:
            if not context.is_active():
                rec.noticed_inactive_at = time.monotonic()
                return False
            left = end - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(0.01, left))

    @staticmethod
    def _abort(rec, context, spec):
        """spec: b"status:<CODE>:<message>"."""
        _, code, msg = spec.split(b":", 2)
        code = status_code(code)
        context.set_trailing_metadata(TRAILERS)
        rec.aborted = code
        context.abort(code, msg.decode("utf-8"))

    def _unary(self, method, request, context):
        rec = self._begin(method, context)
        try:
            rec.add_request(request)
            if request.startswith(b"status:"):
                self._abort(rec, context, request)
            m = _SLEEP.match(request)
            if m and not self._sleep(rec, context, int(m.group(1)) / 1000.0):
                return b""  # cancelled: nobody will read it
            context.send_initial_metadata(self._echo_metadata(rec))
            context.set_trailing_metadata(TRAILERS)
            rec.add_response(request)
            rec.returned = True
            return request
        except Exception as e:  # noqa: BLE001 - recorded, then gRPC's own handling
            if rec.aborted is None and context.is_active():
                rec.failed = repr(e)
            raise

    def _server_stream(self, method, request, context):
        rec = self._begin(method, context)
        try:
            rec.add_request(request)
            p = parse_params(request)
            n = int(p.get("n", "3"))
            size = int(p["size"]) if "size" in p else None
            interval = int(p.get("interval_ms", "0")) / 1000.0
            context.send_initial_metadata(self._echo_metadata(rec))
            context.set_trailing_metadata(TRAILERS)
            fail_after = int(p["fail_after"]) if "fail_after" in p else None
            for i in range(n + 1):
                if i == fail_after:
                    spec = b"status:" + p.get("fail", "UNKNOWN:").encode("latin-1")
                    self._abort(rec, context, spec)
                if i == n:
                    break
                if i == 1 and "gate" in p:
                    gate = self._gate(p["gate"])
                    while not gate.wait(0.01):
                        if not context.is_active():
                            rec.noticed_inactive_at = time.monotonic()
                            return
                        if time.monotonic() - rec.started > GATE_WAIT:
                            rec.gate_timed_out = True
                            rec.aborted = grpc.StatusCode.FAILED_PRECONDITION
                            context.abort(rec.aborted, "the test never opened the gate")
                if i > 0 and interval and not self._sleep(rec, context, interval):
                    return
                if not context.is_active():
                    rec.noticed_inactive_at = time.monotonic()
                    return
                msg = stream_message(i, size)
                rec.add_response(msg)
                yield msg
            rec.returned = True
        except Exception as e:  # noqa: BLE001
            if rec.aborted is None and context.is_active():
                rec.failed = repr(e)
            raise

    def _client_stream(self, method, request_iterator, context):
        rec = self._begin(method, context)
        h = hashlib.sha256()
        total = 0
        try:
            try:
                for m in request_iterator:
                    rec.add_request(m)
                    h.update(m)
                    total += len(m)
            except grpc.RpcError:
                rec.noticed_inactive_at = time.monotonic()
                return b""  # cancelled while reading
            context.send_initial_metadata(self._echo_metadata(rec))
            context.set_trailing_metadata(TRAILERS)
            body = json.dumps({"count": len(rec.requests), "bytes": total,
                               "sha256": h.hexdigest()}).encode()
            rec.add_response(body)
            rec.returned = True
            return body
        except Exception as e:  # noqa: BLE001
            if rec.aborted is None and context.is_active():
                rec.failed = repr(e)
            raise

    def _bidi(self, method, request_iterator, context):
        rec = self._begin(method, context)
        try:
            context.send_initial_metadata(self._echo_metadata(rec))
            context.set_trailing_metadata(TRAILERS)
            try:
                for m in request_iterator:
                    rec.add_request(m)
                    if m.startswith(b"status:"):
                        self._abort(rec, context, m)
                    rec.add_response(m)
                    yield m
            except grpc.RpcError:
                rec.noticed_inactive_at = time.monotonic()
                return  # cancelled
            rec.returned = True
        except Exception as e:  # noqa: BLE001
            if rec.aborted is None and context.is_active():
                rec.failed = repr(e)
            raise
