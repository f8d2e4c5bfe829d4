#pragma once
// TLS towards one upstream (SPEC §3 upstreams.*.tls): which CAs to trust, the name to send (SNI)
// and verify, an optional client certificate. Built with the snapshot, shared by the workers.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.hpp"
#include "tls/server_context.hpp"

namespace portico::tls {

class ClientContext {
 public:
  // nullptr with `errors` (naming the upstream and the file at fault) when it cannot be built.
  static std::shared_ptr<const ClientContext> build(const config::UpstreamTls& tls,
                                                    std::string_view upstream, bool http2,
                                                    std::vector<std::string>& errors);
  ~ClientContext();

  // A client connection to `host` (the endpoint as written: a name or an address), with SNI
  // and the name check set; null when OpenSSL could not make one.
  SSL* newConnection(std::string_view host) const;

 private:
  ClientContext() = default;
  CtxPtr ctx_;
  std::string sni_;  // from the config; empty = the endpoint's host name
  bool verify_ = true;
};

}  // namespace portico::tls
