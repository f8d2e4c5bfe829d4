#pragma once
// Checks and parsers for the config's value syntaxes: addresses, endpoints, CIDRs, hosts, paths,
// path templates, regexes, header names. Pure functions over strings; each returns the problem
// as a message (without position, the loader adds it) or nullopt when the value is fine.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.hpp"

namespace portico::config::detail {

// "name" with the quotes, for messages.
std::string quote(std::string_view s);
// ASCII lower case.
std::string lowercase(std::string_view s);

using Problem = std::optional<std::string>;

struct HostPort {
  std::string host;  // numeric, without brackets
  uint16_t port = 0;
  std::string canonical;  // "host:port" / "[v6]:port" in inet_ntop form, to find duplicates
};

// A socket address to listen on: "0.0.0.0:8080", "[::1]:9901". The host must be numeric.
Problem parseListenAddress(std::string_view text, HostPort& out);

// An upstream endpoint "host:port": the host is a numeric address (IPv6 in brackets) or a DNS
// name. Endpoint::host is kept as written, without brackets.
Problem parseEndpoint(std::string_view text, Endpoint& out);

// "10.0.0.0/8", "2001:db8::/32", or a single address (a /32 or /128).
Problem parseCidr(std::string_view text, Cidr& out);

// An http:// URL the gateway fetches keys or verdicts from: refused unless its host is on the
// loopback (a sidecar) or `insecure` is set, since a man in the middle could then hand out keys
// or read the client secret (review L3). https:// URLs always pass.
Problem checkPlainHttpUrl(std::string_view url, bool insecure);

// RFC 9110 §5.6.2 token: 1*tchar.
bool isToken(std::string_view text);

// A match.hosts entry: "api.example.com" or "*.example.com". `out` receives the lowercased form.
Problem checkHostPattern(std::string_view text, std::string& out);

enum class PathSyntax : uint8_t {
  Literal,   // path_prefix, path_exact: braces refused
  Template,  // match.path: "{name}" segments capture, names unique
  Rewrite,   // rewrite.path: "{name}" anywhere substitutes a captured value
};

// A path in a config key (`key` names it in messages): starts with '/', uses only characters a
// normalized request path can hold, and is already in the form http::normalizePath gives, so
// it can match at all. Parameter names found are appended to `params` when it is not null.
Problem checkPath(std::string_view key, std::string_view path, PathSyntax syntax,
                  std::vector<std::string>* params);

// Compiles `pattern` with RE2; returns RE2's error text on failure.
Problem checkRegex(std::string_view pattern);

// Optimal-string-alignment distance, ignoring ASCII case.
size_t editDistance(std::string_view a, std::string_view b);

// The candidate a misspelled `word` most likely meant: within edit distance 2 (and shorter than
// the word itself, so "a" does not suggest "id"). Ties go to the earlier candidate.
std::optional<std::string> closestMatch(std::string_view word,
                                        std::span<const std::string_view> candidates);

}  // namespace portico::config::detail
