#pragma once
// Compressed gRPC messages (grpc/doc/compression.md): a message whose frame says so is in the
// stream's grpc-encoding. The transcoder asks upstreams for identity, but a server may compress
// anyway; gzip and deflate are read (zlib), with the output bounded.

#include <cstddef>
#include <string>
#include <string_view>

namespace portico::transcode {

enum class MessageEncoding : unsigned char { Identity, Gzip, Deflate, Unknown };

MessageEncoding messageEncodingOf(std::string_view grpc_encoding);

// Inflates `compressed` into `out` (replacing it); false when it is not valid in `encoding` or
// would exceed `max_size` bytes.
bool decompressMessage(MessageEncoding encoding, std::string_view compressed, size_t max_size,
                       std::string& out);

}  // namespace portico::transcode
