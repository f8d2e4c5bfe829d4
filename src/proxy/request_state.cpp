#include "proxy/request_state.hpp"

#include "auth/authenticator.hpp"
#include "transcode/grpc_call.hpp"

namespace portico::proxy {
namespace {

// Bounds what a thread keeps after a spike of concurrent requests.
constexpr size_t kKeptPerThread = 256;
// Scratch grown past these is freed rather than kept (a huge head, many limits).
constexpr size_t kMaxKeptHeaders = 128;
constexpr size_t kMaxKeptUpstreamHead = 16 * 1024;

}  // namespace

RequestState::RequestState(uint64_t now_us, RequestScratch& scratch_in)
    : scratch(scratch_in),
      head(scratch_in.head),
      upstream_head(scratch_in.upstream_head),
      method(scratch_in.method),
      host(scratch_in.host),
      path(scratch_in.path),
      forward_target(scratch_in.forward_target),
      extra_headers(scratch_in.extra_headers),
      filter_headers(scratch_in.filter_headers),
      upstream_fields(scratch_in.upstream_fields),
      echo_body(scratch_in.echo_body),
      replay_body(scratch_in.replay_body),
      start_us(now_us) {
  method.clear();
  host.clear();
  path.clear();
  forward_target.clear();
  extra_headers.clear();
  filter_headers.clear();
  upstream_fields.clear();
  echo_body.clear();
  // A gRPC call's body may have been megabytes: not kept for a connection's next requests.
  if (replay_body.capacity() > kMaxKeptUpstreamHead) {
    std::string().swap(replay_body);
  } else {
    replay_body.clear();
  }
}

RequestState::~RequestState() {
  // The filters hear the end before they go (a no-op when the session told them already).
  chain.complete({status, !finished});
  scratch.arena.reset();
}

RequestHandle::RequestHandle() = default;
RequestHandle::~RequestHandle() = default;

std::vector<std::unique_ptr<RequestHandle::Slot>>& RequestHandle::pool() {
  thread_local std::vector<std::unique_ptr<Slot>> slots;
  return slots;
}

void RequestHandle::takeStorage() {
  auto& slots = pool();
  if (slots.empty()) {
    slot_ = std::make_unique<Slot>();
  } else {
    slot_ = std::move(slots.back());
    slots.pop_back();
  }
}

void RequestHandle::reset() {
  if (slot_) slot_->state.reset();
}

void RequestHandle::releaseStorage() {
  if (!slot_) return;
  slot_->state.reset();
  auto& slots = pool();
  const RequestScratch& scratch = slot_->scratch;
  if (slots.size() < kKeptPerThread && scratch.head.headers.capacity() <= kMaxKeptHeaders &&
      scratch.upstream_head.capacity() <= kMaxKeptUpstreamHead &&
      scratch.echo_body.capacity() <= kMaxKeptUpstreamHead &&
      scratch.replay_body.capacity() <= kMaxKeptUpstreamHead) {
    slots.push_back(std::move(slot_));
  }
  slot_.reset();
}

}  // namespace portico::proxy
