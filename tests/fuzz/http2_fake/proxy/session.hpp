#pragma once
// A stand-in for src/proxy/session.hpp, seen only by the http2_server fuzz target's own copy of
// src/proxy/http2_connection.cpp (tests/fuzz/fuzz.cmake puts this folder first on its include
// path). The real Session is a whole client connection (sockets, TLS, routing, upstreams); what
// Http2Connection needs from it is only these four calls, which tests/fuzz/http2_server.cpp
// defines. Should Http2Connection call more of Session, this fails to compile: add it here.

namespace portico::proxy {

struct Http2Stream;

class Session {
 public:
  // On the connection's session: a new stream session serving `stream`, or nullptr when the
  // worker is at its budget of stream sessions.
  Session* startStreamSession(Http2Stream& stream);
  // On the connection's session: run its drive loop (again).
  void requestDrive();
  // On a stream session: the stream has bytes to read or room to write.
  void onStreamReady();
  // On a stream session: the stream is gone (reset, or the connection is closing).
  void abortStream();

  struct State;  // the fake's own, in tests/fuzz/http2_server.cpp
  State* state = nullptr;
};

}  // namespace portico::proxy
