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

// Header fields for nghttp2, names lowered (RFC 9113 §8.2.1) into storage of the list's own.
// Kept and reused by its owner, so that a head allocates nothing once the list has grown.
class FieldList {
 public:
  void clear() {
    fields_.clear();
    names_used_ = 0;
  }
  // A response head's list: :status first (RFC 9113 §8.3).
  void startResponse(int status) {
    clear();
    status_[0] = static_cast<char>('0' + status / 100 % 10);
    status_[1] = static_cast<char>('0' + status / 10 % 10);
    status_[2] = static_cast<char>('0' + status % 10);
    add(":status", std::string_view(status_, 3));
  }
  // `unique`: a value no other message repeats (a request id), kept out of the HPACK dynamic
  // table (RFC 7541 §6.2.2) where it would only push out what does repeat.
  void add(std::string_view name, std::string_view value, bool unique = false) {
    fields_.push_back(
        {nullptr, reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
         value.size(),
         static_cast<uint8_t>(unique ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE)});
    if (names_used_ + name.size() > names_.size()) {
      names_.resize(std::max(names_.size() * 2, names_used_ + name.size() + 256));
    }
    asciiLowerCopy(names_.data() + names_used_, name.data(), name.size());
    names_used_ += name.size();
  }
  // Connection-specific fields (RFC 9113 §8.2.2) are left out.
  void addForwarded(std::string_view name, std::string_view value) {
    if (!isHopByHop(name)) add(name, value);
  }
  // The fields, valid until the next add() or clear(); nghttp2 copies them when submitted.
  nghttp2_nv* data() {
    size_t at = 0;  // names were appended in order: the storage may have moved meanwhile
    for (auto& field : fields_) {
      field.name = reinterpret_cast<uint8_t*>(names_.data() + at);
      at += field.namelen;
    }
    return fields_.data();
  }
  size_t size() const { return fields_.size(); }

 private:
  std::vector<nghttp2_nv> fields_;
  std::string names_;  // names_used_ bytes of it hold the names, in order
  size_t names_used_ = 0;
  char status_[3] = {};
};

// Submits a chunked body's trailer section ("name: value\r\n" lines, as ChunkedDecoder checked
// them) as the stream's trailing HEADERS frame, connection-specific fields left out. Call it
// from the data source's last read, with NGHTTP2_DATA_FLAG_NO_END_STREAM set.
inline bool submitTrailerLines(nghttp2_session* session, int32_t stream_id,
                               std::string_view lines) {
  FieldList fields;
  forEachFieldLine(lines, [&](std::string_view name, std::string_view value) {
    fields.addForwarded(name, value);
  });
  return nghttp2_submit_trailer(session, stream_id, fields.data(), fields.size()) == 0;
}

}  // namespace portico::http
