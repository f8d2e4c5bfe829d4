#include "config/values.hpp"

#include <arpa/inet.h>
#include <re2/re2.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <unordered_set>

namespace portico::config::detail {

std::string quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c + 32);
    }
  }
  return out;
}

namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
char upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }
bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isAlpha(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
bool isHex(char c) { return isDigit(c) || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f'); }
int hexValue(char c) { return isDigit(c) ? c - '0' : lower(c) - 'a' + 10; }

// RFC 3986 unreserved: percent-encoding them changes nothing, so normalization decodes them.
bool isUnreserved(char c) {
  return isAlpha(c) || isDigit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

// pchar minus pct-encoded, plus '/': what a normalized request path may hold literally.
bool isPathChar(char c) {
  return isUnreserved(c) || (c != '\0' && std::strchr("!$&'()*+,;=:@/", c) != nullptr);
}

std::optional<uint16_t> parsePort(std::string_view text) {
  if (text.empty() || text.size() > 5 || !std::all_of(text.begin(), text.end(), isDigit)) {
    return std::nullopt;
  }
  unsigned value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  if (value < 1 || value > 65535) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(value);
}

// Splits "host:port" / "[v6]:port". Returns false when there is no port part at all.
bool splitHostPort(std::string_view text, std::string_view& host, std::string_view& port,
                   bool& bracketed) {
  bracketed = !text.empty() && text.front() == '[';
  if (bracketed) {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return false;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    return true;
  }
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return false;
  }
  host = text.substr(0, colon);
  port = text.substr(colon + 1);
  return true;
}

bool isDnsName(std::string_view name) {
  if (name.empty() || name.size() > 253) {
    return false;
  }
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    std::string_view label = name.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!isAlpha(c) && !isDigit(c) && c != '-' && c != '_') {
        return false;
      }
    }
    if (dot == std::string_view::npos) {
      break;
    }
    start = dot + 1;
  }
  return true;
}

std::string describeChar(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u >= 0x80) {
    return "a non-ASCII byte";
  }
  if (u < 0x20 || u == 0x7f) {
    return "a control character";
  }
  return "'" + std::string(1, c) + "'";
}

// The normalized form of a path whose characters were already checked: unreserved escapes
// decoded, other escapes in upper case, "//" collapsed, "." and ".." segments resolved.
std::string normalize(std::string_view path) {
  std::string decoded;
  decoded.reserve(path.size());
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '%' && i + 2 < path.size() && isHex(path[i + 1]) && isHex(path[i + 2])) {
      char c = static_cast<char>(hexValue(path[i + 1]) * 16 + hexValue(path[i + 2]));
      if (isUnreserved(c)) {
        decoded.push_back(c);
      } else {
        decoded.push_back('%');
        decoded.push_back(upper(path[i + 1]));
        decoded.push_back(upper(path[i + 2]));
      }
      i += 2;
    } else {
      decoded.push_back(path[i]);
    }
  }
  std::vector<std::string_view> segments;
  std::string_view rest(decoded);
  bool trailing_slash = false;
  size_t start = 1;
  while (start <= rest.size()) {
    size_t slash = rest.find('/', start);
    std::string_view seg =
        rest.substr(start, slash == std::string_view::npos ? slash : slash - start);
    bool last = slash == std::string_view::npos;
    if (seg == "..") {
      if (!segments.empty()) {
        segments.pop_back();
      }
      trailing_slash = last;
    } else if (seg == "." || seg.empty()) {
      trailing_slash = last && !segments.empty();
    } else {
      segments.push_back(seg);
      trailing_slash = false;
    }
    if (last) {
      break;
    }
    start = slash + 1;
  }
  std::string out;
  for (std::string_view seg : segments) {
    out.push_back('/');
    out.append(seg);
  }
  if (out.empty() || trailing_slash) {
    out.push_back('/');
  }
  return out;
}

bool isParamName(std::string_view name) {
  if (name.empty() || !(isAlpha(name[0]) || name[0] == '_')) {
    return false;
  }
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return isAlpha(c) || isDigit(c) || c == '_'; });
}

}  // namespace

Problem parseListenAddress(std::string_view text, HostPort& out) {
  std::string_view host;
  std::string_view port;
  bool bracketed = false;
  const std::string usage = " (use host:port, e.g. 0.0.0.0:8080 or [::]:8080)";
  if (!splitHostPort(text, host, port, bracketed)) {
    return "invalid address " + quote(text) + usage;
  }
  if (!bracketed && host.find(':') != std::string_view::npos) {
    return "invalid address " + quote(text) + ": write IPv6 addresses in brackets, e.g. [::]:8080";
  }
  std::string host_text(host);
  unsigned char buf[16];
  char canonical[INET6_ADDRSTRLEN];
  int family = bracketed ? AF_INET6 : AF_INET;
  if (inet_pton(family, host_text.c_str(), buf) != 1) {
    return "invalid address " + quote(text) +
           ": the host must be a numeric IP address, like 127.0.0.1 or [::1]";
  }
  auto port_number = parsePort(port);
  if (!port_number) {
    return "invalid port " + quote(port) + " in address " + quote(text) + " (use 1 to 65535)";
  }
  inet_ntop(family, buf, canonical, sizeof canonical);
  out.host = host_text;
  out.port = *port_number;
  out.canonical = (bracketed ? "[" + std::string(canonical) + "]" : std::string(canonical)) + ":" +
                  std::to_string(*port_number);
  return std::nullopt;
}

