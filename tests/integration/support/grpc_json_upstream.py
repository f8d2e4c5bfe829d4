"""A typed gRPC upstream for the REST/JSON -> gRPC transcoding tests (docs/transcoding.md).

Everything is built at test time, nothing is downloaded: the two small google/api protos
(http.proto, annotations.proto, as in googleapis) and the test services are written into a tmp
dir, compiled with Debian's protoc (--include_imports --descriptor_set_out for the gateway,
--python_out for this server), and the generated modules are imported from there under names
unique to each compile (importlib), so two compiles in one process never collide.

The server is python3-grpcio's own (generic handlers that (de)serialize with the generated
classes), h2c on 127.0.0.1 only, with a bounded lifetime. Every call is recorded as a JsonCall:
the method, the request (the parsed message and its dict with proto field names), the metadata,
times, what was sent, and how the call ended (returned, aborted, cancelled).

Controls for tests:
  * Library.Fail aborts with the status `code` and `message` of its request;
  * server.fail_next(method, code, message): the next call of that method aborts;
  * Library.WatchShelf (server streaming) sends `count` books; with `gate` set it sends book 0
    and then waits until the test calls server.open_gate(gate); `fail_after`/`fail_code`/
    `fail_message` abort after that many books; `interval_ms` pauses between books;
  * Library.Sleep sleeps `ms` (watching for cancellation).
Every call gets the initial metadata x-served-by (and x-echo-custom: the client's x-custom).
"""
import http.client
import importlib
import importlib.util
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent import futures

# Before grpc is imported (see support/grpc_upstream.py): no fork handlers.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import grpc  # noqa: E402
from google.protobuf import json_format, symbol_database  # noqa: E402

from . import util  # noqa: E402

PROTOC = "/usr/bin/protoc"
PROTO_INCLUDE = "/usr/include"   # google/protobuf/*.proto (package libprotobuf-dev / protoc)
GATE_WAIT = 15.0 * util.SLACK

GOOGLE_API_HTTP = """syntax = "proto3";
package google.api;
option java_package = "com.google.api";
option cc_enable_arenas = true;

message Http {
  repeated HttpRule rules = 1;
  bool fully_decode_reserved_expansion = 2;
}

message HttpRule {
  string selector = 1;
  oneof pattern {
    string get = 2;
    string put = 3;
    string post = 4;
    string delete = 5;
    string patch = 6;
    CustomHttpPattern custom = 8;
  }
  string body = 7;
  string response_body = 12;
  repeated HttpRule additional_bindings = 11;
}

message CustomHttpPattern {
  string kind = 1;
  string path = 2;
}
"""

GOOGLE_API_ANNOTATIONS = """syntax = "proto3";
package google.api;
import "google/api/http.proto";
import "google/protobuf/descriptor.proto";
option java_package = "com.google.api";

extend google.protobuf.MethodOptions {
  HttpRule http = 72295728;
}
"""

LIBRARY_MESSAGES = """
enum Genre { GENRE_UNSPECIFIED = 0; FICTION = 1; HISTORY = 2; POETRY = 3; }
enum View { VIEW_UNSPECIFIED = 0; BASIC = 1; FULL = 2; }

message Author {
  string display_name = 1;
  int32 birth_year = 2;
}

message Book {
  string id = 1;
  string title = 2;
  int64 page_count = 3;
  uint64 isbn = 4;
  Genre genre = 5;
  google.protobuf.Timestamp publish_time = 6;
  google.protobuf.Duration read_time = 7;
  bytes cover = 8;
  repeated string tags = 9;
  Author author = 10;
  google.protobuf.Int32Value rating = 11;
  google.protobuf.StringValue subtitle = 12;
  google.protobuf.Struct metadata = 13;
  google.protobuf.Value extra = 14;
  double price = 15;
  bool available = 16;
  map<string, string> labels = 17;
  string shelf_name = 18;
  google.protobuf.FieldMask changed = 19;
}

message Page {
  int32 size = 1;
  string token = 2;
}

message GetBookRequest {
  string shelf = 1;
  Book book = 2;
  View view = 3;
}

message ListBooksRequest {
  string shelf = 1;
  Page page = 2;
  repeated string tags = 3;
  Genre genre = 4;
  int64 min_pages = 5;
  bool only_available = 6;
  repeated int32 years = 7;
  string query = 8;
}

message ListBooksResponse {
  repeated Book books = 1;
  string next_page_token = 2;
  int32 total_size = 3;
}

message CreateBookRequest {
  string shelf = 1;
  Book book = 2;
  string request_tag = 3;
}

message UpdateBookRequest {
  Book book = 1;
  google.protobuf.FieldMask update_mask = 2;
  bool allow_missing = 3;
}

message DeleteBookRequest { string name = 1; }

message ArchiveBookRequest {
  string id = 1;
  string reason = 2;
}

message ArchiveBookResponse {
  Book book = 1;
  google.protobuf.Timestamp archive_time = 2;
}

message EditionRequest {
  int64 number = 1;
  uint64 printing = 2;
}

message WatchRequest {
  string shelf = 1;
  int32 count = 2;
  string gate = 3;
  int32 fail_after = 4;
  int32 fail_code = 5;
  string fail_message = 6;
  int32 interval_ms = 7;
}

message FailRequest {
  int32 code = 1;
  string message = 2;
}

message SleepRequest { int32 ms = 1; }

message PingRequest { string word = 1; }
message PingResponse { string word = 1; string served_by = 2; }
"""

