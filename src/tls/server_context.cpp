#include "tls/server_context.hpp"

#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cstring>

#include "config/values.hpp"
#include "core/log.hpp"

namespace portico::tls {
namespace {

using config::detail::quote;

constexpr unsigned char kSessionIdContext[] = "portico";

// Server preference: h2 when the listener speaks it and the client offers it, else http/1.1.
int selectAlpn(SSL*, const unsigned char** out, unsigned char* out_len, const unsigned char* in,
               unsigned int in_len, void* arg) {
  const bool http2 = arg != nullptr;
  static constexpr unsigned char kH2[] = {2, 'h', '2'};
  static constexpr unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  auto offered = [&](const unsigned char* proto) {
    for (unsigned int i = 0; i < in_len; i += 1u + in[i]) {
      if (in[i] == proto[0] && i + 1u + in[i] <= in_len &&
          std::memcmp(in + i + 1, proto + 1, proto[0]) == 0) {
        *out = in + i + 1;
        *out_len = in[i];
        return true;
      }
    }
    return false;
  };
  if ((http2 && offered(kH2)) || offered(kHttp11)) return SSL_TLSEXT_ERR_OK;
  return SSL_TLSEXT_ERR_NOACK;  // go on without ALPN; an h2-only client gives up by itself
}

// The DNS names a certificate is for: its SAN DNS entries, else its subject CN.
std::vector<std::string> certificateNames(X509* cert) {
  std::vector<std::string> names;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr,
                                                            nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans, i);
      if (name->type != GEN_DNS) continue;
      const ASN1_IA5STRING* dns = name->d.dNSName;
      names.push_back(config::detail::lowercase(std::string_view(
          reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
          static_cast<size_t>(ASN1_STRING_length(dns)))));
    }
    GENERAL_NAMES_free(sans);
  }
  if (names.empty()) {
    char cn[256];
    int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
    if (n > 0)
      names.push_back(config::detail::lowercase(std::string_view(cn, static_cast<size_t>(n))));
  }
  return names;
}

}  // namespace

void CtxDeleter::operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }

// The reason OpenSSL gave for the last failure, and an empty error queue after it.
std::string lastError() {
  unsigned long code = 0;
  unsigned long last = 0;
  while ((code = ERR_get_error()) != 0) last = code;
  if (last == 0) return "unknown error";
  char text[256];
  ERR_error_string_n(last, text, sizeof text);
  // "error:0A00018F:SSL routines::ee key too small" -> "ee key too small"
  std::string_view s(text);
  size_t colon = s.rfind(':');
  return std::string(colon == std::string_view::npos ? s : s.substr(colon + 1));
}


FileStamp FileStamp::of(const std::string& path) {
  FileStamp stamp;
  stamp.path = path;
  struct stat st{};
  if (::stat(path.c_str(), &st) == 0) {
    stamp.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    stamp.size = st.st_size;
    stamp.inode = st.st_ino;
  }
  return stamp;
}

ServerContext::~ServerContext() = default;

std::shared_ptr<const ServerContext> ServerContext::build(const config::ListenerTls& tls,
                                                          bool http2, std::string_view listener,
                                                          std::vector<std::string>& errors) {
  std::shared_ptr<ServerContext> context(new ServerContext());
  context->http2_ = http2;
  ERR_clear_error();
  for (const auto& cert : tls.certificates) {
    if (!context->addCertificate(cert, tls, listener, errors)) return nullptr;
  }
  return context;
}

