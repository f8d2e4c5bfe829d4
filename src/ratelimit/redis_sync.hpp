#pragma once
// The thread that reconciles the batched limits (sync_store.hpp) with Redis: every interval it
// takes a batch from the store, sends it in a few script calls (sync_script.hpp) over its own
// connection, and hands the answers back. It runs an event loop of its own so a slow or absent
// Redis never holds up a worker, and exists for the life of the process; the config in force
// tells it which Redis to use and how often, or that there is nothing to sync.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "net/event_loop.hpp"
#include "ratelimit/redis_client.hpp"

namespace portico::ratelimit {

class SyncStore;

struct SyncSettings {
  RedisSettings redis;
  std::string key_prefix;
  uint64_t interval_ms = 100;  // the shortest `sync` of the config's limits
};

class RedisSync {
 public:
  explicit RedisSync(SyncStore& store);
  ~RedisSync();
  RedisSync(const RedisSync&) = delete;
  RedisSync& operator=(const RedisSync&) = delete;

  // From the control thread, at start and on every reload; nullopt: no batched limits.
  void configure(std::optional<SyncSettings> settings);
  // How this gateway is known in the members set: host, process and a random part.
  const std::string& gatewayId() const { return gateway_id_; }

 private:
  class Runner;

  std::string gateway_id_;
  net::EventLoop loop_;
  std::unique_ptr<Runner> runner_;  // used on the thread only, while it runs
  std::thread thread_;
};

}  // namespace portico::ratelimit
