#include "http/http1_parser.hpp"

#include <cstring>

#include "http/chars.hpp"

namespace portico::http {
namespace {

bool parseContentLength(std::string_view v, uint64_t& out) {
  if (v.empty() || v.size() > 18) return false;
  uint64_t n = 0;
  for (char c : v) {
    if (!isDigit(c)) return false;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  out = n;
  return true;
}

// Calls fn(token) for each comma-separated element of a list-valued field (RFC 9110 §5.6.1).
template <class Fn>
void forEachToken(std::string_view value, Fn&& fn) {
  size_t start = 0;
  while (start <= value.size()) {
    size_t comma = value.find(',', start);
    if (comma == std::string_view::npos) comma = value.size();
    std::string_view token = trimOws(value.substr(start, comma - start));
    if (!token.empty()) fn(token);
    start = comma + 1;
  }
}

// Host = uri-host [ ":" port ] (RFC 9110 §7.2): reg-name or IP-literal characters only.
struct HostCharTable {
  bool allowed[256] = {};
  constexpr HostCharTable() {
    for (int c = '0'; c <= '9'; ++c) allowed[c] = true;
    for (int c = 'a'; c <= 'z'; ++c) allowed[c] = true;
    for (int c = 'A'; c <= 'Z'; ++c) allowed[c] = true;
    for (char c : "-._~:[]%!$&'()*+,;=") {
      if (c != 0) allowed[static_cast<unsigned char>(c)] = true;
    }
  }
};
constexpr HostCharTable kHostChar;

bool isValidHost(std::string_view host) {
  if (host.empty() || host.size() > 255) return false;
  for (char c : host) {
    if (!kHostChar.allowed[static_cast<unsigned char>(c)]) return false;
  }
  return true;
}

// Reads the header fields of a head whose start line ends at `pos`. Shared by requests and
// responses; framing fields are interpreted by the callers.
ParseStatus parseFields(const char* data, size_t head_end, size_t pos, size_t max_headers,
                        MessageHead& out, ParseError& error) {
  out.headers.clear();
  const size_t end = head_end - 2;  // the blank line's CRLF
  while (pos < end) {
    const char* line = data + pos;
    const size_t rest = end - pos;  // findHeadEnd saw every CR followed by its LF
    if (line[0] == ' ' || line[0] == '\t') {
      error = ParseError::ObsFold;
      return ParseStatus::Error;
    }
    size_t colon = 0;
    while (colon < rest && isTchar(line[colon])) ++colon;
    if (colon == 0 || colon >= rest || line[colon] != ':') {
      error = (colon < rest && (line[colon] == ' ' || line[colon] == '\t'))
                  ? ParseError::WhitespaceBeforeColon
                  : ParseError::BadHeaderName;
      return ParseStatus::Error;
    }
    // The value runs to the line's CR, the first byte that is not a value character.
    const size_t value_at = colon + 1;
    const size_t line_len = value_at + scanFieldValue(line + value_at, rest - value_at);
    if (line_len < rest && line[line_len] != '\r') {
      error = ParseError::BadHeaderValue;
      return ParseStatus::Error;
    }
    if (out.headers.size() >= max_headers) {
      error = ParseError::TooManyHeaders;
      return ParseStatus::Error;
    }
    std::string_view value(line + value_at, line_len - value_at);
    out.headers.push_back({std::string_view(line, colon), trimOws(value)});
    pos += line_len + 2;
  }
  return ParseStatus::Complete;
}

// Interprets the fields that decide framing and connection reuse, common to both directions.
// Sets framing to Length/Chunked when present; callers decide what "absent" means.
ParseStatus interpretFraming(MessageHead& out, bool& has_length, bool& has_chunked,
                             ParseError& error) {
  has_length = false;
  has_chunked = false;
  bool saw_close = false;
  bool saw_keep_alive = false;
  out.connection_lists_headers = false;
  out.upgrade = false;
  for (const auto& h : out.headers) {
    if (h.name.size() == 14 && equalsIgnoreCase(h.name, "content-length")) {
      if (has_length) {
        error = ParseError::DuplicateContentLength;
        return ParseStatus::Error;
      }
      if (!parseContentLength(h.value, out.content_length)) {
        error = ParseError::BadContentLength;
        return ParseStatus::Error;
      }
      has_length = true;
    } else if (h.name.size() == 17 && equalsIgnoreCase(h.name, "transfer-encoding")) {
      // Only a single "chunked" is accepted: any other coding, a list, or a repeated field
      // is something another parser may frame differently.
      if (has_chunked || !equalsIgnoreCase(h.value, "chunked")) {
        error = ParseError::BadTransferEncoding;
        return ParseStatus::Error;
      }
      has_chunked = true;
    } else if (h.name.size() == 10 && equalsIgnoreCase(h.name, "connection")) {
      forEachToken(h.value, [&](std::string_view token) {
        if (equalsIgnoreCase(token, "close")) saw_close = true;
        else if (equalsIgnoreCase(token, "keep-alive")) saw_keep_alive = true;
        else {
          if (equalsIgnoreCase(token, "upgrade")) out.upgrade = true;
          out.connection_lists_headers = true;
        }
      });
    }
  }
  if (has_length && has_chunked) {
    error = ParseError::LengthWithChunked;
    return ParseStatus::Error;
  }
  out.keep_alive = out.version_minor == 1 ? !saw_close : (saw_keep_alive && !saw_close);
  return ParseStatus::Complete;
}

}  // namespace

const char* describe(ParseError error) {
  switch (error) {
    case ParseError::None: return "ok";
    case ParseError::BareLineFeed: return "line ending without CR";
    case ParseError::BareCarriageReturn: return "CR not followed by LF";
    case ParseError::BadRequestLine: return "malformed request line";
    case ParseError::BadMethod: return "invalid method";
    case ParseError::BadTarget: return "invalid request target";
    case ParseError::BadVersion: return "unsupported HTTP version";
    case ParseError::BadStatusLine: return "malformed status line";
    case ParseError::BadHeaderName: return "invalid header field name";
    case ParseError::BadHeaderValue: return "invalid character in header field value";
    case ParseError::WhitespaceBeforeColon: return "whitespace between header field name and colon";
    case ParseError::ObsFold: return "obsolete line folding in header section";
    case ParseError::BadContentLength: return "invalid Content-Length";
    case ParseError::DuplicateContentLength: return "more than one Content-Length";
    case ParseError::LengthWithChunked: return "both Content-Length and Transfer-Encoding";
    case ParseError::BadTransferEncoding: return "unsupported Transfer-Encoding";
    case ParseError::MissingHost: return "missing Host header";
    case ParseError::DuplicateHost: return "more than one Host header";
    case ParseError::BadHost: return "invalid Host header";
    case ParseError::UriTooLong: return "request target too long";
    case ParseError::HeadersTooLarge: return "request header section too large";
    case ParseError::TooManyHeaders: return "too many header fields";
  }
  return "malformed request";
}

ParseStatus findHeadEnd(const char* data, size_t len, size_t& scanned, size_t& head_end,
                        ParseError& error) {
  // `scanned` always sits at the start of a line that has not been seen whole yet.
  while (scanned < len) {
    const char* lf = static_cast<const char*>(std::memchr(data + scanned, '\n', len - scanned));
    size_t line_end = lf ? static_cast<size_t>(lf - data) : len;
    // A CR anywhere but right before the LF is a bare CR.
    const char* cr =
        static_cast<const char*>(std::memchr(data + scanned, '\r', line_end - scanned));
    if (cr != nullptr && static_cast<size_t>(cr - data) + 1 < line_end) {
      error = ParseError::BareCarriageReturn;
      return ParseStatus::Error;
    }
    if (lf == nullptr) return ParseStatus::Incomplete;
    if (line_end == scanned || data[line_end - 1] != '\r') {
      error = ParseError::BareLineFeed;
      return ParseStatus::Error;
    }
    bool blank = line_end == scanned + 1;
    scanned = line_end + 1;
    if (blank) {
      if (scanned == 2) {
        // An empty line where the start line should be. The session skips the CRLFs that
        // RFC 9112 §2.2 allows before a request, so this is only reached by garbage.
        error = ParseError::BadRequestLine;
        return ParseStatus::Error;
      }
      head_end = scanned;
      return ParseStatus::Complete;
    }
  }
  return ParseStatus::Incomplete;
}

bool hasHttpVersion(std::string_view line) {
  constexpr size_t kVersion = 9;  // " HTTP/1.1"
  if (line.size() < kVersion) return false;
  std::string_view version = line.substr(line.size() - kVersion);
  return version.substr(0, 6) == " HTTP/" && isDigit(version[6]) && version[7] == '.' &&
         isDigit(version[8]);
}

namespace {

// The request target (RFC 9112 §3.2): its characters and form, split into path and query.
// `authority` is that of an absolute-form target.
ParseStatus readTarget(RequestHead& out, std::string_view& authority, ParseError& error) {
  for (char c : out.target) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '#') {
      error = ParseError::BadTarget;
      return ParseStatus::Error;
    }
  }
  std::string_view path_and_query;
  if (!out.target.empty() && out.target[0] == '/') {
    path_and_query = out.target;
  } else if (out.target == "*") {
    if (out.method != "OPTIONS") {
      error = ParseError::BadTarget;
      return ParseStatus::Error;
    }
    path_and_query = out.target;
  } else {
    // absolute-form (RFC 9112 §3.2.2): only http and https, and the authority becomes the Host.
    std::string_view t = out.target;
    size_t scheme_len = t.starts_with("http://") ? 7 : t.starts_with("https://") ? 8 : 0;
    if (scheme_len == 0 && t.size() > 8) {
      std::string_view scheme = t.substr(0, t.find("://"));
      if (equalsIgnoreCase(scheme, "http")) scheme_len = 7;
      else if (equalsIgnoreCase(scheme, "https")) scheme_len = 8;
    }
    if (scheme_len == 0) {
      error = ParseError::BadTarget;
      return ParseStatus::Error;
    }
    t.remove_prefix(scheme_len);
    size_t slash = t.find_first_of("/?");
    authority = t.substr(0, slash);
    if (authority.empty() || authority.find('@') != std::string_view::npos ||
        !isValidHost(authority)) {
      error = ParseError::BadTarget;
      return ParseStatus::Error;
    }
    path_and_query = slash == std::string_view::npos ? std::string_view("/") : t.substr(slash);
    if (path_and_query[0] == '?') {
      error = ParseError::BadTarget;  // "http://host?x" has no path; refuse rather than invent one
      return ParseStatus::Error;
    }
  }
  size_t q = path_and_query.find('?');
  out.path = path_and_query.substr(0, q);
  out.query = q == std::string_view::npos ? std::string_view() : path_and_query.substr(q + 1);
  return ParseStatus::Complete;
}

// What a request's fields say about its body, its connection and its Host.
ParseStatus readRequestFields(RequestHead& out, std::string_view authority, ParseError& error) {
  bool has_length = false;
  bool has_chunked = false;
  if (interpretFraming(out, has_length, has_chunked, error) != ParseStatus::Complete) {
    return ParseStatus::Error;
  }
  if (has_chunked && out.version_minor == 0) {
    error = ParseError::BadTransferEncoding;  // RFC 9112 §6.1: chunked is HTTP/1.1 only
    return ParseStatus::Error;
  }
  out.framing = has_chunked ? BodyFraming::Chunked
                : (has_length && out.content_length > 0) ? BodyFraming::Length
                                                         : BodyFraming::None;
  if (!has_length) out.content_length = 0;

  bool saw_host = false;
  for (const auto& h : out.headers) {
    if (h.name.size() == 4 && equalsIgnoreCase(h.name, "host")) {
      if (saw_host) {
        error = ParseError::DuplicateHost;
        return ParseStatus::Error;
      }
      saw_host = true;
      if (!isValidHost(h.value)) {
        error = ParseError::BadHost;
        return ParseStatus::Error;
      }
      out.host = h.value;
    } else if (h.name.size() == 6 && equalsIgnoreCase(h.name, "expect")) {
      out.expect_continue = equalsIgnoreCase(h.value, "100-continue");
    }
  }
  if (!saw_host && out.version_minor == 1) {
    error = ParseError::MissingHost;
    return ParseStatus::Error;
  }
  if (!authority.empty()) out.host = authority;
  return ParseStatus::Complete;
}

}  // namespace

