// Requests that reach a gRPC upstream through a transcode::GrpcCall (docs/transcoding.md): a
// REST/JSON request on a `grpc:` route, or a gRPC-Web request on any gRPC route. The call makes
// the gRPC request of the whole body and turns the upstream's answer into the client's; the
// session relays that answer like any upstream's, filters, framing and timers included.
#include <algorithm>
#include <cerrno>

#include "proxy/session.hpp"
#include "proxy/worker.hpp"
#include "transcode/catalog.hpp"
#include "transcode/grpc_call.hpp"
#include "upstream/http2_client.hpp"

namespace portico::proxy {

bool Session::startGrpcCall(const RouteRuntime& route) {
  RequestState& rq = *rq_;
  // Neither gRPC (noteGrpc saw the content-type) nor a transcoded route: the plain path.
  if (!rq.grpc && !route.config->grpc) return true;
  const http::HeaderField* type = http::findHeader(rq.head.headers, "content-type");
  const std::string_view content_type = type != nullptr ? type->value : std::string_view();
  const bool has_body = rq.head.framing != http::BodyFraming::None;
  const config::GrpcRoute* grpc = route.config->grpc ? &*route.config->grpc : nullptr;
  // gRPC and gRPC-Web clients on a transcoded route call the service's methods by their own
  // path, and only those methods: `services:` bounds them as it bounds the REST rules.
  const bool grpc_request = http::isGrpcContentType(content_type);
  if (grpc != nullptr && grpc_request && grpc->catalog->methodAt(rq.path) == nullptr) {
    replyError(http::ErrorCode::NoRoute,
               "no method of gRPC service \"" + grpc->service + "\" is at this path", has_body);
    return false;
  }
  if (transcode::isGrpcWebContentType(content_type)) {
    // (The upstream this request goes to: a split may mix gRPC and other upstreams.)
    const auto& upstream = *rq.snap->shared->upstreams[rq.upstream_index].config;
    if (upstream.protocol == config::Upstream::Protocol::Grpc) {
      rq.grpc_call = transcode::makeWebCall(content_type);
    }
    return true;
  }
  // gRPC itself goes through a transcoded route untouched.
  if (grpc == nullptr || grpc_request) return true;
  auto match = grpc->catalog->match(rq.head.method, rq.path);
  if (!match) {
    replyError(http::ErrorCode::NoRoute,
               "no method of gRPC service \"" + grpc->service + "\" maps this request", has_body);
    return false;
  }
  transcode::JsonOptions options;
  options.preserve_proto_field_names = grpc->preserve_proto_field_names;
  options.always_print_primitive_fields = grpc->always_print_primitive_fields;
  options.ignore_unknown_query_parameters = grpc->ignore_unknown_query_parameters;
  std::string error;
  rq.grpc_call =
      transcode::makeJsonCall(grpc->catalog, *match, rq.head.query, options,
                              grpc->stream_json_array ? transcode::StreamFormat::JsonArray
                                                      : transcode::StreamFormat::Ndjson,
                              std::string_view(rq.request_id, rq.request_id_len), error);
  if (!rq.grpc_call) {
    replyError(http::ErrorCode::BadRequest, error, has_body);
    return false;
  }
  rq.forward_target = match->method->grpc_path;
  return true;
}

bool Session::collectGrpcBody() {
  RequestState& rq = *rq_;
  std::string& body = rq.grpc_call->requestBody();
  bool whole = true;
  size_t taken = 0;
  if (rq.req_framing == http::BodyFraming::Length) {
    taken = static_cast<size_t>(std::min<uint64_t>(in_.size(), rq.req_remaining));
    body.append(in_.data(), taken);
    rq.req_remaining -= taken;
    whole = rq.req_remaining == 0;
  } else if (rq.req_framing == http::BodyFraming::Chunked) {
    const auto r = rq.req_chunked.feed(in_.data(), in_.size(), &body);
    if (r.error) {
      replyError(http::ErrorCode::BadRequest, "malformed chunked request body", true);
      return true;
    }
    if (body.size() > rq.max_body) {
      replyError(http::ErrorCode::PayloadTooLarge, "request body exceeds the size limit", true);
      return true;
    }
    taken = r.consumed;
    whole = r.done;
  }
  in_.consume(taken);
  rq.bytes_in += taken;
  if (!whole) return taken > 0;
  rq.awaiting_body = false;
  rq.req_body_done = true;
  rq.req_framing = http::BodyFraming::None;
  std::string error;
  if (!rq.grpc_call->finishRequest(rq.replay_body, error)) {
    replyError(http::ErrorCode::BadRequest, error, false);
    return true;
  }
  rq.upstream_head.append("Content-Length: ");
  rq.upstream_head.appendDecimal(rq.replay_body.size());
  rq.upstream_head.append("\r\n\r\n");
  connectUpstream();
  return true;
}

ssize_t Session::readGrpcCall(upstream::Connection& up, char* to, size_t want) {
  transcode::GrpcCall& call = *rq_->grpc_call;
  // Read until the client's answer has `want` bytes, the upstream has nothing more now, or the
  // answer is made: a short return then means there is no more to read yet.
  while (call.pending() < want && !call.ended()) {
    char raw[16 * 1024];
    const ssize_t n = up.h2->read(up, raw, sizeof raw);
    if (n > 0) {
      call.feed(std::string_view(raw, static_cast<size_t>(n)));
    } else if (n == 0) {
      call.feedEnd();
    } else if (call.pending() == 0) {
      return -1;  // errno is read()'s
    } else {
      break;
    }
  }
  const size_t n = call.drain(to, want);
  if (n == 0) {
    if (call.ended()) return 0;
    errno = EAGAIN;
    return -1;
  }
  return static_cast<ssize_t>(n);
}

}  // namespace portico::proxy
