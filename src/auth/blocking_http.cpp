#include "auth/blocking_http.hpp"

#include <netdb.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "http/http1_parser.hpp"
#include "net/socket.hpp"
#include "tls/client_context.hpp"

namespace portico::auth {
namespace {

using Clock = std::chrono::steady_clock;

struct Url {
  bool https = false;
  std::string host;  // without brackets
  std::string port;
  std::string target;  // path and query
  std::string authority;
};

bool parseUrl(const std::string& text, Url& out) {
  std::string_view s = text;
  if (s.starts_with("https://")) {
    out.https = true;
    s.remove_prefix(8);
  } else if (s.starts_with("http://")) {
    s.remove_prefix(7);
  } else {
    return false;
  }
  size_t slash = s.find('/');
  std::string_view authority = s.substr(0, slash);
  out.target = slash == std::string_view::npos ? "/" : std::string(s.substr(slash));
  out.authority = std::string(authority);
  if (authority.starts_with('[')) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return false;
    out.host = std::string(authority.substr(1, close - 1));
    authority.remove_prefix(close + 1);
    out.port = authority.starts_with(':') ? std::string(authority.substr(1)) : "";
  } else {
    size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    out.port = colon == std::string_view::npos ? "" : std::string(authority.substr(colon + 1));
  }
  if (out.port.empty()) out.port = out.https ? "443" : "80";
  return !out.host.empty();
}

int remainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// A connected socket, in blocking mode with send/receive timeouts, or -1 with `error`.
int connectTo(const Url& url, Clock::time_point deadline, std::string& error) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(url.host.c_str(), url.port.c_str(), &hints, &found); rc != 0) {
    error = std::string("cannot resolve ") + url.host + ": " + gai_strerror(rc);
    return -1;
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> list(found, freeaddrinfo);
  error = "cannot connect to " + url.authority;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    int fd = ::socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, remainingMs(deadline)) == 1 ? 0 : -1;
      int err = 0;
      socklen_t len = sizeof err;
      if (rc == 0 && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)) rc = -1;
    }
    if (rc != 0) {
      ::close(fd);
      continue;
    }
    int flags = 0;  // blocking from here on, each call bounded by the time left
    ::ioctl(fd, FIONBIO, &flags);
    timeval tv{remainingMs(deadline) / 1000, (remainingMs(deadline) % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
  }
  return -1;
}

struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};

}  // namespace

HttpGetResult httpGet(const std::string& url, const std::string& ca_path,
                      std::chrono::milliseconds timeout, size_t max_body) {
  return httpRequest("GET", url, "Accept: application/json\r\n", {}, ca_path, timeout, max_body);
}

HttpGetResult httpRequest(std::string_view method, const std::string& url_text,
                          std::string_view extra_headers, std::string_view request_body,
                          const std::string& ca_path, std::chrono::milliseconds timeout,
                          size_t max_body) {
  HttpGetResult result;
  const auto deadline = Clock::now() + timeout;
  Url url;
  if (!parseUrl(url_text, url)) {
    result.error = "invalid URL";
    return result;
  }
  net::UniqueFd fd(connectTo(url, deadline, result.error));
  if (!fd) return result;
  std::shared_ptr<const tls::ClientContext> context;
  std::unique_ptr<SSL, SslFree> ssl;
  if (url.https) {
    config::UpstreamTls settings;
    settings.ca_path = ca_path;
    std::vector<std::string> errors;
    context = tls::ClientContext::build(settings, url.host, false, errors);
    if (!context) {
      result.error = errors.empty() ? "TLS setup failed" : errors.front();
      return result;
    }
    ssl.reset(context->newConnection(url.host));
    if (!ssl || SSL_set_fd(ssl.get(), fd.get()) != 1 || SSL_connect(ssl.get()) != 1) {
      long verify = ssl ? SSL_get_verify_result(ssl.get()) : X509_V_OK;
      result.error = verify != X509_V_OK
                         ? std::string("certificate verify failed: ") +
                               X509_verify_cert_error_string(verify)
                         : "TLS handshake failed";
      ERR_clear_error();
      return result;
    }
  }
  std::string request = std::string(method) + " " + url.target + " HTTP/1.1\r\nHost: " +
                        url.authority + "\r\nUser-Agent: portico\r\nConnection: close\r\n";
  request.append(extra_headers);
  if (!request_body.empty() || method == "POST") {
    request += "Content-Length: " + std::to_string(request_body.size()) + "\r\n";
  }
  request += "\r\n";
  request.append(request_body);
  auto send = [&](const char* data, size_t size) {
    return ssl ? SSL_write(ssl.get(), data, static_cast<int>(size))
               : static_cast<int>(::send(fd.get(), data, size, MSG_NOSIGNAL));
  };
  auto receive = [&](char* data, size_t size) {
    return ssl ? SSL_read(ssl.get(), data, static_cast<int>(size))
               : static_cast<int>(::recv(fd.get(), data, size, 0));
  };
  if (send(request.data(), request.size()) != static_cast<int>(request.size())) {
    result.error = "cannot send the request";
    ERR_clear_error();
    return result;
  }
  std::string raw;
  char buffer[16 * 1024];
  const size_t limit = max_body + 64 * 1024;
  for (;;) {
    int n = receive(buffer, sizeof buffer);
    if (n <= 0) break;
    raw.append(buffer, static_cast<size_t>(n));
    if (raw.size() > limit) {
      result.error = "response too large";
      return result;
    }
    if (remainingMs(deadline) == 0) break;
  }
  ERR_clear_error();
  size_t head_end = 0;
  size_t scanned = 0;
  http::ParseError error = http::ParseError::None;
  http::ResponseHead head;
  if (http::findHeadEnd(raw.data(), raw.size(), scanned, head_end, error) !=
          http::ParseStatus::Complete ||
      http::parseResponseHead(raw.data(), head_end, method, head, error) !=
          http::ParseStatus::Complete) {
    result.error = raw.empty() ? "no response (timed out or closed)" : "invalid response";
    return result;
  }
  result.status = head.status;
  std::string_view body(raw.data() + head_end, raw.size() - head_end);
  switch (head.framing) {
    case http::BodyFraming::Length:
      if (body.size() < head.content_length) {
        result.error = "truncated response";
        return result;
      }
      result.body.assign(body.substr(0, head.content_length));
      break;
    case http::BodyFraming::Chunked: {
      http::ChunkedDecoder decoder;
      auto r = decoder.feed(body.data(), body.size(), &result.body);
      if (r.error || !decoder.done()) {
        result.error = "truncated or invalid chunked response";
        return result;
      }
      break;
    }
    default:
      result.body.assign(body);
      break;
  }
  if (result.body.size() > max_body) {
    result.error = "response too large";
    return result;
  }
  result.ok = head.status >= 200 && head.status < 300;
  if (!result.ok) result.error = "HTTP status " + std::to_string(head.status);
  return result;
}

}  // namespace portico::auth