ParseStatus parseRequestHead(const char* data, size_t head_end, const RequestLimits& limits,
                             RequestHead& out, ParseError& error) {
  out.head_size = head_end;
  out.expect_continue = false;
  out.host = {};
  const char* line_end = static_cast<const char*>(std::memchr(data, '\r', head_end));
  size_t line_len = static_cast<size_t>(line_end - data);
  std::string_view line(data, line_len);

  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) {
    error = sp1 == 0 ? ParseError::BadRequestLine : ParseError::BadMethod;
    return ParseStatus::Error;
  }
  out.method = line.substr(0, sp1);
  for (char c : out.method) {
    if (!isTchar(c)) {
      error = ParseError::BadMethod;
      return ParseStatus::Error;
    }
  }
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) {
    error = ParseError::BadRequestLine;
    return ParseStatus::Error;
  }
  out.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (version == "HTTP/1.1")
    out.version_minor = 1;
  else if (version == "HTTP/1.0")
    out.version_minor = 0;
  else {
    error = version.find(' ') != std::string_view::npos ? ParseError::BadRequestLine
                                                        : ParseError::BadVersion;
    return ParseStatus::Error;
  }
  if (out.target.size() > limits.max_uri_bytes) {
    error = ParseError::UriTooLong;
    return ParseStatus::Error;
  }
  if (head_end > limits.max_header_bytes) {
    error = ParseError::HeadersTooLarge;
    return ParseStatus::Error;
  }
  std::string_view authority;
  if (readTarget(out, authority, error) != ParseStatus::Complete) return ParseStatus::Error;
  if (parseFields(data, head_end, line_len + 2, limits.max_headers, out, error) !=
      ParseStatus::Complete) {
    return ParseStatus::Error;
  }
  return readRequestFields(out, authority, error);
}

