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

namespace {

size_t countPairs(std::string_view list, char separator, std::string_view name) {
  size_t count = 0;
  while (!list.empty()) {
    size_t end = list.find(separator);
    std::string_view pair = list.substr(0, end);
    while (!pair.empty() && (pair.front() == ' ' || pair.front() == '\t')) pair.remove_prefix(1);
    if (pair.size() > name.size() && pair[name.size()] == '=' && pair.starts_with(name)) ++count;
    if (end == std::string_view::npos) break;
    list.remove_prefix(end + 1);
  }
  return count;
}

size_t countOccurrences(const config::CredentialSource& source, http::HeaderList headers,
                        std::string_view query) {
  using Kind = config::CredentialSource::Kind;
  size_t count = 0;
  switch (source.kind) {
    case Kind::Header:
      for (const auto& h : headers) count += http::equalsIgnoreCase(h.name, source.name) ? 1 : 0;
      break;
    case Kind::Cookie:
      for (const auto& h : headers) {
        if (http::equalsIgnoreCase(h.name, "cookie"))
          count += countPairs(h.value, ';', source.name);
      }
      break;
    case Kind::Query:
      count = countPairs(query, '&', source.name);
      break;
  }
  return count;
}

}  // namespace

bool credentialRepeated(const std::vector<config::CredentialSource>& sources,
                        http::HeaderList headers, std::string_view query) {
  for (const auto& source : sources) {
    if (countOccurrences(source, headers, query) > 1) return true;
  }
  return false;
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
