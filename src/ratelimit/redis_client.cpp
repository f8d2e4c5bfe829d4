#include "ratelimit/redis_client.hpp"

#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/log.hpp"

namespace portico::ratelimit {
namespace {

constexpr size_t kMaxPending = 100'000;
// A connection with commands waiting and no reply for this long is taken as hung.
constexpr uint64_t kMinHungMs = 1'000;

std::string sha1Hex(std::string_view text) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : digest) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

}  // namespace

RedisClient::RedisClient(net::EventLoop& loop, RedisSettings settings, std::string script)
    : loop_(loop),
      settings_(std::move(settings)),
      script_(std::move(script)),
      script_sha_(sha1Hex(script_)),
      out_(16 * 1024) {
  connect();
}

RedisClient::~RedisClient() {
  if (fd_ >= 0) ::close(fd_);
  if (reader_ != nullptr) redisReaderFree(reader_);
}

void RedisClient::connect() {
  fd_ = net::startConnect(settings_.address);
  if (fd_ < 0) {
    fail(std::strerror(errno));
    return;
  }
  if (!loop_.add(fd_, this)) {
    fail("cannot watch the socket");
    return;
  }
  reader_ = redisReaderCreate();
  connected_ = false;
  out_.clear();
  // The handshake goes first in the pipe; its replies are checked by deliver().
  if (!settings_.password.empty()) {
    std::string_view auth[] = {"AUTH", settings_.password};
    appendCommand(auth);
    pending_.push_back({});
  }
  std::string_view load[] = {"SCRIPT", "LOAD", script_};
  appendCommand(load);
  pending_.push_back({});
  last_reply_ms_ = loop_.nowMs();
  armTimer();
}

void RedisClient::logProblem(const char* what) {
  const uint64_t now = loop_.nowMs();
  if (now - last_log_ms_ >= 1'000 || last_log_ms_ == 0) {
    LOG_WARN("redis %s: %s; %s", settings_.address_text.c_str(), what,
             settings_.while_down.c_str());
    last_log_ms_ = now;
  }
}

void RedisClient::fail(const char* why) {
  const uint64_t now = loop_.nowMs();
  logProblem(why);
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (reader_ != nullptr) {
    redisReaderFree(reader_);
    reader_ = nullptr;
  }
  connected_ = false;
  out_.clear();
  // Callers are answered after the state is reset: they may send again from the callback.
  std::deque<Pending> failed;
  failed.swap(pending_);
  backoff_ms_ = backoff_ms_ == 0 ? kFirstBackoffMs : std::min(backoff_ms_ * 2, kMaxBackoffMs);
  retry_at_ms_ = now + backoff_ms_;
  armTimer();
  for (const Pending& p : failed) {
    if (p.waiter != nullptr) p.waiter->onRedisReply(p.tag, nullptr);
  }
}

void RedisClient::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  fail("no longer in the config");
  loop_.clearTimeout(*this);
}

void RedisClient::configure(RedisSettings settings) {
  const bool same = settings.address_text == settings_.address_text &&
                    settings.password == settings_.password &&
                    settings.timeout_ms == settings_.timeout_ms;
  if (same && !shut_down_) return;
  shutdown();
  settings_ = std::move(settings);
  shut_down_ = false;
  backoff_ms_ = 0;
  last_log_ms_ = 0;
  connect();
}

void RedisClient::appendArrayHead(size_t count) {
  out_.append('*');
  out_.appendDecimal(count);
  out_.append("\r\n");
}

void RedisClient::appendBulk(std::string_view part) {
  out_.append('$');
  out_.appendDecimal(part.size());
  out_.append("\r\n");
  out_.append(part);
  out_.append("\r\n");
}

void RedisClient::appendCommand(std::span<const std::string_view> parts) {
  appendArrayHead(parts.size());
  for (std::string_view part : parts) appendBulk(part);
}

bool RedisClient::evalScript(std::span<const std::string_view> keys,
                             std::span<const std::string_view> args, RedisWaiter* waiter,
                             uint32_t tag) {
  if (fd_ < 0 || shut_down_ || pending_.size() >= kMaxPending) return false;
  char numkeys[24];
  int numkeys_len = std::snprintf(numkeys, sizeof numkeys, "%zu", keys.size());
  appendArrayHead(3 + keys.size() + args.size());
  appendBulk("EVALSHA");
  appendBulk(script_sha_);
  appendBulk(std::string_view(numkeys, static_cast<size_t>(numkeys_len)));
  for (std::string_view part : keys) appendBulk(part);
  for (std::string_view part : args) appendBulk(part);
  pending_.push_back({waiter, tag, loop_.nowMs() + settings_.timeout_ms});
  if (pending_.size() == 1) last_reply_ms_ = loop_.nowMs();
  armTimer();
  return true;
}

