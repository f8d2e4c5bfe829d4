// The filter chain through a scripted stream: every phase with Continue, StopIteration resumed
// from a timer, and Replied; a reset in the middle of a body.
#include "filters/chain.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "net/event_loop.hpp"

namespace portico::filters {
namespace {

enum class Phase { ReqHeaders, ReqBody, RespHeaders, RespBody };
const char* name(Phase p) {
  switch (p) {
    case Phase::ReqHeaders:
      return "reqh";
    case Phase::ReqBody:
      return "reqb";
    case Phase::RespHeaders:
      return "resph";
    case Phase::RespBody:
      return "respb";
  }
  return "?";
}
enum class Act { Continue, Stop, Reply };

// Resumes a paused stream from the event loop, unless the filter cancelled it meanwhile.
class Resumer final : public net::Timed {
 public:
  explicit Resumer(net::EventLoop& loop) : loop_(loop) {}
  // After `after_ms`, the stream goes on, or with `reply` it is answered instead.
  void schedule(FilterCallbacks& stream, uint64_t after_ms, bool reply) {
    stream_ = &stream;
    reply_ = reply;
    loop_.setTimeout(*this, after_ms);
  }
  void cancel() { stream_ = nullptr; }
  void onTimer() override {
    ++fired;
    FilterCallbacks* s = std::exchange(stream_, nullptr);
    if (s == nullptr) return;
    if (reply_) {
      s->reply({http::ErrorCode::Unavailable, "checked later: no"});
    } else {
      s->resume();
    }
  }
  int fired = 0;

 private:
  net::EventLoop& loop_;
  FilterCallbacks* stream_ = nullptr;
  bool reply_ = false;
};

struct Script {
  std::vector<std::string>* log;
  Resumer* resumer;
  std::map<Phase, Act> acts;  // what the filter does in a phase (default Continue)
  bool reply_later = false;   // a Stop ends with reply() instead of resume()
};

class ScriptedFilter final : public Filter {
 public:
  ScriptedFilter(std::string name, const Script& script) : name_(std::move(name)), s_(script) {}
  FilterStatus onRequestHeaders(FilterCallbacks& cb, const RequestInfo&) override {
    return act(cb, Phase::ReqHeaders, "");
  }
  FilterStatus onRequestBody(FilterCallbacks& cb, std::string_view data, bool end) override {
    return act(cb, Phase::ReqBody, std::string(data) + (end ? "$" : ""));
  }
  FilterStatus onResponseHeaders(FilterCallbacks& cb, ResponseInfo& response) override {
    response.added_fields.append(name_ + ";");
    return act(cb, Phase::RespHeaders, std::to_string(response.status));
  }
  FilterStatus onResponseBody(FilterCallbacks& cb, std::string_view data, bool end) override {
    return act(cb, Phase::RespBody, std::string(data) + (end ? "$" : ""));
  }
  void onComplete(const StreamOutcome& outcome) override {
    s_.resumer->cancel();  // no callback may reach a stream that has ended
    s_.log->push_back(name_ + ":complete" +
                      (outcome.reset ? "(reset)" : "(" + std::to_string(outcome.status) + ")"));
  }

 private:
  FilterStatus act(FilterCallbacks& cb, Phase phase, const std::string& what) {
    s_.log->push_back(name_ + ":" + name(phase) + (what.empty() ? "" : " " + what));
    auto it = s_.acts.find(phase);
    Act a = it == s_.acts.end() ? Act::Continue : it->second;
    if (a == Act::Stop) {
      s_.log->push_back(name_ + ":paused");
      s_.resumer->schedule(cb, 5, s_.reply_later);
      return StopIteration;
    }
    if (a == Act::Reply) {
      cb.reply({http::ErrorCode::Forbidden, "no"});
      return Replied;
    }
    return Continue;
  }

  std::string name_;
  Script s_;
};

class ScriptedFactory final : public FilterFactory {
 public:
  ScriptedFactory(std::string name, Script script) : name_(std::move(name)), script_(script) {}
  Filter& create(Arena& arena) const override { return arena.make<ScriptedFilter>(name_, script_); }