LIBRARY_SERVICE = """
service Library {
  rpc GetBook(GetBookRequest) returns (Book) {
    option (google.api.http) = {
      get: "/v1/shelves/{shelf}/books/{book.id}"
      additional_bindings { get: "/v1/books/{book.id}" }
    };
  }
  rpc ListBooks(ListBooksRequest) returns (ListBooksResponse) {
    option (google.api.http) = { get: "/v1/shelves/{shelf}/books" };
  }
  rpc CreateBook(CreateBookRequest) returns (Book) {
    option (google.api.http) = { post: "/v1/shelves/{shelf}/books" body: "book" };
  }
  rpc UpdateBook(UpdateBookRequest) returns (Book) {
    option (google.api.http) = {
      patch: "/v1/books/{book.id}"
      body: "book"
      additional_bindings { put: "/v1/books/{book.id}" body: "*" }
    };
  }
  rpc DeleteBook(DeleteBookRequest) returns (google.protobuf.Empty) {
    option (google.api.http) = { delete: "/v1/{name=shelves/*/books/*}" };
  }
  rpc ArchiveBook(ArchiveBookRequest) returns (ArchiveBookResponse) {
    option (google.api.http) = { post: "/v1/books/{id}:archive" body: "*" };
  }
  rpc SearchBooks(ListBooksRequest) returns (ListBooksResponse) {
    option (google.api.http) = {
      custom { kind: "SEARCH" path: "/v1/shelves/{shelf}/books" }
      body: "*"
    };
  }
  rpc GetAuthor(GetBookRequest) returns (Book) {
    option (google.api.http) = { get: "/v1/books/{book.id}/author" response_body: "author" };
  }
  rpc GetTags(GetBookRequest) returns (Book) {
    option (google.api.http) = { get: "/v1/books/{book.id}/tags" response_body: "tags" };
  }
  rpc GetEdition(EditionRequest) returns (Book) {
    option (google.api.http) = { get: "/v1/editions/{number}" };
  }
  rpc Echo(Book) returns (Book) {
    option (google.api.http) = { post: "/v1/echo" body: "*" };
  }
  rpc WatchShelf(WatchRequest) returns (stream Book) {
    option (google.api.http) = { get: "/v1/shelves/{shelf}:watch" };
  }
  rpc Fail(FailRequest) returns (google.protobuf.Empty) {
    option (google.api.http) = { get: "/v1/fail/{code}" };
  }
  rpc Sleep(SleepRequest) returns (google.protobuf.Empty) {
    option (google.api.http) = { get: "/v1/sleep/{ms}" };
  }
}

service Admin {
  rpc Ping(PingRequest) returns (PingResponse) {
    option (google.api.http) = { get: "/v1/ping/{word}" };
  }
}
"""

IMPORTS = """
import "google/api/annotations.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/empty.proto";
import "google/protobuf/field_mask.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
"""


def library_proto(service=LIBRARY_SERVICE):
    """The test proto (file example/v1/library.proto); `service` may replace the services (the
    validate tests compile broken rules with it)."""
    return ('syntax = "proto3";\npackage example.v1;\n' + IMPORTS + LIBRARY_MESSAGES + service)