Problem parseEndpoint(std::string_view text, Endpoint& out) {
  if (text.find("://") != std::string_view::npos) {
    return "invalid endpoint " + quote(text) + " (write host:port, without a scheme)";
  }
  std::string_view host;
  std::string_view port;
  bool bracketed = false;
  if (!splitHostPort(text, host, port, bracketed)) {
    return "invalid endpoint " + quote(text) +
           " (use host:port, e.g. 127.0.0.1:9001 or users.internal:80)";
  }
  std::string host_text(host);
  unsigned char buf[16];
  if (bracketed) {
    if (inet_pton(AF_INET6, host_text.c_str(), buf) != 1) {
      return "invalid endpoint " + quote(text) + ": " + quote(host) + " is not an IPv6 address";
    }
  } else if (host.find(':') != std::string_view::npos) {
    return "invalid endpoint " + quote(text) +
           ": write IPv6 addresses in brackets, e.g. [::1]:9001";
  } else if (!host.empty() &&
             std::all_of(host.begin(), host.end(), [](char c) { return isDigit(c) || c == '.'; })) {
    if (inet_pton(AF_INET, host_text.c_str(), buf) != 1) {
      return "invalid endpoint " + quote(text) + ": " + quote(host) + " is not an IPv4 address";
    }
  } else if (!isDnsName(host)) {
    return "invalid endpoint " + quote(text) + ": the host must be an IP address or a DNS name";
  }
  auto port_number = parsePort(port);
  if (!port_number) {
    return "invalid port " + quote(port) + " in endpoint " + quote(text) + " (use 1 to 65535)";
  }
  out.host = host_text;
  out.port = *port_number;
  out.text = std::string(text);
  return std::nullopt;
}

Problem checkPlainHttpUrl(std::string_view url, bool insecure) {
  if (insecure || !url.starts_with("http://")) return {};
  std::string_view host = url.substr(7);
  host = host.substr(0, host.find_first_of("/?#"));
  if (size_t at = host.rfind('@'); at != std::string_view::npos) host.remove_prefix(at + 1);
  if (host.starts_with('[')) {
    host = host.substr(1, host.find(']') - 1);
  } else {
    host = host.substr(0, host.find(':'));
  }
  if (host == "localhost" || host == "::1" || host.starts_with("127.")) return {};
  return "plain http:// to a host other than the loopback (use https://, or set "
         "\"insecure: true\" to accept it)";
}

Problem parseCidr(std::string_view text, Cidr& out) {
  const std::string usage = " (use an address or address/prefix, e.g. 10.0.0.0/8 or fd00::/8)";
  size_t slash = text.find('/');
  std::string addr(text.substr(0, slash));
  std::array<uint8_t, 16> bytes{};
  int max_prefix = 0;
  int offset = 0;  // bits of the IPv6 space before the written prefix starts
  if (inet_pton(AF_INET, addr.c_str(), bytes.data() + 12) == 1) {
    bytes[10] = 0xff;
    bytes[11] = 0xff;
    max_prefix = 32;
    offset = 96;
  } else if (inet_pton(AF_INET6, addr.c_str(), bytes.data()) == 1) {
    max_prefix = 128;
  } else {
    return "invalid CIDR " + quote(text) + usage;
  }
  int prefix = max_prefix;
  if (slash != std::string_view::npos) {
    std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3 ||
        !std::all_of(digits.begin(), digits.end(), isDigit)) {
      return "invalid CIDR " + quote(text) + usage;
    }
    std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
    if (prefix > max_prefix) {
      return "invalid CIDR " + quote(text) + ": the prefix length must be 0 to " +
             std::to_string(max_prefix);
    }
  }
  int total = prefix + offset;
  std::array<uint8_t, 16> masked = bytes;
  for (int bit = total; bit < 128; ++bit) {
    masked[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  }
  if (masked != bytes) {
    // A set host bit usually means the author wrote an address where a network was meant;
    // silently masking would widen or shift what is trusted.
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(offset ? AF_INET : AF_INET6, offset ? masked.data() + 12 : masked.data(), buf,
              sizeof buf);
    return "invalid CIDR " + quote(text) + ": bits are set after the prefix length (did you mean " +
           quote(std::string(buf) + "/" + std::to_string(prefix)) + "?)";
  }
  out.address = bytes;
  out.prefix_len = static_cast<uint8_t>(total);
  out.text = std::string(text);
  return std::nullopt;
}

