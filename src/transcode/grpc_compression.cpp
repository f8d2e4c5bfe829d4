#include "transcode/grpc_compression.hpp"

#include <zlib.h>

#include "http/header.hpp"

namespace portico::transcode {

MessageEncoding messageEncodingOf(std::string_view grpc_encoding) {
  grpc_encoding = http::trimOws(grpc_encoding);
  if (grpc_encoding.empty() || http::equalsIgnoreCase(grpc_encoding, "identity")) {
    return MessageEncoding::Identity;
  }
  if (http::equalsIgnoreCase(grpc_encoding, "gzip")) return MessageEncoding::Gzip;
  if (http::equalsIgnoreCase(grpc_encoding, "deflate")) return MessageEncoding::Deflate;
  return MessageEncoding::Unknown;
}

bool decompressMessage(MessageEncoding encoding, std::string_view compressed, size_t max_size,
                       std::string& out) {
  if (encoding != MessageEncoding::Gzip && encoding != MessageEncoding::Deflate) return false;
  z_stream stream{};
  // 16 + MAX_WBITS: a gzip wrapper; MAX_WBITS: zlib's (gRPC's "deflate" is RFC 1950).
  if (inflateInit2(&stream, encoding == MessageEncoding::Gzip ? 16 + MAX_WBITS : MAX_WBITS) !=
      Z_OK) {
    return false;
  }
  out.clear();
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  stream.avail_in = static_cast<uInt>(compressed.size());
  int status = Z_OK;
  char chunk[16 * 1024];
  while (status == Z_OK) {
    stream.next_out = reinterpret_cast<Bytef*>(chunk);
    stream.avail_out = sizeof chunk;
    status = inflate(&stream, Z_NO_FLUSH);
    const size_t produced = sizeof chunk - stream.avail_out;
    if (out.size() + produced > max_size) {
      status = Z_DATA_ERROR;  // a bomb, or just too large: the same answer
      break;
    }
    out.append(chunk, produced);
  }
  inflateEnd(&stream);
  return status == Z_STREAM_END && stream.avail_in == 0;
}

}  // namespace portico::transcode