ParseStatus checkRequestHead(const RequestLimits& limits, RequestHead& out, ParseError& error) {
  out.expect_continue = false;
  out.host = {};
  out.version_minor = 1;
  for (char c : out.method) {
    if (!isTchar(c)) {
      error = ParseError::BadMethod;
      return ParseStatus::Error;
    }
  }
  if (out.method.empty()) {
    error = ParseError::BadMethod;
    return ParseStatus::Error;
  }
  if (out.target.size() > limits.max_uri_bytes) {
    error = ParseError::UriTooLong;
    return ParseStatus::Error;
  }
  if (out.headers.size() > limits.max_headers) {
    error = ParseError::TooManyHeaders;
    return ParseStatus::Error;
  }
  std::string_view authority;
  if (readTarget(out, authority, error) != ParseStatus::Complete) return ParseStatus::Error;
  return readRequestFields(out, authority, error);
}

ParseStatus parseResponseHead(const char* data, size_t head_end, std::string_view request_method,
                              ResponseHead& out, ParseError& error) {
  out.head_size = head_end;
  const char* line_end = static_cast<const char*>(std::memchr(data, '\r', head_end));
  std::string_view line(data, static_cast<size_t>(line_end - data));
  // HTTP-version SP 3DIGIT SP reason-phrase; a missing reason (and its SP) is tolerated.
  if (line.size() < 12 || !line.starts_with("HTTP/1.") || (line[7] != '0' && line[7] != '1') ||
      line[8] != ' ' || !isDigit(line[9]) || !isDigit(line[10]) || !isDigit(line[11]) ||
      (line.size() > 12 && line[12] != ' ')) {
    error = ParseError::BadStatusLine;
    return ParseStatus::Error;
  }
  out.version_minor = static_cast<uint8_t>(line[7] - '0');
  out.status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  if (out.status < 100 || out.status > 599) {
    error = ParseError::BadStatusLine;
    return ParseStatus::Error;
  }
  out.reason = line.size() > 13 ? line.substr(13) : std::string_view();
  for (char c : out.reason) {
    if (!isFieldValueChar(c)) {
      error = ParseError::BadStatusLine;
      return ParseStatus::Error;
    }
  }
  if (parseFields(data, head_end, line.size() + 2, 512, out, error) !=
      ParseStatus::Complete) {
    return ParseStatus::Error;
  }
  bool has_length = false;
  bool has_chunked = false;
  if (interpretFraming(out, has_length, has_chunked, error) != ParseStatus::Complete) {
    return ParseStatus::Error;
  }
  if (request_method == "HEAD" || out.status < 200 || out.status == 204 || out.status == 304) {
    out.framing = BodyFraming::None;
  } else if (has_chunked) {
    out.framing = BodyFraming::Chunked;
  } else if (has_length) {
    out.framing = out.content_length > 0 ? BodyFraming::Length : BodyFraming::None;
  } else {
    out.framing = BodyFraming::UntilClose;
    out.keep_alive = false;
  }
  return ParseStatus::Complete;
}

bool isHopByHop(std::string_view name) {
  switch (name.size()) {
    case 2: return equalsIgnoreCase(name, "te");
    case 7: return equalsIgnoreCase(name, "trailer") || equalsIgnoreCase(name, "upgrade");
    case 10: return equalsIgnoreCase(name, "connection") || equalsIgnoreCase(name, "keep-alive");
    case 16: return equalsIgnoreCase(name, "proxy-connection");
    case 17: return equalsIgnoreCase(name, "transfer-encoding");
    case 19: return equalsIgnoreCase(name, "proxy-authenticate");
    default: return false;
  }
}

bool connectionListsField(HeaderList headers, std::string_view name) {
  bool found = false;
  for (const auto& h : headers) {
    if (h.name.size() == 10 && equalsIgnoreCase(h.name, "connection")) {
      forEachToken(h.value, [&](std::string_view token) {
        if (equalsIgnoreCase(token, name)) found = true;
      });
    }
  }
  return found;
}

}  // namespace portico::http
