#pragma once
// A stand-in for src/proxy/worker.hpp for the http2_server fuzz target (see session.hpp here):
// the clock of the event loop and request ids are all Http2Connection uses of a Worker.

#include <cstdint>
#include <cstring>

namespace portico::proxy {

class Worker {
 public:
  struct Loop {
    uint64_t now_ms = 0;  // advanced by the target, so the control-frame budget refills
    uint64_t nowMs() const { return now_ms; }
  };

  Loop& loop() { return loop_; }
  // 32 hex digits, as the real one writes; a fixed id keeps runs reproducible.
  void newRequestId(char* out) { std::memset(out, 'f', 32); }

 private:
  Loop loop_;
};

}  // namespace portico::proxy
