#include "tls/client_context.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "config/values.hpp"

namespace portico::tls {
namespace {

bool isAddress(const std::string& host) {
  unsigned char buffer[16];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

}  // namespace

ClientContext::~ClientContext() = default;

std::shared_ptr<const ClientContext> ClientContext::build(const config::UpstreamTls& tls,
                                                          std::string_view upstream,
                                                          bool http2,
                                                          std::vector<std::string>& errors) {
  const std::string where = "upstream " + config::detail::quote(upstream) + ": ";
  std::shared_ptr<ClientContext> context(new ClientContext());
  context->sni_ = tls.sni;
  context->verify_ = tls.verify;
  ERR_clear_error();
  context->ctx_.reset(SSL_CTX_new(TLS_client_method()));
  SSL_CTX* c = context->ctx_.get();
  if (c == nullptr) {
    errors.push_back(where + "cannot create a TLS context: " + lastError());
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_read_ahead(c, 1);
  static constexpr unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  static constexpr unsigned char kH2[] = {2, 'h', '2'};
  if (http2) {
    SSL_CTX_set_alpn_protos(c, kH2, sizeof kH2);
  } else {
    SSL_CTX_set_alpn_protos(c, kHttp11, sizeof kHttp11);
  }
  if (tls.verify) {
    int ok = tls.ca_path.empty() ? SSL_CTX_set_default_verify_paths(c)
                                 : SSL_CTX_load_verify_locations(c, tls.ca_path.c_str(), nullptr);
    if (ok != 1) {
      errors.push_back(where + "ca " + config::detail::quote(tls.ca_path) + ": " + lastError());
      return nullptr;
    }
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
  }
  if (!tls.cert_path.empty()) {
    if (SSL_CTX_use_certificate_chain_file(c, tls.cert_path.c_str()) != 1) {
      errors.push_back(where + "certificate " + config::detail::quote(tls.cert_path) + ": " +
                       lastError());
      return nullptr;
    }
    if (SSL_CTX_use_PrivateKey_file(c, tls.key_path.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(c) != 1) {
      errors.push_back(where + "private key " + config::detail::quote(tls.key_path) +
                       " cannot be used with certificate " +
                       config::detail::quote(tls.cert_path) + ": " + lastError());
      return nullptr;
    }
  }
  return context;
}

SSL* ClientContext::newConnection(std::string_view endpoint_host) const {
  SSL* ssl = SSL_new(ctx_.get());
  if (ssl == nullptr) return nullptr;
  std::string name = sni_.empty() ? std::string(endpoint_host) : sni_;
  const bool address = isAddress(name);
  // RFC 6066 §3: SNI carries host names only, never addresses.
  if (!address && !name.empty()) SSL_set_tlsext_host_name(ssl, name.c_str());
  if (verify_ && !name.empty()) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int ok = address ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                     : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
    if (ok != 1) {
      SSL_free(ssl);
      ERR_clear_error();
      return nullptr;
    }
  }
  return ssl;
}

}  // namespace portico::tls