 private:
  std::string name_;
  Script script_;
};

// A stream as the session drives one: request head, two body chunks, the upstream's response
// head and two body chunks, then the end. It waits while the chain is paused; a reply from a
// filter is sent as the gateway's own answer (its head through the response phase).
class ScriptedStream final : public FilterCallbacks {
 public:
  ScriptedStream(const FilterFactories& factories, net::EventLoop& loop,
                 std::vector<std::string>& log)
      : loop_(loop), log_(log) {
    chain_.create(factories, arena_);
  }

  void start() { advance(); }
  // The client went away (RST, FIN mid-body, timeout) after `steps` steps of the script.
  void resetAfter(int steps) { reset_after_ = steps; }
  // What the stream tries after its end: nothing must reach a filter.
  void pokeAfterEnd() {
    ResponseInfo response{200, fields_};
    EXPECT_EQ(chain_.requestBody(*this, "late", true), FilterStatus::StopIteration);
    EXPECT_EQ(chain_.responseHeaders(*this, response), FilterStatus::StopIteration);
    chain_.complete({200, false});
    EXPECT_EQ(chain_.resume(*this), FilterStatus::StopIteration);
  }

  void reply(const Reply& r) override {
    log_.push_back("stream:reply " + std::to_string(http::statusOf(r.code)));
    replied_ = true;
    if (chain_.paused()) {
      chain_.replied();
      sendLocalReply();
    }
  }
  void resume() override {
    log_.push_back("stream:resume");
    FilterStatus status = chain_.resume(*this);
    if (status == FilterStatus::Continue) ++step_;
    if (status == FilterStatus::Replied && step_ < 3) {
      sendLocalReply();
      return;
    }
    if (status == FilterStatus::Replied) {
      finish();
      return;
    }
    advance();
  }

  const std::string& responseFields() const { return fields_; }

 private:
  FilterStatus runStep(int step) {
    switch (step) {
      case 0:
        return chain_.requestHeaders(*this, request_);
      case 1:
        return chain_.requestBody(*this, "q1", false);
      case 2:
        return chain_.requestBody(*this, "q2", true);
      case 3: {
        ResponseInfo response{200, fields_};
        return chain_.responseHeaders(*this, response);
      }
      case 4:
        return chain_.responseBody(*this, "r1", false);
      case 5:
        return chain_.responseBody(*this, "r2", true);
    }
    return FilterStatus::Continue;
  }

  void advance() {
    while (!ended_ && step_ < 6) {
      if (step_ == reset_after_) {
        log_.push_back("stream:reset");
        end({0, true});
        return;
      }
      FilterStatus status = runStep(step_);
      if (status == FilterStatus::StopIteration) return;  // resume() goes on
      if (status == FilterStatus::Replied) {
        if (step_ < 3) {
          sendLocalReply();
        } else {
          finish();
        }
        return;
      }
      ++step_;
    }
    if (!ended_) finish();
  }

  void sendLocalReply() {
    ResponseInfo response{403, fields_};
    FilterStatus status = chain_.responseHeaders(*this, response);
    EXPECT_EQ(status, FilterStatus::Continue);
    end({403, false});
  }
  void finish() { end({200, false}); }
  void end(const StreamOutcome& outcome) {
    ended_ = true;
    chain_.complete(outcome);
    chain_.complete(outcome);  // a second end changes nothing
    loop_.stop();
  }