def catalog_proto(version):
    """The reload test's proto (example/reload/v1/catalog.proto): v1 serves GetItem at
    /v1/items/{id}; v2 moves it to /v1/things/{id} and adds CountItems at /v1/count."""
    get_path = "/v1/items/{id}" if version == 1 else "/v1/things/{id}"
    count = ("" if version == 1 else
             '  rpc CountItems(CountRequest) returns (CountResponse) {\n'
             '    option (google.api.http) = { get: "/v1/count" };\n  }\n')
    return ('syntax = "proto3";\npackage example.reload.v1;\n'
            'import "google/api/annotations.proto";\n'
            'message GetItemRequest { string id = 1; }\n'
            'message Item { string id = 1; int64 version = 2; }\n'
            'message CountRequest { string prefix = 1; }\n'
            'message CountResponse { int64 count = 1; }\n'
            'service Catalog {\n'
            '  rpc GetItem(GetItemRequest) returns (Item) {\n'
            f'    option (google.api.http) = {{ get: "{get_path}" }};\n  }}\n'
            + count + '}\n')


LIBRARY_FILE = "example/v1/library.proto"
CATALOG_FILE = "example/reload/v1/catalog.proto"


# ----- compiling -----------------------------------------------------------------------------
class ProtoSet:
    """One compile: its folder, the descriptor set's path, the imported modules by proto file."""

    def __init__(self, directory, descriptor_set, modules):
        self.dir = directory
        self.descriptor_set = descriptor_set
        self.modules = modules

    def module(self, proto_file):
        return self.modules[proto_file]

    def cls(self, full_name):
        """The generated class of a message, e.g. "example.v1.Book"."""
        return symbol_database.Default().GetSymbol(full_name)


_compile_counter = itertools.count()
_google_api_lock = threading.Lock()
_google_api_dir = [None]


