#include "proxy/request_state.hpp"

#include "auth/authenticator.hpp"

namespace portico::proxy {

RequestState::RequestState(uint64_t now_us) : start_us(now_us) {}

RequestState::~RequestState() = default;

}  // namespace portico::proxy