bool ServerContext::addCertificate(const config::TlsCertificate& cert,
                                   const config::ListenerTls& tls, std::string_view listener,
                                   std::vector<std::string>& errors) {
  const std::string where = "listener " + quote(listener) + ": ";
  files_.push_back(FileStamp::of(cert.cert_path));
  files_.push_back(FileStamp::of(cert.key_path));
  CtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) {
    errors.push_back(where + "cannot create a TLS context: " + lastError());
    return false;
  }
  SSL_CTX* c = ctx.get();
  SSL_CTX_set_min_proto_version(
      c, tls.min_version == config::ListenerTls::Version::Tls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                             SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_read_ahead(c, 1);
  // Resumption by stateless tickets only: a server-side session cache is a lock every worker
  // would take on each handshake.
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(c, 1);
  SSL_CTX_set_session_id_context(c, kSessionIdContext, sizeof kSessionIdContext - 1);
  SSL_CTX_set_alpn_select_cb(c, selectAlpn, http2_ ? this : nullptr);

  if (SSL_CTX_use_certificate_chain_file(c, cert.cert_path.c_str()) != 1) {
    errors.push_back(where + "certificate " + quote(cert.cert_path) + ": " + lastError());
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(c, cert.key_path.c_str(), SSL_FILETYPE_PEM) != 1) {
    std::string reason = lastError();
    errors.push_back(where + "private key " + quote(cert.key_path) +
                     (reason.find("mismatch") != std::string::npos
                          ? " does not match certificate " + quote(cert.cert_path)
                          : ": " + reason));
    return false;
  }
  if (SSL_CTX_check_private_key(c) != 1) {
    ERR_clear_error();
    errors.push_back(where + "private key " + quote(cert.key_path) +
                     " does not match certificate " + quote(cert.cert_path));
    return false;
  }
  if (tls.client_auth != config::ListenerTls::ClientAuth::None) {
    const std::string& ca = tls.client_ca_path;
    if (contexts_.empty()) files_.push_back(FileStamp::of(ca));
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(ca.c_str());
    if (names == nullptr || SSL_CTX_load_verify_locations(c, ca.c_str(), nullptr) != 1) {
      if (names != nullptr) sk_X509_NAME_pop_free(names, X509_NAME_free);
      errors.push_back(where + "client_ca " + quote(ca) + ": " + lastError());
      return false;
    }
    SSL_CTX_set_client_CA_list(c, names);
    int mode = SSL_VERIFY_PEER;
    if (tls.client_auth == config::ListenerTls::ClientAuth::Required) {
      mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    }
    SSL_CTX_set_verify(c, mode, nullptr);
  }

  const size_t index = contexts_.size();
  std::vector<std::string> names = cert.sni;
  if (names.empty()) names = certificateNames(SSL_CTX_get0_certificate(c));
  for (const auto& name : names) {
    if (name.starts_with("*.")) {
      wildcard_.emplace(name.substr(2), index);
    } else {
      exact_.emplace(name, index);
    }
  }
  if (index == 0) {
    SSL_CTX_set_tlsext_servername_callback(c, serverNameCallback);
    SSL_CTX_set_tlsext_servername_arg(c, this);
  }
  contexts_.push_back(std::move(ctx));
  return true;
}

int ServerContext::serverNameCallback(SSL* ssl, int*, void* arg) {
  return static_cast<const ServerContext*>(arg)->selectByServerName(ssl);
}

int ServerContext::selectByServerName(SSL* ssl) const {
  const char* sent = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (sent == nullptr || contexts_.size() == 1) return SSL_TLSEXT_ERR_OK;
  char lower[256];
  size_t n = 0;
  for (; sent[n] != '\0' && n < sizeof lower; ++n) {
    char ch = sent[n];
    lower[n] = (ch >= 'A' && ch <= 'Z') ? static_cast<char>(ch - 'A' + 'a') : ch;
  }
  size_t index = certificateFor(std::string_view(lower, n));
  if (index != 0) SSL_set_SSL_CTX(ssl, contexts_[index].get());
  return SSL_TLSEXT_ERR_OK;
}

size_t ServerContext::certificateFor(std::string_view server_name) const {
  std::string name(server_name);
  if (auto it = exact_.find(name); it != exact_.end()) return it->second;
  // RFC 6125 §6.4.3: the wildcard stands for exactly one (the leftmost) label.
  if (size_t dot = name.find('.'); dot != std::string::npos) {
    if (auto w = wildcard_.find(name.substr(dot + 1)); w != wildcard_.end()) return w->second;
  }
  return 0;
}

SSL* ServerContext::newConnection() const { return SSL_new(contexts_.front().get()); }

std::vector<FileStamp> ServerContext::currentStamps() const {
  std::vector<FileStamp> now;
  now.reserve(files_.size());
  for (const auto& stamp : files_) now.push_back(FileStamp::of(stamp.path));
  return now;
}

bool verifiedPeerCertificate(SSL* ssl, PeerCertificate& out) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return false;
  out.names.clear();
  out.has_san = false;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr,
                                                            nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans, i);
      const ASN1_IA5STRING* value = name->type == GEN_DNS     ? name->d.dNSName
                                    : name->type == GEN_URI   ? name->d.uniformResourceIdentifier
                                    : name->type == GEN_EMAIL ? name->d.rfc822Name
                                                              : nullptr;
      if (value == nullptr) continue;
      const char* type = name->type == GEN_DNS ? "dns:" : name->type == GEN_URI ? "uri:" : "email:";
      out.names.emplace_back(type).append(
          reinterpret_cast<const char*>(ASN1_STRING_get0_data(value)),
          static_cast<size_t>(ASN1_STRING_length(value)));
      out.has_san = true;
    }
    GENERAL_NAMES_free(sans);
  }
  char cn[256];
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  if (n > 0) out.names.emplace_back("cn:").append(cn, static_cast<size_t>(n));

  out.subject.clear();
  if (BIO* bio = BIO_new(BIO_s_mem())) {
    X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    if (len > 0) out.subject.assign(data, static_cast<size_t>(len));
    BIO_free(bio);
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  out.sha256.clear();
  if (X509_digest(cert, EVP_sha256(), md, &md_len) == 1) {
    static constexpr char kHex[] = "0123456789abcdef";
    for (unsigned int i = 0; i < md_len; ++i) {
      out.sha256.push_back(kHex[md[i] >> 4]);
      out.sha256.push_back(kHex[md[i] & 15]);
    }
  }
  return true;
}

}  // namespace portico::tls
