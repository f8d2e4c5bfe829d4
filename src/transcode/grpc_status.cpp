#include "transcode/grpc_status.hpp"

#include <array>

#include "http/path.hpp"

namespace portico::transcode {
namespace {

struct StatusInfo {
  std::string_view name;
  int http_status;
};

constexpr std::array<StatusInfo, 17> kStatuses = {{
    {"ok", 200},
    {"cancelled", 499},
    {"unknown", 500},
    {"invalid_argument", 400},
    {"deadline_exceeded", 504},
    {"not_found", 404},
    {"already_exists", 409},
    {"permission_denied", 403},
    {"resource_exhausted", 429},
    {"failed_precondition", 400},
    {"aborted", 409},
    {"out_of_range", 400},
    {"unimplemented", 501},
    {"internal", 500},
    {"unavailable", 503},
    {"data_loss", 500},
    {"unauthenticated", 401},
}};

}  // namespace

int httpStatusOfGrpc(int grpc_status) {
  if (grpc_status < 0 || grpc_status >= static_cast<int>(kStatuses.size())) return 500;
  return kStatuses[static_cast<size_t>(grpc_status)].http_status;
}

std::string_view grpcStatusName(int grpc_status) {
  if (grpc_status < 0 || grpc_status >= static_cast<int>(kStatuses.size())) return "unknown";
  return kStatuses[static_cast<size_t>(grpc_status)].name;
}

int parseGrpcStatus(std::string_view value) {
  if (value.empty() || value.size() > 2) return kGrpcUnknown;
  int code = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return kGrpcUnknown;
    code = code * 10 + (c - '0');
  }
  return code;
}

std::string decodeGrpcMessage(std::string_view value) {
  return http::percentDecode(value, false);
}

}  // namespace portico::transcode