void RedisClient::flush() {
  while (fd_ >= 0 && connected_ && !out_.empty()) {
    ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
    if (n > 0) {
      out_.consume(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;  // EPOLLOUT resumes
    fail(n < 0 ? std::strerror(errno) : "connection closed");
    return;
  }
  if (out_.empty()) out_.clear();
}

void RedisClient::onConnected() {
  int error = 0;
  socklen_t len = sizeof error;
  if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &len) != 0 || error != 0) {
    fail(std::strerror(error != 0 ? error : errno));
    return;
  }
  connected_ = true;
}

void RedisClient::onEvents(uint32_t events) {
  if (fd_ < 0) return;
  if (!connected_) {
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) return;
    onConnected();
    if (fd_ < 0) return;
  }
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) readReplies();
  if (fd_ >= 0) flush();
}

void RedisClient::readReplies() {
  char buf[16 * 1024];
  for (;;) {
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      if (redisReaderFeed(reader_, buf, static_cast<size_t>(n)) != REDIS_OK) {
        fail("unreadable reply");
        return;
      }
      void* reply = nullptr;
      while (fd_ >= 0 && redisReaderGetReply(reader_, &reply) == REDIS_OK && reply != nullptr) {
        deliver(static_cast<redisReply*>(reply));
        reply = nullptr;
      }
      if (fd_ < 0) return;
      if (static_cast<size_t>(n) < sizeof buf) return;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    fail(n < 0 ? std::strerror(errno) : "connection closed by Redis");
    return;
  }
}

void RedisClient::deliver(redisReply* reply) {
  if (pending_.empty()) {
    freeReplyObject(reply);
    fail("a reply nobody asked for");
    return;
  }
  Pending p = pending_.front();
  pending_.pop_front();
  last_reply_ms_ = loop_.nowMs();
  const bool internal = p.waiter == nullptr && p.deadline_ms == 0;
  if (reply->type == REDIS_REPLY_ERROR) {
    std::string_view message(reply->str, reply->len);
    if (message.starts_with("NOSCRIPT") && !internal) {
      // The script cache was flushed (SCRIPT FLUSH, a failover): load it again, ahead of the
      // caller's retry on this same pipe.
      std::string_view load[] = {"SCRIPT", "LOAD", script_};
      appendCommand(load);
      pending_.push_back({});
    } else if (internal || message.starts_with("NOAUTH") || message.starts_with("WRONGPASS")) {
      std::string why = "Redis refused: " + std::string(message.substr(0, 200));
      freeReplyObject(reply);
      if (p.waiter != nullptr) p.waiter->onRedisReply(p.tag, nullptr);
      fail(why.c_str());
      return;
    }
    logProblem(("Redis answered " + std::string(message.substr(0, 200))).c_str());
  } else if (internal) {
    backoff_ms_ = 0;  // the handshake worked
  }
  if (p.waiter != nullptr) p.waiter->onRedisReply(p.tag, reply);
  freeReplyObject(reply);
}

void RedisClient::armTimer() {
  uint64_t at = 0;
  if (fd_ < 0) {
    at = retry_at_ms_;
  } else {
    for (const Pending& p : pending_) {
      if (p.waiter != nullptr) {
        at = p.deadline_ms;
        break;
      }
    }
    if (!pending_.empty()) {
      uint64_t hung_at = last_reply_ms_ + std::max(kMinHungMs, 10 * settings_.timeout_ms);
      at = at == 0 ? hung_at : std::min(at, hung_at);
    }
  }
  loop_.setDeadline(*this, at);
}

void RedisClient::onTimer() {
  const uint64_t now = loop_.nowMs();
  if (shut_down_) return;
  if (fd_ < 0) {
    if (now >= retry_at_ms_) connect();
    else armTimer();
    return;
  }
  if (!pending_.empty() &&
      now >= last_reply_ms_ + std::max(kMinHungMs, 10 * settings_.timeout_ms)) {
    fail(connected_ ? "no reply in time" : "connect timed out");
    return;
  }
  // Late callers get their error now; their replies are dropped when they come. They are
  // answered after the walk: an answer may queue a new command.
  late_.clear();
  for (Pending& p : pending_) {
    if (p.waiter == nullptr) continue;
    if (p.deadline_ms > now) break;
    late_.push_back(p);
    p.waiter = nullptr;
  }
  armTimer();
  for (const Pending& p : late_) p.waiter->onRedisReply(p.tag, nullptr);
}

}  // namespace portico::ratelimit