def write_protos(directory, files):
    """Writes {relative path: text} under directory, plus the two google/api protos."""
    files = dict(files)
    files.setdefault("google/api/http.proto", GOOGLE_API_HTTP)
    files.setdefault("google/api/annotations.proto", GOOGLE_API_ANNOTATIONS)
    for rel, text in files.items():
        p = os.path.join(directory, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
    return files


def protoc(directory, inputs, descriptor_set=None, python_out=None):
    """Runs protoc in `directory`; returns the CompletedProcess (raises with stderr on error)."""
    args = [PROTOC, f"-I{directory}", f"-I{PROTO_INCLUDE}"]
    if descriptor_set:
        args += ["--include_imports", f"--descriptor_set_out={descriptor_set}"]
    if python_out:
        args.append(f"--python_out={python_out}")
    p = subprocess.run(args + list(inputs), capture_output=True, text=True, timeout=60,
                       cwd=directory)
    if p.returncode != 0:
        raise RuntimeError(f"protoc failed ({p.returncode}): {p.stderr}")
    return p


def _ensure_google_api(base_dir):
    """The google/api python modules, compiled once per process into a folder on sys.path
    (the generated library module imports google.api.annotations_pb2 by that name)."""
    with _google_api_lock:
        if _google_api_dir[0] is None:
            d = os.path.join(base_dir, "google-api-py")
            os.makedirs(d, exist_ok=True)
            write_protos(d, {})
            protoc(d, ["google/api/http.proto", "google/api/annotations.proto"], python_out=d)
            sys.path.insert(0, d)
            importlib.invalidate_caches()
            importlib.import_module("google.api.annotations_pb2")  # the extension
            _google_api_dir[0] = d
        return _google_api_dir[0]


def _load_generated(py_path):
    name = f"_portico_tc_{next(_compile_counter)}_" + os.path.basename(py_path)[:-3]
    spec = importlib.util.spec_from_file_location(name, py_path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def compile_set(directory, files, name="library.pb", python=True, main=None):
    """Writes and compiles the protos {relative path: text} in `directory` (a fresh tmp dir).

    Returns a ProtoSet: the descriptor set (--include_imports) and, when python is true, the
    generated modules of the non-google files imported under unique names. A proto file name
    may be imported by python only once per process with a given content (protobuf's default
    pool refuses a different file of the same name): compile other variants with python=False.
    """
    os.makedirs(directory, exist_ok=True)
    files = write_protos(directory, files)
    inputs = [main] if main else [f for f in files if not f.startswith("google/")]
    pb = os.path.join(directory, name)
    mods = {}
    if python:
        _ensure_google_api(directory)
        out = os.path.join(directory, "py")
        os.makedirs(out, exist_ok=True)
        protoc(directory, inputs, descriptor_set=pb, python_out=out)
        for f in inputs:
            mods[f] = _load_generated(os.path.join(out, f[:-len(".proto")] + "_pb2.py"))
    else:
        protoc(directory, inputs, descriptor_set=pb)
    return ProtoSet(directory, pb, mods)


def compile_library(directory):
    return compile_set(directory, {LIBRARY_FILE: library_proto()})


def install_descriptor(src, dst):
    """Replaces dst by a copy of src atomically (a reload never reads half a file)."""
    tmp = dst + ".tmp"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


# ----- recording ---------------------------------------------------------------------------
class JsonCall:
    """What the server saw of one call."""

    def __init__(self, method, request, metadata, context):
        self.method = method                  # "/example.v1.Library/GetBook"
        self.request = request                # the parsed request message
        self.json = json_format.MessageToDict(request, preserving_proto_field_name=True)
        self.metadata = metadata              # [(key, value)]
        self.time_remaining = context.time_remaining()
        self.started = time.monotonic()
        self.sent = []                        # [(monotonic time, response message)]
        self.returned = False
        self.aborted = None                   # the grpc.StatusCode it aborted with
        self.failed = None
        self.noticed_inactive_at = None
        self.ended_at = None
        self.cancelled = None                 # known once ended: gRPC reported it cancelled
        self.done = threading.Event()

    @property
    def name(self):
        """"GetBook" of "/example.v1.Library/GetBook"."""
        return self.method.rsplit("/", 1)[-1]

    def header(self, name, default=None):
        for k, v in self.metadata:
            if k == name:
                return v
        return default

    def header_all(self, name):
        return [v for k, v in self.metadata if k == name]

    def keys(self):
        return [k for k, _ in self.metadata]

    def wait_done(self, timeout):
        return self.done.wait(timeout)

    def __repr__(self):
        return (f"<JsonCall {self.method} request={self.json!r} sent={len(self.sent)} "
                f"returned={self.returned} aborted={self.aborted} cancelled={self.cancelled} "
                f"failed={self.failed!r} metadata={self.metadata!r}>")


def status_code(code):
    """grpc.StatusCode from its number or name."""
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int) or str(code).isdigit():
        for c in grpc.StatusCode:
            if c.value[0] == int(code):
                return c
        raise ValueError(f"no status code {code}")
    return grpc.StatusCode[str(code).upper()]


class _Abort(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = status_code(code)
        self.message = message


# ----- the server --------------------------------------------------------------------------
class GrpcJsonUpstream:
    """Serves every service of the given ProtoSet modules; `impl` maps a method name ("GetBook")
    to fn(server, call, request, context) returning the response (or yielding them, for server
    streaming). Methods without an implementation answer the default response message."""

    def __init__(self, proto_set, impl=None, name="grpcjson", lifetime=300.0, max_workers=32,
                 compression=None):
        self.name = name
        self.proto_set = proto_set
        self.impl = dict(LIBRARY_IMPL if impl is None else impl)
        self.lock = threading.Lock()
        self.calls = []
        self._gates = {}
        self._fail_next = {}
        self._stopped = False
        handlers = []
        self.methods = []
        for mod in proto_set.modules.values():
            for svc in mod.DESCRIPTOR.services_by_name.values():
                handlers.append(self._generic(svc))
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers,
                                       thread_name_prefix=f"grpcjson-{name}"),
            handlers=handlers, options=[("grpc.so_reuseport", 0)], compression=compression)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        if not self.port:
            raise RuntimeError("the gRPC test server could not bind 127.0.0.1:0")
        self.address = f"127.0.0.1:{self.port}"
        self.server.start()
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()

    def _generic(self, svc):
        table = {}
        for m in svc.methods:
            req_cls = self.proto_set.cls(m.input_type.full_name)
            resp_cls = self.proto_set.cls(m.output_type.full_name)
            path = f"/{svc.full_name}/{m.name}"
            self.methods.append(path)
            if m.server_streaming:
                fn = self._bind_stream(path, m.name, resp_cls)
                h = grpc.unary_stream_rpc_method_handler(
                    fn, request_deserializer=req_cls.FromString,
                    response_serializer=resp_cls.SerializeToString)
            else:
                fn = self._bind_unary(path, m.name, resp_cls)
                h = grpc.unary_unary_rpc_method_handler(
                    fn, request_deserializer=req_cls.FromString,
                    response_serializer=resp_cls.SerializeToString)
            table[m.name] = h
        return grpc.method_handlers_generic_handler(svc.full_name, table)

    # ----- controls ----------------------------------------------------------------------------
    def open_gate(self, name):
        self._gate(name).set()

    def _gate(self, name):
        with self.lock:
            ev = self._gates.get(name)
            if ev is None:
                ev = self._gates[name] = threading.Event()
            return ev

    def fail_next(self, method, code, message):
        """The next call of `method` (a name like "GetBook") aborts with code and message."""
        with self.lock:
            self._fail_next[method] = (status_code(code), message)

    # ----- inspection --------------------------------------------------------------------------
    def snapshot(self):
        with self.lock:
            return list(self.calls)

    def count(self):
        with self.lock:
            return len(self.calls)

    def since(self, n):
        with self.lock:
            return list(self.calls[n:])

    def wait_calls(self, n, before=0, timeout=5.0):
        """Waits until `n` calls arrived after index `before`; returns them."""
        util.wait_until(lambda: len(self.since(before)) >= n, timeout * util.SLACK,
                        message=f"{n} call(s) on {self.name}")
        return self.since(before)

    # ----- lifecycle ---------------------------------------------------------------------------
    def stop(self):
        with self.lock:
            if self._stopped:
                return
            self._stopped = True
            gates = list(self._gates.values())
        self._timer.cancel()
        for g in gates:
            g.set()
        self.server.stop(grace=0).wait(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ----- handling ----------------------------------------------------------------------------
    def _begin(self, path, request, context):
        md = [(m.key, m.value) for m in context.invocation_metadata()]
        rec = JsonCall(path, request, md, context)
        with self.lock:
            self.calls.append(rec)

        def ended():
            if rec.ended_at is not None:
                return
            rec.ended_at = time.monotonic()
            state = getattr(context, "_state", None)
            client = getattr(state, "client", None)
            if isinstance(client, str):
                rec.cancelled = client == "cancelled"
            else:
                rec.cancelled = not rec.returned and rec.aborted is None
            rec.done.set()

        if not context.add_callback(ended):
            ended()
        initial = [("x-served-by", self.name)]
        custom = rec.header("x-custom")
        if custom is not None:
            initial.append(("x-echo-custom", custom))
        return rec, tuple(initial)

    def _planned_failure(self, name):
        with self.lock:
            return self._fail_next.pop(name, None)

    def _abort(self, rec, context, code, message):
        rec.aborted = status_code(code)
        context.set_trailing_metadata((("x-trailer", "t"),))
        context.abort(rec.aborted, message)

    def _bind_unary(self, path, name, resp_cls):
        def handle(request, context):
            rec, initial = self._begin(path, request, context)
            try:
                planned = self._planned_failure(name)
                if planned:
                    self._abort(rec, context, *planned)
                fn = self.impl.get(name)
                try:
                    resp = fn(self, rec, request, context) if fn else resp_cls()
                except _Abort as a:
                    self._abort(rec, context, a.code, a.message)
                if resp is None:          # cancelled while working: nobody reads the answer
                    return resp_cls()
                context.send_initial_metadata(initial)
                context.set_trailing_metadata((("x-trailer", "t"),))
                rec.sent.append((time.monotonic(), resp))
                rec.returned = True
                return resp
            except Exception as e:  # noqa: BLE001 - recorded, then gRPC's own handling
                if rec.aborted is None and context.is_active():
                    rec.failed = repr(e)
                raise
        return handle

    def _bind_stream(self, path, name, resp_cls):
        def handle(request, context):
            rec, initial = self._begin(path, request, context)
            try:
                planned = self._planned_failure(name)
                if planned:
                    self._abort(rec, context, *planned)
                context.send_initial_metadata(initial)
                fn = self.impl.get(name)
                try:
                    for resp in (fn(self, rec, request, context) if fn else ()):
                        if not context.is_active():
                            rec.noticed_inactive_at = time.monotonic()
                            return
                        rec.sent.append((time.monotonic(), resp))
                        yield resp
                except _Abort as a:
                    self._abort(rec, context, a.code, a.message)
                if rec.noticed_inactive_at is not None or not context.is_active():
                    return                # the call ended under us (a cancel): not returned
                context.set_trailing_metadata((("x-trailer", "t"),))
                rec.returned = True
            except Exception as e:  # noqa: BLE001
                if rec.aborted is None and context.is_active():
                    rec.failed = repr(e)
                raise
        return handle


def sleep_watching(rec, context, seconds):
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


# ----- the Library's behaviour ---------------------------------------------------------------
def _cls(name):
    return symbol_database.Default().GetSymbol(name)


def full_book():
    """The book GetBook answers for id "full": every kind of field, set."""
    Book = _cls("example.v1.Book")
    b = Book(id="full", title="Dune", page_count=9007199254740993, isbn=9780441172719,
             genre=3, cover=b"\x00\x01\xfe\xffcover", tags=["sf", "classic"], price=9.5,
             available=True, shelf_name="s1")
    b.publish_time.FromJsonString("1965-08-01T12:30:00.250Z")
    b.read_time.FromJsonString("3600.500s")
    b.author.display_name = "Frank Herbert"
    b.author.birth_year = 1920
    b.rating.value = 4
    b.subtitle.value = ""
    b.metadata.update({"k": "v", "n": 1, "list": [True, None]})
    b.extra.string_value = "x"
    b.labels["lang"] = "en"
    b.changed.paths.extend(["title", "author.display_name"])
    return b


# The JSON the gateway must print for full_book() (proto3 JSON, default options).
FULL_BOOK_JSON = {
    "id": "full", "title": "Dune", "pageCount": "9007199254740993", "isbn": "9780441172719",
    "genre": "POETRY", "publishTime": "1965-08-01T12:30:00.250Z", "readTime": "3600.500s",
    "cover": "AAH+/2NvdmVy", "tags": ["sf", "classic"],
    "author": {"displayName": "Frank Herbert", "birthYear": 1920},
    "rating": 4, "subtitle": "", "metadata": {"k": "v", "n": 1, "list": [True, None]},
    "extra": "x", "price": 9.5, "available": True, "labels": {"lang": "en"},
    "shelfName": "s1", "changed": "title,author.displayName",
}


def _get_book(srv, rec, req, ctx):
    if req.book.id == "full":
        return full_book()
    if req.book.id == "missing":
        raise _Abort(grpc.StatusCode.NOT_FOUND, "no book missing")
    Book = _cls("example.v1.Book")
    b = Book(id=req.book.id, shelf_name=req.shelf, title=f"Title {req.book.id}")
    if req.view == 2:  # FULL
        b.author.display_name = "Anon"
    return b


def _list_books(srv, rec, req, ctx):
    resp = _cls("example.v1.ListBooksResponse")()
    for i in range(req.page.size or 1):
        resp.books.add(id=f"{req.shelf}-{i}", tags=list(req.tags))
    resp.next_page_token = req.page.token + "+"
    resp.total_size = 42
    return resp


def _create_book(srv, rec, req, ctx):
    b = _cls("example.v1.Book")()
    b.CopyFrom(req.book)
    b.id = b.id or "new-1"
    b.shelf_name = req.shelf
    return b


def _update_book(srv, rec, req, ctx):
    b = _cls("example.v1.Book")()
    b.CopyFrom(req.book)
    if req.HasField("update_mask"):
        b.changed.CopyFrom(req.update_mask)
    return b


def _delete_book(srv, rec, req, ctx):
    if req.name.endswith("/missing"):
        raise _Abort(grpc.StatusCode.NOT_FOUND, f"no book {req.name}")
    return _cls("google.protobuf.Empty")()


def _archive_book(srv, rec, req, ctx):
    resp = _cls("example.v1.ArchiveBookResponse")()
    resp.book.id = req.id
    resp.book.title = req.reason
    resp.archive_time.FromJsonString("2024-02-29T23:59:59Z")
    return resp


def _search_books(srv, rec, req, ctx):
    resp = _cls("example.v1.ListBooksResponse")()
    resp.books.add(id=f"{req.shelf}:{req.query}")
    resp.total_size = req.page.size
    return resp


def _get_author(srv, rec, req, ctx):
    b = _cls("example.v1.Book")(id=req.book.id, title="T")
    b.author.display_name = f"Author of {req.book.id}"
    b.author.birth_year = 1900
    return b


def _get_tags(srv, rec, req, ctx):
    return _cls("example.v1.Book")(id=req.book.id, tags=["a", "b", req.book.id])


def _get_edition(srv, rec, req, ctx):
    return _cls("example.v1.Book")(id=str(req.number), page_count=req.number,
                                   isbn=req.printing)


def _echo(srv, rec, req, ctx):
    return req


def _fail(srv, rec, req, ctx):
    raise _Abort(req.code, req.message)


def _sleep(srv, rec, req, ctx):
    if not sleep_watching(rec, ctx, req.ms / 1000.0):
        return None
    return _cls("google.protobuf.Empty")()


def stream_book(shelf, i):
    """Book i of WatchShelf (so a test can compute what it should get)."""
    return _cls("example.v1.Book")(id=f"{shelf}-{i}", page_count=i * 10, genre=1 + i % 3)


def _watch_shelf(srv, rec, req, ctx):
    count = req.count or 3
    for i in range(count):
        if req.fail_code and i == req.fail_after:
            raise _Abort(req.fail_code, req.fail_message)
        if i == 1 and req.gate:
            gate = srv._gate(req.gate)
            while not gate.wait(0.01):
                if not ctx.is_active():
                    rec.noticed_inactive_at = time.monotonic()
                    return
                if time.monotonic() - rec.started > GATE_WAIT:
                    raise _Abort(grpc.StatusCode.FAILED_PRECONDITION, "the gate never opened")
        if i > 0 and req.interval_ms and not sleep_watching(rec, ctx, req.interval_ms / 1000.0):
            return
        yield stream_book(req.shelf, i)


def book_json(shelf, i):
    """stream_book(shelf, i) in proto3 JSON (what each streamed line must be)."""
    d = {"id": f"{shelf}-{i}", "genre": ["FICTION", "HISTORY", "POETRY"][i % 3]}
    if i:
        d["pageCount"] = str(i * 10)
    return d


# grpc-status -> (HTTP status, code), the table of docs/transcoding.md.
STATUS_MAP = {
    1: (499, "cancelled"), 2: (500, "unknown"), 3: (400, "invalid_argument"),
    4: (504, "deadline_exceeded"), 5: (404, "not_found"), 6: (409, "already_exists"),
    7: (403, "permission_denied"), 8: (429, "resource_exhausted"),
    9: (400, "failed_precondition"), 10: (409, "aborted"), 11: (400, "out_of_range"),
    12: (501, "unimplemented"), 13: (500, "internal"), 14: (503, "unavailable"),
    15: (500, "data_loss"), 16: (401, "unauthenticated"),
}


def _ping(srv, rec, req, ctx):
    return _cls("example.v1.PingResponse")(word=req.word, served_by=srv.name)


def _get_item(srv, rec, req, ctx):
    return _cls("example.reload.v1.Item")(id=req.id, version=7)


def _count_items(srv, rec, req, ctx):
    return _cls("example.reload.v1.CountResponse")(count=3)


LIBRARY_IMPL = {
    "GetBook": _get_book, "ListBooks": _list_books, "CreateBook": _create_book,
    "UpdateBook": _update_book, "DeleteBook": _delete_book, "ArchiveBook": _archive_book,
    "SearchBooks": _search_books, "GetAuthor": _get_author, "GetTags": _get_tags,
    "GetEdition": _get_edition, "Echo": _echo, "WatchShelf": _watch_shelf, "Fail": _fail,
    "Sleep": _sleep, "Ping": _ping, "GetItem": _get_item, "CountItems": _count_items,
}


# ----- HTTP clients for the tests -------------------------------------------------------------
class HttpResponse:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers          # [(name, value)] as received
        self.body = body

    def header(self, name, default=None):
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), default)

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return f"<HttpResponse {self.status} headers={self.headers!r} body={self.body[:600]!r}>"


