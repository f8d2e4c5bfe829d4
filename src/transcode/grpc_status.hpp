#pragma once
// gRPC status codes (grpc/doc/statuscodes.md) as a REST client sees them: the HTTP status of the
// google.rpc mapping (google/rpc/code.proto) and a lower-case name for SPEC §4's error body.

#include <string>
#include <string_view>

namespace portico::transcode {

inline constexpr int kGrpcOk = 0;
inline constexpr int kGrpcUnavailable = 14;
inline constexpr int kGrpcUnknown = 2;

// 404 for NOT_FOUND, 503 for UNAVAILABLE, ...; 500 for a code outside 0..16.
int httpStatusOfGrpc(int grpc_status);
// "not_found", "unavailable", ...; "unknown" outside 0..16.
std::string_view grpcStatusName(int grpc_status);
// A grpc-status field's value: its code, or UNKNOWN when it is not a number 0..99.
int parseGrpcStatus(std::string_view value);
// grpc-message is percent-encoded (grpc/doc/PROTOCOL-HTTP2.md); malformed escapes stay as sent.
std::string decodeGrpcMessage(std::string_view value);

}  // namespace portico::transcode
