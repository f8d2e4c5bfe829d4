#include "proxy/request_state.hpp"

#include <vector>

#include "auth/authenticator.hpp"

namespace portico::proxy {
namespace {

// Bounds what a thread keeps after a spike of concurrent requests.
constexpr size_t kKeptPerThread = 256;
// Scratch grown past these is freed rather than kept (a huge head, many limits).
constexpr size_t kMaxKeptHeaders = 128;
constexpr size_t kMaxKeptUpstreamHead = 16 * 1024;

struct ThreadPools {
  std::vector<void*> states;
  std::vector<std::unique_ptr<RequestScratch>> scratch;
  ~ThreadPools() {
    for (void* p : states) ::operator delete(p, sizeof(RequestState));
  }
};
thread_local ThreadPools t_pools;

std::unique_ptr<RequestScratch> takeScratch() {
  if (t_pools.scratch.empty()) return std::make_unique<RequestScratch>();
  std::unique_ptr<RequestScratch> scratch = std::move(t_pools.scratch.back());
  t_pools.scratch.pop_back();
  return scratch;
}

void giveScratch(std::unique_ptr<RequestScratch> scratch) {
  if (!scratch || t_pools.scratch.size() >= kKeptPerThread ||
      scratch->head.headers.capacity() > kMaxKeptHeaders ||
      scratch->upstream_head.capacity() > kMaxKeptUpstreamHead) {
    return;
  }
  t_pools.scratch.push_back(std::move(scratch));
}

}  // namespace

RequestState::RequestState(uint64_t now_us)
    : scratch(takeScratch()),
      head(scratch->head),
      upstream_head(scratch->upstream_head),
      touches(scratch->touches),
      start_us(now_us) {}

RequestState::~RequestState() { giveScratch(std::move(scratch)); }

void* RequestState::operator new(size_t size) {
  if (size == sizeof(RequestState) && !t_pools.states.empty()) {
    void* p = t_pools.states.back();
    t_pools.states.pop_back();
    return p;
  }
  return ::operator new(size);
}

void RequestState::operator delete(void* p, size_t size) {
  if (size == sizeof(RequestState) && t_pools.states.size() < kKeptPerThread) {
    t_pools.states.push_back(p);
    return;
  }
  ::operator delete(p, size);
}

}  // namespace portico::proxy