def http_call(port, method, path, body=None, headers=None, host=None, timeout=10.0):
    """One HTTP/1.1 request on a fresh connection (http.client; any method name). A dict or
    list body is sent as JSON with content-type application/json."""
    hdrs = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        body = body.encode()
    if body is not None:
        hdrs.setdefault("Content-Type", "application/json")
    if host:
        hdrs["Host"] = host
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout * util.SLACK)
    try:
        c.request(method, path, body=body, headers=hdrs)
        r = c.getresponse()
        return HttpResponse(r.status, r.getheaders(), r.read())
    finally:
        c.close()


class RawStream:
    """An HTTP/1.1 request on a raw socket whose response body is read as it arrives (chunked,
    content-length or until close), so a test can see what reached it and when."""

    def __init__(self, port, method, path, headers=(), body=b"", host="127.0.0.1"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5 * util.SLACK)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{k}: {v}" for k, v in headers]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        self.raw = b""
        self.body = b""          # decoded body received so far
        self.consumed = 0        # how much of self.body read_line handed out
        self.status = None
        self.headers = []
        self.ended = False       # the body's end was seen (last chunk, length, or EOF)
        self._mode = None
        self._left = None        # chunked: bytes left in this chunk (None: a size line next)

    def header(self, name, default=None):
        return next((v for k, v in self.headers if k.lower() == name.lower()), default)

    def _recv(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no more data in time")
        self.sock.settimeout(left)
        data = self.sock.recv(65536)
        if not data:
            if self._mode == "close":
                self.ended = True
                return
            raise ConnectionError(f"connection closed mid-response (body so far {self.body!r})")
        self.raw += data
        if self.status is not None:
            self._decode()

    def read_head(self, timeout=5.0):
        deadline = time.monotonic() + timeout * util.SLACK
        while b"\r\n\r\n" not in self.raw:
            self._recv(deadline)
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = [(k.strip(), v.strip()) for k, _, v in
                        (ln.partition(":") for ln in lines[1:])]
        te = (self.header("transfer-encoding") or "").lower()
        if "chunked" in te:
            self._mode = "chunked"
        elif self.header("content-length") is not None:
            self._mode = "length"
            self._left = int(self.header("content-length"))
        else:
            self._mode = "close"
        self._decode()
        return self.status

    def _decode(self):
        if self._mode == "length":
            take = self.raw[:self._left]
            self.body += take
            self.raw = self.raw[len(take):]
            self._left -= len(take)
            self.ended = self._left == 0
        elif self._mode == "close":
            self.body += self.raw
            self.raw = b""
        else:
            while not self.ended:
                if self._left is None:
                    eol = self.raw.find(b"\r\n")
                    if eol < 0:
                        return
                    size = int(self.raw[:eol].split(b";")[0].strip(), 16)
                    if size == 0:
                        if b"\r\n\r\n" in self.raw[eol:] or self.raw[eol + 2:eol + 4] == b"\r\n":
                            self.ended = True
                        return
                    self.raw = self.raw[eol + 2:]
                    self._left = size
                take = self.raw[:self._left]
                self.body += take
                self.raw = self.raw[len(take):]
                self._left -= len(take)
                if self._left:
                    return
                if len(self.raw) < 2:
                    self._left = 0
                    return
                self.raw = self.raw[2:]   # the CRLF after the chunk
                self._left = None

    def wait_for(self, predicate, timeout=5.0):
        """Reads until predicate(body so far) is true; raises TimeoutError otherwise."""
        deadline = time.monotonic() + timeout * util.SLACK
        while not predicate(self.body):
            if self.ended:
                raise ConnectionError(f"the response ended first: {self.body!r}")
            self._recv(deadline)
        return self.body

    def read_line(self, timeout=5.0):
        """The next complete body line (without its "\\n")."""
        self.wait_for(lambda b: b"\n" in b[self.consumed:], timeout)
        end = self.body.index(b"\n", self.consumed)
        line = self.body[self.consumed:end]
        self.consumed = end + 1
        return line

    def read_to_end(self, timeout=10.0):
        deadline = time.monotonic() + timeout * util.SLACK
        while not self.ended:
            self._recv(deadline)
        return self.body

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_portico(binary, *args, cwd=None, timeout=30):
    """`portico ARGS` (validate, explain): the CompletedProcess, text."""
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd)


