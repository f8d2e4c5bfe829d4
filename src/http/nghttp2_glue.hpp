#pragma once
// Small pieces both HTTP/2 sides (client connections in proxy/, upstream connections in
// upstream/) need around nghttp2: header fields, chunk framing of bodies, and handing waiting
// body bytes to a DATA frame.

#include <nghttp2/nghttp2.h>
#include <sys/types.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "core/buffer.hpp"
#include "http/header.hpp"
#include "http/http1_parser.hpp"

namespace portico::http {

inline nghttp2_nv nghttp2Field(std::string_view name, std::string_view value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

// "<size in hex>\r\n": the head of one HTTP/1.1 chunk.
inline void appendChunkHead(Buffer& out, size_t n) {
  char digits[16];
  int count = 0;
  do {
    digits[count++] = "0123456789abcdef"[n & 15];
    n >>= 4;
  } while (n != 0);
  while (count > 0) out.append(digits[--count]);
  out.append("\r\n");
}

// The read callback of a data source over `body`: what waits, the EOF flag once `ended` and all
// is taken, NGHTTP2_ERR_DEFERRED (and `deferred` set) when nothing waits yet. `made_room` says
// a writer waiting for room in `body` can go on.
inline ssize_t readBodyForData(Buffer& body, bool ended, bool& deferred, uint8_t* buf,
                               size_t length, uint32_t* data_flags, bool& made_room) {
  size_t n = std::min(length, body.size());
  if (n > 0) std::memcpy(buf, body.data(), n);
  body.consume(n);
  if (body.empty()) body.clear();
  made_room = n > 0;
  if (body.empty() && ended) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }
  if (n == 0) {
    deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(n);
}

// Submits a chunked body's trailer section ("name: value\r\n" lines, as ChunkedDecoder checked
// them) as the stream's trailing HEADERS frame: names lowered in place (RFC 9113 §8.2.1),
// connection-specific fields left out. Call it from the data source's last read, with
// NGHTTP2_DATA_FLAG_NO_END_STREAM set.
inline bool submitTrailerLines(nghttp2_session* session, int32_t stream_id, std::string& lines) {
  std::vector<nghttp2_nv> fields;
  size_t pos = 0;
  while (pos < lines.size()) {
    size_t end = lines.find("\r\n", pos);
    if (end == std::string::npos) break;
    std::string_view line(lines.data() + pos, end - pos);
    size_t colon = line.find(':');
    std::string_view name = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    value = trimOws(value);
    for (size_t i = pos; i < pos + name.size(); ++i) lines[i] = asciiLower(lines[i]);
    if (!isHopByHop(name)) fields.push_back(nghttp2Field(name, value));
    pos = end + 2;
  }
  return nghttp2_submit_trailer(session, stream_id, fields.data(), fields.size()) == 0;
}

}  // namespace portico::http
