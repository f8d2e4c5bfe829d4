#pragma once
// For filters' unit tests: a stream that records what its filters asked of it.

#include <optional>
#include <string>

#include "filters/filter.hpp"

namespace portico::filters::testing {

struct RecordingStream final : FilterCallbacks {
  void reply(const Reply& r) override {
    ++replies;
    last_reply = r;
    reply_message.assign(r.message);
  }
  void resume() override { ++resumes; }

  int replies = 0;
  int resumes = 0;
  std::optional<Reply> last_reply;
  std::string reply_message;  // last_reply's message, kept
};

}  // namespace portico::filters::testing