bool isToken(std::string_view text) {
  if (text.empty()) {
    return false;
  }
  return std::all_of(text.begin(), text.end(), [](char c) {
    return isAlpha(c) || isDigit(c) || (c != '\0' && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
  });
}

Problem checkHostPattern(std::string_view text, std::string& out) {
  out.clear();
  for (char c : text) {
    out.push_back(lower(c));
  }
  unsigned char buf[16];
  if (out.size() > 2 && out.front() == '[' && out.back() == ']' &&
      inet_pton(AF_INET6, out.substr(1, out.size() - 2).c_str(), buf) == 1) {
    return std::nullopt;
  }
  if (out == "*") {
    return "invalid host \"*\" (leave \"hosts\" out to match any host)";
  }
  if (out.find(':') != std::string::npos) {
    return "invalid host " + quote(text) + " (leave the port out)";
  }
  std::string_view name(out);
  if (name.starts_with("*.")) {
    name.remove_prefix(2);
  }
  if (name.find('*') != std::string_view::npos) {
    return "invalid host " + quote(text) +
           " (a '*' may only be the whole first label, as in \"*.example.com\")";
  }
  if (!isDnsName(name)) {
    return "invalid host " + quote(text);
  }
  return std::nullopt;
}

Problem checkPath(std::string_view key, std::string_view path, PathSyntax syntax,
                  std::vector<std::string>* params) {
  const std::string what = std::string(key) + " " + quote(path);
  if (path.empty() || path.front() != '/') {
    return what + " must start with '/'";
  }
  const std::string invalid =
      syntax == PathSyntax::Template ? "invalid path template " + quote(path) : "invalid " + what;
  std::unordered_set<std::string_view> seen;
  for (size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '{' || c == '}') {
      if (syntax == PathSyntax::Literal) {
        return what + " contains '{' or '}' (use \"path\" for a template like /users/{id})";
      }
      size_t close = c == '{' ? path.find_first_of("{}", i + 1) : std::string_view::npos;
      bool closed = close != std::string_view::npos && path[close] == '}';
      bool whole =
          closed && path[i - 1] == '/' && (close + 1 == path.size() || path[close + 1] == '/');
      if (syntax == PathSyntax::Template && !whole) {
        return invalid + ": a parameter must be a whole segment, like /users/{id}";
      }
      if (!closed) {
        return invalid + ": a '{' or '}' that is not part of a {name} parameter";
      }
      std::string_view name = path.substr(i + 1, close - i - 1);
      if (!isParamName(name)) {
        return "invalid parameter name " + quote(name) + " in " +
               (syntax == PathSyntax::Template ? "path template " : std::string(key) + " ") +
               quote(path) + " (use letters, digits and '_', not starting with a digit)";
      }
      // A rewrite may use a parameter twice; a template capturing one name twice is ambiguous.
      if (!seen.insert(name).second && syntax == PathSyntax::Template) {
        return "duplicate parameter \"{" + std::string(name) + "}\" in path template " +
               quote(path);
      }
      if (syntax == PathSyntax::Template && seen.size() > 16) {
        return "path template " + quote(path) + " has more than 16 parameters";
      }
      if (params != nullptr) {
        params->emplace_back(name);
      }
      i = close;
      continue;
    }
    if (c == '?') {
      return what + " must not contain '?' (match query parameters with \"query\")";
    }
    if (c == '#') {
      return what + " must not contain '#'";
    }
    if (c == '%') {
      if (i + 2 >= path.size() || !isHex(path[i + 1]) || !isHex(path[i + 2])) {
        return what + " has an invalid percent-encoding (use % and two hex digits)";
      }
      int value = hexValue(path[i + 1]) * 16 + hexValue(path[i + 2]);
      if (value == '/' || value == '\\' || value == 0) {
        // Requests with %2F, %5C or %00 are refused before routing (SPEC §4).
        return what + " contains an encoded '/', '\\' or NUL, which requests may not hold";
      }
      i += 2;
    } else if (!isPathChar(c)) {
      return what + " contains " + describeChar(c) +
             ", which is not allowed in a path (percent-encode it)";
    }
  }
  // Braces survive normalization unchanged, so parameters need no special case here.
  std::string normalized = normalize(path);
  if (normalized != path) {
    return what + " is not normalized (write " + quote(normalized) + ")";
  }
  return std::nullopt;
}

Problem checkRegex(std::string_view pattern) {
  RE2::Options options;
  options.set_log_errors(false);
  RE2 re(re2::StringPiece(pattern.data(), pattern.size()), options);
  if (!re.ok()) {
    return re.error();
  }
  return std::nullopt;
}

size_t editDistance(std::string_view a, std::string_view b) {
  // Three rows suffice for optimal string alignment (adjacent transpositions cost 1).
  std::vector<size_t> before(b.size() + 1);
  std::vector<size_t> prev(b.size() + 1);
  std::vector<size_t> cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) {
    prev[j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
          lower(a[i - 2]) == lower(b[j - 1])) {
        cur[j] = std::min(cur[j], before[j - 2] + 1);
      }
    }
    std::swap(before, prev);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::optional<std::string> closestMatch(std::string_view word,
                                        std::span<const std::string_view> candidates) {
  std::optional<std::string> best;
  size_t best_distance = 3;
  for (std::string_view candidate : candidates) {
    size_t distance = editDistance(word, candidate);
    if (distance < best_distance && distance < word.size()) {
      best_distance = distance;
      best = std::string(candidate);
    }
  }
  return best;
}

}  // namespace portico::config::detail
