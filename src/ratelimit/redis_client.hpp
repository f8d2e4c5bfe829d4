#pragma once
// One worker's connection to Redis, driven by the worker's event loop: commands are written as
// they come and pipelined (written together at the end of the event batch), replies are matched
// to callers in order. Nothing waits longer than the configured timeout: a caller whose reply is
// late is answered with an error and its reply, when it comes, is dropped. A connection that
// stops answering altogether is closed; reconnects back off from 100 ms to 2 s, and while there
// is no connection every command fails at once. Replies are parsed with hiredis's reader.

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <span>
#include <vector>

#include "core/buffer.hpp"
#include "net/event_loop.hpp"
#include "net/socket.hpp"

struct redisReader;
struct redisReply;

namespace portico::ratelimit {

// Gets the answer to a command: `reply` is null when the command failed (no connection,
// timeout, connection lost). `tag` is what the caller passed to evalScript(). A NOSCRIPT error
// means the script is being loaded again: sending the same command once more will work.
class RedisWaiter {
 public:
  virtual ~RedisWaiter() = default;
  virtual void onRedisReply(uint32_t tag, const redisReply* reply) = 0;
};

struct RedisSettings {
  net::SocketAddress address;
  std::string address_text;
  std::string password;
  uint64_t timeout_ms = 50;
  // Ends the logged line when Redis cannot be used: what the gateway does meanwhile.
  std::string while_down = "rate limits that use it follow on_error until it answers";
};

class RedisClient final : public net::EventHandler, public net::Timed {
 public:
  // Reconnects back off from the first to the longest wait, doubling.
  static constexpr uint64_t kFirstBackoffMs = 100;
  static constexpr uint64_t kMaxBackoffMs = 2'000;

  RedisClient(net::EventLoop& loop, RedisSettings settings, std::string script);
  ~RedisClient() override;
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Queues EVALSHA of the script with these keys and arguments. Returns false (and calls
  // nothing) when the command cannot be sent now: the caller treats it as a Redis error.
  bool evalScript(std::span<const std::string_view> keys, std::span<const std::string_view> args,
                  RedisWaiter* waiter, uint32_t tag);
  // Answers every caller with an error and closes until configure() (the config no longer
  // names it). The client stays: the loop's timer heap may still name it.
  void shutdown();
  // Uses these settings from now on: with another server, password or timeout, the connection
  // is closed (callers answered with an error) and made again; with the same ones, nothing.
  void configure(RedisSettings settings);
  // Writes what was queued during this event batch (the worker calls it after each batch).
  void flush();
  bool needsFlush() const { return fd_ >= 0 && connected_ && !out_.empty(); }
  const std::string& settingsText() const { return settings_.address_text; }

  void onEvents(uint32_t events) override;
  void onTimer() override;

 private:
  struct Pending {
    RedisWaiter* waiter = nullptr;  // null: internal (AUTH, SCRIPT LOAD) or already answered
    uint32_t tag = 0;
    uint64_t deadline_ms = 0;
  };

  void connect();
  void onConnected();
  void fail(const char* why);
  // At most one line a second.
  void logProblem(const char* what);
  void readReplies();
  void deliver(redisReply* reply);
  // RESP: an array of bulk strings.
  void appendArrayHead(size_t count);
  void appendBulk(std::string_view part);
  void appendCommand(std::span<const std::string_view> parts);
  void armTimer();

  net::EventLoop& loop_;
  RedisSettings settings_;
  std::string script_;
  std::string script_sha_;
  int fd_ = -1;
  bool connected_ = false;
  bool shut_down_ = false;
  uint64_t retry_at_ms_ = 0;
  uint64_t backoff_ms_ = 0;
  uint64_t last_reply_ms_ = 0;
  uint64_t last_log_ms_ = 0;
  Buffer out_;
  redisReader* reader_ = nullptr;
  std::deque<Pending> pending_;
  std::vector<Pending> late_;
};

}  // namespace portico::ratelimit
