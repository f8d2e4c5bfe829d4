// The session as its filters' stream: running the route's filter chain (filters/chain.hpp),
// answering for a filter, going on after a pause, and the surroundings filters may ask for
// (filters/environment.hpp). No filter is named here.
#include <ctime>
#include <string_view>
#include <utility>

#include "auth/authenticator.hpp"
#include "proxy/session.hpp"
#include "proxy/worker.hpp"
#include "ratelimit/local_store.hpp"
#include "ratelimit/redis_client.hpp"

namespace portico::proxy {

// A preflight's route is the one the request it announces would take, when that route's
// filters answer preflights (its `methods` need not list OPTIONS). A method no route on the path
// takes is still answered (with a no) by a route there that answers preflights. Any other
// OPTIONS is routed as itself.
void Session::routePreflight(std::string_view announced, router::RequestView view,
                             router::MatchResult& match) {
  const Snapshot& snap = *rq_->snap->shared;
  auto answers = [&](const router::MatchResult& m) {
    return m.status == router::MatchStatus::Matched &&
           snap.routes[m.route_index].answers_preflights;
  };
  view.method = announced;
  router::MatchResult as_announced = snap.router->match(view);
  if (answers(as_announced)) {
    match = std::move(as_announced);
    return;
  }
  if (as_announced.status != router::MatchStatus::MethodNotAllowed) return;
  std::string_view allow = as_announced.allow;  // "GET, POST": what the path's routes take
  while (!allow.empty()) {
    size_t comma = allow.find(',');
    view.method = allow.substr(0, comma);
    allow = comma == std::string_view::npos ? std::string_view() : allow.substr(comma + 2);
    router::MatchResult other = snap.router->match(view);
    if (answers(other)) {
      match = std::move(other);
      return;
    }
  }
}

bool Session::runRequestFilters(const router::MatchResult& match) {
  RequestState& rq = *rq_;
  filters::RequestInfo& request = rq.scratch.filter_request;
  request = {clientAddress(), rq.head.method, rq.head.headers, rq.head.query, peer_};
  switch (rq.chain.requestHeaders(*this, request)) {
    case filters::FilterStatus::Continue:
      return true;
    case filters::FilterStatus::Replied:
      if (!rq.resp_head_done) {
        replyError(http::ErrorCode::Internal, "a filter ended the request without an answer", true);
      }
      return false;
    case filters::FilterStatus::StopIteration:
      rq.pending_match = match;  // the rest runs when the filter resumes the request
      state_ = State::FilterWait;
      return false;
  }
  return false;
}

void Session::reply(const filters::Reply& answer) {
  if (!rq_ || rq_->resp_head_done) return;
  const bool paused = state_ == State::FilterWait;
  if (paused) {
    rq_->chain.replied();  // first: the answer goes through the response phase
    rq_->redis_waiter = nullptr;
    rq_->resume_at_ms = 0;
    state_ = State::ReadHead;  // until the reply moves it on
  }
  // A body we will not read ends the connection after the answer.
  const bool close = answer.close || rq_->head.framing != http::BodyFraming::None;
  if (answer.empty_status != 0) {
    replyEmpty(answer.empty_status, close);
  } else {
    replyError(answer.code, answer.message, close, {}, answer.www_authenticate);
  }
  if (paused) drive();
}

void Session::resume() {
  if (!rq_ || state_ != State::FilterWait) return;
  state_ = State::ReadHead;  // until admit() or a reply moves it on
  RequestState& rq = *rq_;
  switch (rq.chain.resume(*this)) {
    case filters::FilterStatus::Continue:
      admit(*rq.route, *rq.pending_match);
      break;
    case filters::FilterStatus::Replied:
      break;  // the filter answered
    case filters::FilterStatus::StopIteration:
      state_ = State::FilterWait;  // the next filter paused in turn
      return;
  }
  drive();
}

const std::vector<std::string>* Session::runResponseFilters(int status, bool from_upstream) {
  RequestState& rq = *rq_;
  if (rq.chain.empty()) return nullptr;
  filters::ResponseInfo response{status, rq.filter_headers, from_upstream};
  // (No filter pauses a response yet: a StopIteration here is taken as Continue.)
  rq.chain.responseHeaders(*this, response);
  return response.dropped;
}

std::string& Session::upstreamFields() { return rq_->upstream_fields; }

void Session::limitRequestBody(uint64_t max_bytes) { rq_->max_body = max_bytes; }

void Session::editUpstreamRequest(const http::FieldEdits& edits) { rq_->upstream_edits = &edits; }

// --- filters::StreamEnvironment ---

auth::Identity& Session::identity() {
  if (!rq_->identity) rq_->identity = std::make_unique<auth::Identity>();
  return *rq_->identity;
}

void Session::markAuthenticated() { rq_->authenticated = true; }

net::EventLoop& Session::loop() { return worker_.loop(); }

std::shared_ptr<const void> Session::holdSnapshot() { return rq_->snap->shared; }

auth::TokenCache* Session::tokenCache() {
  if (!rq_->snap->token_cache) rq_->snap->token_cache = rq_->snap->shared->auth->makeCache();
  return rq_->snap->token_cache.get();
}

const std::vector<std::shared_ptr<const auth::jwt::KeySet>>* Session::fetchedKeys() {
  return &rq_->snap->jwks;
}

void Session::unknownKid(uint32_t provider) {
  worker_.unknownKid(rq_->snap->shared->jwks_urls[provider]);
}

auth::VerifyPool* Session::verifyPool(bool hashing) {
  return hashing ? worker_.hashPool() : worker_.callPool();
}

bool Session::authenticated() const { return rq_->authenticated && rq_->identity; }

ratelimit::LimitScratch& Session::limitScratch() { return rq_->scratch.limits; }

std::atomic<int64_t>& Session::concurrencyCounter(uint32_t route, const std::string& name) {
  std::atomic<int64_t>*& counter = rq_->snap->concurrency[route];
  if (counter == nullptr) counter = worker_.localStore()->concurrencyCounter(name);
  return *counter;
}

ratelimit::LocalStore& Session::localStore() { return *worker_.localStore(); }

ratelimit::SyncStore& Session::syncStore() { return *worker_.syncStore(); }

bool Session::callRedis(std::span<const std::string_view> keys,
                        std::span<const std::string_view> args, ratelimit::RedisWaiter& waiter) {
  ratelimit::RedisClient* redis = worker_.redis();
  if (redis == nullptr || !redis->evalScript(keys, args, this, ++redis_generation_)) return false;
  rq_->redis_waiter = &waiter;
  return true;
}

void Session::onRedisReply(uint32_t tag, const redisReply* reply) {
  if (tag != redis_generation_ || !rq_ || state_ != State::FilterWait) return;
  ratelimit::RedisWaiter* waiter = std::exchange(rq_->redis_waiter, nullptr);
  if (waiter != nullptr) waiter->onRedisReply(tag, reply);
  drive();  // also arms the timer of a wait the filter asked for (resumeAt)
}

void Session::resumeAt(uint64_t at_ms) { rq_->resume_at_ms = at_ms; }

}  // namespace portico::proxy
