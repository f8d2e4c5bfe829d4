#include "proxy/request_state.hpp"

#include "auth/authenticator.hpp"

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
      touches(scratch_in.touches),
      start_us(now_us) {}

RequestState::~RequestState() = default;

RequestHandle::RequestHandle() = default;
RequestHandle::~RequestHandle() = default;

std::vector<std::unique_ptr<RequestHandle::Slot>>& RequestHandle::pool() {
  thread_local std::vector<std::unique_ptr<Slot>> slots;
  return slots;
}

void RequestHandle::emplace(uint64_t now_us) {
  if (!slot_) {
    auto& slots = pool();
    if (slots.empty()) {
      slot_ = std::make_unique<Slot>();
    } else {
      slot_ = std::move(slots.back());
      slots.pop_back();
    }
  }
  slot_->state.emplace(now_us, slot_->scratch);
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
      scratch.upstream_head.capacity() <= kMaxKeptUpstreamHead) {
    slots.push_back(std::move(slot_));
  }
  slot_.reset();
}

}  // namespace portico::proxy