  net::EventLoop& loop_;
  std::vector<std::string>& log_;
  Arena arena_;
  FilterChain chain_;
  net::SocketAddress client_;
  RequestInfo request_{client_, "GET", {}};
  std::string fields_;
  int step_ = 0;
  int reset_after_ = -1;
  bool replied_ = false;
  bool ended_ = false;
};

struct ChainRun {
  std::vector<std::string> log;
  std::string fields;
  int resumes_fired = 0;
};

// Two filters, a then b; `a_acts` is what a does.
ChainRun runChain(std::map<Phase, Act> a_acts, int reset_after = -1, bool reply_later = false) {
  net::EventLoop loop;
  ChainRun run;
  Resumer resumer(loop);
  FilterFactories factories;
  factories.push_back(std::make_unique<ScriptedFactory>(
      "a", Script{&run.log, &resumer, std::move(a_acts), reply_later}));
  factories.push_back(std::make_unique<ScriptedFactory>("b", Script{&run.log, &resumer, {}}));
  ScriptedStream stream(factories, loop, run.log);
  stream.resetAfter(reset_after);
  stream.start();
  if (run.log.empty() || run.log.back().find(":complete") == std::string::npos) loop.run();
  run.fields = stream.responseFields();
  stream.pokeAfterEnd();
  run.resumes_fired = resumer.fired;
  return run;
}

using Log = std::vector<std::string>;

TEST(FilterChain, AllContinueRunsRequestPhasesInOrderResponsePhasesInReverseThenCompleteOnce) {
  ChainRun r = runChain({});
  EXPECT_EQ(r.log, (Log{"a:reqh", "b:reqh", "a:reqb q1", "b:reqb q1", "a:reqb q2$", "b:reqb q2$",
                        "b:resph 200", "a:resph 200", "b:respb r1", "a:respb r1", "b:respb r2$",
                        "a:respb r2$", "a:complete(200)", "b:complete(200)"}));
  EXPECT_EQ(r.fields, "b;a;");
}

TEST(FilterChain, StopIterationInEachPhasePausesUntilATimerResumesIt) {
  const Log all = runChain({}).log;
  for (Phase p : {Phase::ReqHeaders, Phase::ReqBody, Phase::RespHeaders, Phase::RespBody}) {
    ChainRun r = runChain({{p, Act::Stop}});
    SCOPED_TRACE(name(p));
    // Each of a's runs of that phase (a body phase runs once per chunk) pauses, and the timer
    // resumes it; the next filter runs only after that, then the rest as usual.
    Log expected;
    int pauses = 0;
    for (const std::string& line : all) {
      expected.push_back(line);
      if (line.starts_with(std::string("a:") + name(p))) {
        expected.push_back("a:paused");
        expected.push_back("stream:resume");
        ++pauses;
      }
    }
    EXPECT_EQ(r.log, expected);
    EXPECT_EQ(r.resumes_fired, pauses);
  }
}

TEST(FilterChain, ReplyInARequestPhaseStopsTheRequestPathAndAnswersThroughTheResponsePhase) {
  ChainRun head = runChain({{Phase::ReqHeaders, Act::Reply}});
  EXPECT_EQ(head.log, (Log{"a:reqh", "stream:reply 403", "b:resph 403", "a:resph 403",
                           "a:complete(403)", "b:complete(403)"}));
  EXPECT_EQ(head.fields, "b;a;");
  ChainRun body = runChain({{Phase::ReqBody, Act::Reply}});
  EXPECT_EQ(body.log, (Log{"a:reqh", "b:reqh", "a:reqb q1", "stream:reply 403", "b:resph 403",
                           "a:resph 403", "a:complete(403)", "b:complete(403)"}));
}

TEST(FilterChain, ReplyInAResponsePhaseEndsThatPhase) {
  ChainRun r = runChain({{Phase::RespHeaders, Act::Reply}});
  EXPECT_EQ(r.log, (Log{"a:reqh", "b:reqh", "a:reqb q1", "b:reqb q1", "a:reqb q2$", "b:reqb q2$",
                        "b:resph 200", "a:resph 200", "stream:reply 403", "a:complete(200)",
                        "b:complete(200)"}));
  ChainRun body = runChain({{Phase::RespBody, Act::Reply}});
  EXPECT_EQ(body.log.back(), "b:complete(200)");
  EXPECT_EQ(std::count(body.log.begin(), body.log.end(), "a:respb r1"), 1);
  EXPECT_EQ(std::count(body.log.begin(), body.log.end(), "b:respb r2$"), 0);
}

TEST(FilterChain, ReplyAfterAPauseEndsThePause) {
  ChainRun r = runChain({{Phase::ReqHeaders, Act::Stop}}, -1, /*reply_later=*/true);
  EXPECT_EQ(r.resumes_fired, 1);
  EXPECT_EQ(r.log, (Log{"a:reqh", "a:paused", "stream:reply 503", "b:resph 403", "a:resph 403",
                        "a:complete(403)", "b:complete(403)"}));
}

TEST(FilterChain, ResetMidBodyCompletesOnceAndNoFilterRunsAgain) {
  // After the first request body chunk: the client is gone.
  ChainRun r = runChain({}, /*reset_after=*/2);
  EXPECT_EQ(r.log, (Log{"a:reqh", "b:reqh", "a:reqb q1", "b:reqb q1", "stream:reset",
                        "a:complete(reset)", "b:complete(reset)"}));
  // In the middle of the response body.
  ChainRun resp = runChain({}, /*reset_after=*/5);
  EXPECT_EQ(resp.log.back(), "b:complete(reset)");
  EXPECT_EQ(std::count(resp.log.begin(), resp.log.end(), "a:complete(reset)"), 1);
  EXPECT_EQ(std::count(resp.log.begin(), resp.log.end(), "a:respb r2$"), 0);
}

TEST(FilterChain, ResetWhileAFilterIsPausedCancelsItsResume) {
  // a pauses in the body; the reset comes before the timer: the late resume reaches nobody.
  net::EventLoop loop;
  std::vector<std::string> log;
  Resumer resumer(loop);
  FilterFactories factories;
  factories.push_back(std::make_unique<ScriptedFactory>(
      "a", Script{&log, &resumer, {{Phase::ReqBody, Act::Stop}}}));
  factories.push_back(std::make_unique<ScriptedFactory>("b", Script{&log, &resumer, {}}));
  Arena arena;
  FilterChain chain;
  chain.create(factories, arena);
  struct Quiet final : FilterCallbacks {
    void reply(const Reply&) override { ADD_FAILURE() << "reply after the end"; }
    void resume() override { ADD_FAILURE() << "resume after the end"; }
  } stream;
  net::SocketAddress client;
  RequestInfo request{client, "POST", {}};
  EXPECT_EQ(chain.requestHeaders(stream, request), FilterStatus::Continue);
  EXPECT_EQ(chain.requestBody(stream, "q1", false), FilterStatus::StopIteration);
  EXPECT_TRUE(chain.paused());
  chain.complete({0, true});  // the client reset the stream
  class Stopper final : public net::Timed {
   public:
    explicit Stopper(net::EventLoop& l) : loop(l) {}
    void onTimer() override { loop.stop(); }
    net::EventLoop& loop;
  } stopper(loop);
  loop.setTimeout(stopper, 30);  // past the resume's 5 ms
  loop.run();
  EXPECT_EQ(resumer.fired, 1);
  EXPECT_EQ(chain.resume(stream), FilterStatus::StopIteration);
  EXPECT_EQ(log, (Log{"a:reqh", "b:reqh", "a:reqb q1", "a:paused", "a:complete(reset)",
                      "b:complete(reset)"}));
}

TEST(FilterChain, NoFiltersIsEmptyAndEverythingContinues) {
  Arena arena;
  FilterChain chain;
  chain.create({}, arena);
  EXPECT_TRUE(chain.empty());
  struct Nothing final : FilterCallbacks {
    void reply(const Reply&) override {}
    void resume() override {}
  } stream;
  net::SocketAddress client;
  RequestInfo request{client, "GET", {}};
  EXPECT_EQ(chain.requestHeaders(stream, request), FilterStatus::Continue);
  std::string fields;
  ResponseInfo response{200, fields};
  EXPECT_EQ(chain.responseHeaders(stream, response), FilterStatus::Continue);
  EXPECT_EQ(fields, "");
}

}  // namespace
}  // namespace portico::filters