def curl(*args, timeout=10.0):
    """curl -sS with a hard time limit; returns the CompletedProcess (bytes)."""
    t = timeout * util.SLACK
    return subprocess.run(["curl", "-sS", "--noproxy", "*", "--max-time", str(int(t)), *args],
                          capture_output=True, timeout=t + 10)


def parse_curl_head(out):
    """curl -i output: (status line, [(name, value)], body)."""
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = [(k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in lines[1:])]
    return lines[0], headers, body


class CurlStream:
    """curl -N running in the background; its stdout read line by line with timeouts."""

    def __init__(self, *args):
        import queue
        self.lines = queue.Queue()
        self.proc = subprocess.Popen(["curl", "-sS", "-N", "--noproxy", "*", "--max-time",
                                      str(int(30 * util.SLACK)), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._t = threading.Thread(target=self._pump, daemon=True)
        self._t.start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def read_line(self, timeout=5.0):
        return self.lines.get(timeout=timeout * util.SLACK)

    def finish(self, timeout=10.0):
        self.proc.wait(timeout * util.SLACK)
        self._t.join(5)
        rest = []
        while not self.lines.empty():
            item = self.lines.get()
            if item is not None:
                rest.append(item)
        return self.proc.returncode, rest, self.proc.stderr.read()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
