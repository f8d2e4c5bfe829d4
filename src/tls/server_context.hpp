#pragma once
// The TLS side of one listener (SPEC §3 listeners[].tls): an SSL_CTX per certificate, the
// certificate picked by SNI (exact names, then one-label wildcards, else the first), ALPN,
// the minimum version and client certificates. Built on the control thread, immutable, shared
// by the workers; rebuilt when its files change, while connections made with the old one keep it.

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/model.hpp"

using SSL = struct ssl_st;
using SSL_CTX = struct ssl_ctx_st;

namespace portico::tls {

// The reason OpenSSL gave for its last failure ("key values mismatch"), and an empty error
// queue after it.
std::string lastError();

struct CtxDeleter {
  void operator()(SSL_CTX* ctx) const;
};
using CtxPtr = std::unique_ptr<SSL_CTX, CtxDeleter>;

// What a file looked like when it was read: a change in any part means "read it again".
struct FileStamp {
  std::string path;
  int64_t mtime_ns = 0;
  int64_t size = -1;
  ino_t inode = 0;

  static FileStamp of(const std::string& path);
  bool operator==(const FileStamp&) const = default;
};

class ServerContext {
 public:
  // Reads the files and builds the contexts; nullptr with `errors` (naming `listener` and the
  // file at fault) when a file is unreadable, a key does not match its certificate, ...
  static std::shared_ptr<const ServerContext> build(const config::ListenerTls& tls, bool http2,
                                                    std::string_view listener,
                                                    std::vector<std::string>& errors);
  ~ServerContext();

  // A new server-side connection object on the default context, or null.
  SSL* newConnection() const;
  // The files it was built from, as they were then, and as they are now.
  const std::vector<FileStamp>& stamps() const { return files_; }
  std::vector<FileStamp> currentStamps() const;
  // Which certificate serves `server_name` (lowercase): an exact name, then a one-label
  // wildcard, else 0, the default.
  size_t certificateFor(std::string_view server_name) const;

 private:
  ServerContext() = default;
  bool addCertificate(const config::TlsCertificate& cert, const config::ListenerTls& tls,
                      std::string_view listener, std::vector<std::string>& errors);
  int selectByServerName(SSL* ssl) const;
  static int serverNameCallback(SSL* ssl, int* alert, void* arg);

  std::vector<CtxPtr> contexts_;  // [0] is the default
  std::unordered_map<std::string, size_t> exact_;
  std::unordered_map<std::string, size_t> wildcard_;  // "*.example.com" stored as "example.com"
  std::vector<FileStamp> files_;
  bool http2_ = false;
};

// The verified client certificate of a connection, as the auth layer sees it.
struct PeerCertificate {
  // Typed, so that a name of one kind never matches a subject of another (review M7): SAN
  // values as "dns:…", "uri:…" and "email:…", then the subject CN as "cn:…".
  std::vector<std::string> names;
  bool has_san = false;  // RFC 6125 §6.4.4: with SANs, the CN names nobody unless asked for
  std::string subject;             // RFC 2253 form
  std::string sha256;              // lowercase hex of the DER certificate
};

// The client's certificate when one was presented and verified; false otherwise.
bool verifiedPeerCertificate(SSL* ssl, PeerCertificate& out);

}  // namespace portico::tls
