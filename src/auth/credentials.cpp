#include "auth/credentials.hpp"

#include <openssl/evp.h>

#include "auth/authenticator.hpp"

namespace portico::auth::detail {

Digest sha256(std::string_view data) {
  Digest digest{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), reinterpret_cast<unsigned char*>(digest.data()), &len,
             EVP_sha256(), nullptr);
  return digest;
}

std::string_view viewOf(const Digest& d) { return {d.data(), d.size()}; }

std::string_view firstCredential(const std::vector<config::CredentialSource>& sources,
                                 http::HeaderList headers, std::string_view query,
                                 std::string& scratch) {
  for (const auto& source : sources) {
    std::string_view found = findCredential(source, headers, query, scratch);
    if (!found.empty()) return found;
  }
  return {};
}

std::string bearerChallenge(bool token_present, const char* description) {
  std::string c = "Bearer realm=\"portico\"";
  if (token_present) {
    c += ", error=\"invalid_token\", error_description=\"";
    c += description;
    c += "\"";
  }
  return c;
}

std::string basicChallenge(std::string_view realm) {
  return "Basic realm=\"" + std::string(realm) + "\", charset=\"UTF-8\"";
}

}  // namespace portico::auth::detail
