#include "admin/admin_server.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "core/buffer.hpp"
#include "http/http1_parser.hpp"
#include "http/local_reply.hpp"

namespace portico::admin {

class AdminServer::Connection final : public net::EventHandler, public net::Timed {
 public:
  explicit Connection(AdminServer& server) : server_(server) {}
  ~Connection() override { close(); }

  void start(int fd) {
    resetTimer();
    fd_ = fd;
    in_.clear();
    out_.clear();
    if (in_.capacity() == 0) in_.reserve(8192);
    eof_ = done_ = false;
    server_.loop_.add(fd_, this);
    server_.loop_.setTimeout(*this, 10'000);
  }

  void close() {
    if (fd_ < 0) return;
    server_.loop_.remove(fd_);
    ::close(fd_);
    fd_ = -1;
  }

  void onEvents(uint32_t events) override {
    if (done_) return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readAll();
    if (!done_ && !out_.empty()) flush();
  }
  void onTimer() override {
    if (!done_) finish();
  }

 private:
  static constexpr size_t kMaxRequest = 1 << 20;

  void readAll() {
    for (;;) {
      if (in_.writable() == 0) {
        if (in_.capacity() >= kMaxRequest) return respond({413, "application/json", "{}"});
        in_.reserve(in_.capacity() * 2);
      }
      ssize_t n = ::read(fd_, in_.writePtr(), in_.writable());
      if (n > 0) {
        in_.commit(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) eof_ = true;
      break;
    }
    if (out_.empty()) tryHandle();
    if (eof_ && out_.empty()) finish();
  }

  void tryHandle() {
    size_t scanned = 0;
    size_t head_end = 0;
    http::ParseError error = http::ParseError::None;
    auto st = http::findHeadEnd(in_.data(), in_.size(), scanned, head_end, error);
    if (st == http::ParseStatus::Incomplete) return;
    http::RequestHead head;
    if (st == http::ParseStatus::Error ||
        http::parseRequestHead(in_.data(), head_end, {kMaxRequest, 8192, 100}, head, error) !=
            http::ParseStatus::Complete ||
        head.framing == http::BodyFraming::Chunked) {
      return respond({400, "application/json", R"({"error":"bad request"})"});
    }
    if (in_.size() - head_end < head.content_length) return;  // body still coming
    AdminRequest req;
    req.method = head.method;
    req.path = head.path;
    req.query = head.query;
    if (const auto* auth = http::findHeader(head.headers, "authorization")) {
      req.authorization = auth->value;
    }
    req.host = head.host;
    if (const auto* origin = http::findHeader(head.headers, "origin")) req.origin = origin->value;
    req.body.assign(in_.data() + head_end, static_cast<size_t>(head.content_length));
    respond(server_.handler_(req));
  }

  void respond(const AdminResponse& response) {
    out_.append("HTTP/1.1 ");
    out_.appendDecimal(static_cast<uint64_t>(response.status));
    out_.append(' ');
    out_.append(http::reasonPhrase(response.status));
    out_.append("\r\nContent-Type: ");
    out_.append(response.content_type);
    out_.append("\r\nCache-Control: no-store\r\nContent-Length: ");
    out_.appendDecimal(response.body.size());
    out_.append("\r\nConnection: close\r\n\r\n");
    out_.append(response.body);
    flush();
  }

  void flush() {
    while (!out_.empty()) {
      ssize_t n = ::write(fd_, out_.data(), out_.size());
      if (n > 0) {
        out_.consume(static_cast<size_t>(n));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
      } else {
        break;
      }
    }
    finish();
  }

  void finish() {
    if (done_) return;
    done_ = true;
    close();
    resetTimer();
    server_.finished(this);
  }

  AdminServer& server_;
  int fd_ = -1;
  Buffer in_;
  Buffer out_;
  bool eof_ = false;
  bool done_ = false;
};

AdminServer::AdminServer(net::EventLoop& loop, net::UniqueFd listen_fd, AdminHandler handler)
    : loop_(loop), fd_(std::move(listen_fd)), handler_(std::move(handler)) {
  loop_.addReadable(fd_.get(), this);
}

AdminServer::~AdminServer() {
  connections_.clear();
  if (fd_) loop_.remove(fd_.get());
}

void AdminServer::onEvents(uint32_t) {
  for (int i = 0; i < 16; ++i) {
    int fd = ::accept4(fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    Connection* conn = nullptr;
    if (!free_.empty()) {
      conn = free_.back();
      free_.pop_back();
    } else if (connections_.size() < 256) {
      connections_.push_back(std::make_unique<Connection>(*this));
      conn = connections_.back().get();
    } else {
      ::close(fd);
      continue;
    }
    conn->start(fd);
  }
}

// Connection objects are kept and reused rather than freed: the loop's timer heap may still
// point at them.
void AdminServer::finished(Connection* conn) { free_.push_back(conn); }

}  // namespace portico::admin
