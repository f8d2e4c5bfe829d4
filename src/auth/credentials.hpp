#pragma once
// Helpers the authenticator's parts share: digests of secrets, finding a credential in a
// request, and the WWW-Authenticate challenges.

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.hpp"
#include "http/header.hpp"

namespace portico::auth::detail {

using Digest = std::array<char, 32>;

Digest sha256(std::string_view data);
std::string_view viewOf(const Digest& d);
// The first credential the request carries among `sources`, tried in the configured order.
std::string_view firstCredential(const std::vector<config::CredentialSource>& sources,
                                 http::HeaderList headers, std::string_view query,
                                 std::string& scratch);
// Whether one of `sources` occurs more than once in the request (two Authorization fields, a
// cookie or query parameter given twice). The gateway and the upstream could then each take a
// different one: the request is refused instead (review M3).
bool credentialRepeated(const std::vector<config::CredentialSource>& sources,
                        http::HeaderList headers, std::string_view query);
// RFC 6750 §3: the challenge a client gets for a missing or bad bearer token.
std::string bearerChallenge(bool token_present, const char* description);
// RFC 7617 §2.
std::string basicChallenge(std::string_view realm);

}  // namespace portico::auth::detail
