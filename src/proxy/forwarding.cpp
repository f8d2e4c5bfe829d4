// What the upstream receives and what the client receives: header forwarding rules of SPEC §4.
#include <algorithm>

#include "auth/authenticator.hpp"
#include "http/nghttp2_glue.hpp"
#include "observability/trace_context.hpp"
#include "proxy/http2_connection.hpp"
#include "proxy/session.hpp"
#include "proxy/worker.hpp"
#include "transcode/grpc_call.hpp"

namespace portico::proxy {
namespace {

enum class RequestField : uint8_t {
  Forward, Drop, ContentLength, XForwardedFor, XForwardedProto, XForwardedHost, TraceParent,
  TraceState
};

// Fields the gateway sets itself or that belong to the client connection.
RequestField classifyRequestField(std::string_view name) {
  using http::equalsIgnoreCase;
  switch (name.size()) {
    case 4:
      if (equalsIgnoreCase(name, "host")) return RequestField::Drop;
      break;
    case 6:
      if (equalsIgnoreCase(name, "expect")) return RequestField::Drop;
      break;
    case 10:
      if (equalsIgnoreCase(name, "tracestate")) return RequestField::TraceState;
      break;
    case 11:
      if (equalsIgnoreCase(name, "traceparent")) return RequestField::TraceParent;
      break;
    case 12:
      if (equalsIgnoreCase(name, "x-request-id")) return RequestField::Drop;
      break;
    case 14:
      if (equalsIgnoreCase(name, "content-length")) return RequestField::ContentLength;
      break;
    case 15:
      if (equalsIgnoreCase(name, "x-forwarded-for")) return RequestField::XForwardedFor;
      break;
    case 16:
      if (equalsIgnoreCase(name, "x-forwarded-host")) return RequestField::XForwardedHost;
      break;
    case 17:
      if (equalsIgnoreCase(name, "x-forwarded-proto")) return RequestField::XForwardedProto;
      break;
    default:
      break;
  }
  return http::isHopByHop(name) ? RequestField::Drop : RequestField::Forward;
}

// Fields about an HTTP body that a gRPC call's body replaces.
bool describesHttpBody(std::string_view name) {
  return http::equalsIgnoreCase(name, "content-type") || http::equalsIgnoreCase(name, "accept") ||
         http::equalsIgnoreCase(name, "accept-encoding");
}

bool isGrpcEncodingField(std::string_view name) {
  return http::equalsIgnoreCase(name, "grpc-encoding") ||
         http::equalsIgnoreCase(name, "grpc-accept-encoding");
}

bool inDropList(const std::vector<std::string>& drop, std::string_view name) {
  for (const auto& d : drop) {
    if (http::equalsIgnoreCase(d, name)) return true;
  }
  return false;
}

// Whether the client's TE lists "trailers" (RFC 9110 §10.1.4).
bool acceptsTrailers(http::HeaderList headers) {
  for (const auto& h : headers) {
    if (h.name.size() != 2 || !http::equalsIgnoreCase(h.name, "te")) continue;
    std::string_view rest = h.value;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      item = item.substr(0, item.find(';'));
      item = http::trimOws(item);
      if (http::equalsIgnoreCase(item, "trailers")) return true;
    }
  }
  return false;
}

// Whether an upstream response field goes on to the client: not the connection's own fields,
// not its X-Request-Id (ours replaces it), not what the route's filters leave out.
bool forwardsResponseField(const http::ResponseHead& head, const http::HeaderField& field,
                           bool dechunked, const std::vector<std::string>* dropped) {
  if (http::isHopByHop(field.name)) return false;
  if (field.name.size() == 12 && http::equalsIgnoreCase(field.name, "x-request-id")) return false;
  if (dechunked && field.name.size() == 14 &&
      http::equalsIgnoreCase(field.name, "content-length")) {
    return false;
  }
  if (head.connection_lists_headers && http::connectionListsField(head.headers, field.name)) {
    return false;
  }
  return dropped == nullptr || !inDropList(*dropped, field.name);
}

}  // namespace

bool inCidrs(const std::vector<config::Cidr>& cidrs, const net::SocketAddress& peer) {
  if (cidrs.empty()) return false;
  const auto bytes = peer.asV6Bytes();
  return std::any_of(cidrs.begin(), cidrs.end(),
                     [&](const config::Cidr& cidr) { return cidr.contains(bytes); });
}

void Session::buildUpstreamHead() {
  RequestState& rq = *rq_;
  Buffer& out = rq.upstream_head;
  out.clear();
  if (out.capacity() == 0) out.reserve(2048);
  // A transcoded or gRPC-Web request goes as a gRPC call.
  const bool grpc_call = rq.grpc_call != nullptr;
  out.append(grpc_call ? std::string_view("POST") : rq.head.method);
  out.append(' ');
  out.append(rq.forward_target);
  out.append(" HTTP/1.1\r\n");

  const http::FieldEdits* edits = rq.upstream_edits;
  if (edits == nullptr || !edits->sets_host) {
    std::string_view host = rq.head.host;
    if (host.empty()) host = rq.snap->shared->upstreams[rq.upstream_index].config->name;
    http::appendFieldLine(out, "Host", host);
  }

  const config::Listener& listen = listener();
  const bool trusted = !listen.trusted_proxies.empty() && inCidrs(listen.trusted_proxies, peer_);
  const bool drop_underscores =
      listen.headers_with_underscores != config::Listener::Underscores::Allow;
  const auto& identity_headers = rq.snap->shared->auth->identityHeaders();
  std::string_view xfproto, xfhost;
  bool client_sent_xff = false;
  bool client_sent_length = false;
  for (const auto& h : rq.head.headers) {
    switch (classifyRequestField(h.name)) {
      case RequestField::Drop: continue;
      case RequestField::ContentLength: client_sent_length = true; continue;
      case RequestField::XForwardedFor: client_sent_xff = true; continue;
      case RequestField::XForwardedProto: if (xfproto.empty()) xfproto = h.value; continue;
      case RequestField::XForwardedHost: if (xfhost.empty()) xfhost = h.value; continue;
      // Traced: the gateway's traceparent replaces the client's, and a tracestate goes on only
      // with the trace it belongs to.
      case RequestField::TraceParent: if (rq.traced) continue; break;
      case RequestField::TraceState: if (rq.traced && !rq.trace_has_parent) continue; break;
      case RequestField::Forward: break;
    }
    if (rq.head.connection_lists_headers && http::connectionListsField(rq.head.headers, h.name)) {
      continue;
    }
    if (edits != nullptr && inDropList(edits->drop, h.name)) continue;
    if (grpc_call && describesHttpBody(h.name)) continue;
    if (grpc_call && !rq.grpc_call->keepsCompressed() && isGrpcEncodingField(h.name)) continue;
    // CGI-style servers read X_Consumer_Name as X-Consumer-Name (review H4).
    if (drop_underscores && http::hasUnderscore(h.name)) continue;
    // Identity headers are the gateway's to set: a client's are dropped on every route.
    if (inDropList(identity_headers, h.name)) continue;
    http::appendFieldLine(out, h.name, h.value);
  }
  if (rq.upgrade) {
    out.append("Connection: Upgrade\r\nUpgrade: websocket\r\n");
  }
  // TE is hop-by-hop, but "trailers" says what the end client can take: an HTTP/2 upstream
  // gets it (the HTTP/2 client below passes this one TE on), and gRPC always does.
  const config::Upstream& upstream = *rq.snap->shared->upstreams[rq.upstream_index].config;
  if (upstream.speaksHttp2() &&
      (upstream.protocol == config::Upstream::Protocol::Grpc || acceptsTrailers(rq.head.headers))) {
    out.append("TE: trailers\r\n");
  }
  out.append(rq.upstream_fields);  // the consumer's identity, from auth
  http::appendFieldLine(out, "X-Request-Id", std::string_view(rq.request_id, rq.request_id_len));
  if (rq.traced) {
    char traceparent[observability::kTraceParentSize];
    observability::formatTraceParent(rq.trace_id, rq.span_id, rq.trace_flags, traceparent);
    http::appendFieldLine(out, "traceparent", {traceparent, sizeof traceparent});
  }
  // X-Forwarded-*: what a client says is believed only from a trusted proxy.
  out.append("X-Forwarded-For: ");
  if (trusted && client_sent_xff) {
    // Several X-Forwarded-For lines are one list (RFC 9110 §5.3), in order.
    for (const auto& h : rq.head.headers) {
      if (h.name.size() == 15 && http::equalsIgnoreCase(h.name, "x-forwarded-for") &&
          !h.value.empty()) {
        out.append(h.value);
        out.append(", ");
      }
    }
  }
  out.append(std::string_view(peer_text_, peer_len_));
  out.append("\r\n");
  http::appendFieldLine(out, "X-Forwarded-Proto",
                        trusted && !xfproto.empty() ? xfproto
                        : secure_                   ? "https"
                                                    : "http");
  std::string_view forwarded_host = trusted && !xfhost.empty() ? xfhost : rq.head.host;
  if (!forwarded_host.empty()) http::appendFieldLine(out, "X-Forwarded-Host", forwarded_host);
  if (grpc_call) {
    // Its length is known once the body is read and made into the call's (session_grpc.cpp).
    out.append("Content-Type: application/grpc\r\n");
    // A JSON client's answer is printed here: plain messages are cheapest to read.
    if (!rq.grpc_call->keepsCompressed()) out.append("grpc-accept-encoding: identity\r\n");
    if (edits != nullptr) out.append(edits->add);
    return;
  }
  if (rq.head.framing == http::BodyFraming::Length) {
    out.append("Content-Length: ");
    out.appendDecimal(rq.head.content_length);
    out.append("\r\n");
  } else if (rq.head.framing == http::BodyFraming::Chunked) {
    out.append("Transfer-Encoding: chunked\r\n");
  } else if (client_sent_length) {
    out.append("Content-Length: 0\r\n");
  }
  if (edits != nullptr) out.append(edits->add);
  out.append("\r\n");
}

void Session::buildClientResponseHead(const http::ResponseHead& head) {
  // The filters first: they say which of the upstream's fields stay out.
  const std::vector<std::string>* dropped = runResponseFilters(head.status, true);
  const std::string_view request_id(rq_->request_id, rq_->request_id_len);
  if (parent_ != nullptr) {
    // An HTTP/2 stream's head goes to the stream as fields; framing is the stream's business.
    http::FieldList& fields = Http2Connection::headFields();
    fields.startResponse(head.status);
    for (const auto& h : head.headers) {
      if (forwardsResponseField(head, h, rq_->resp_dechunk, dropped)) fields.add(h.name, h.value);
    }
    fields.add("x-request-id", request_id, true);
    http::forEachFieldLine(rq_->filter_headers, [&](std::string_view name, std::string_view value) {
      fields.add(name, value);
    });
    if (stream_ == nullptr ||
        !parent_->h2_->respond(*stream_, fields, head.framing, head.content_length)) {
      close();
    }
    return;
  }
  out_.append("HTTP/1.1 ");
  out_.appendDecimal(static_cast<uint64_t>(head.status));
  out_.append(' ');
  out_.append(head.reason.empty() ? http::reasonPhrase(head.status) : head.reason);
  out_.append("\r\n");
  for (const auto& h : head.headers) {
    if (forwardsResponseField(head, h, rq_->resp_dechunk, dropped))
      http::appendFieldLine(out_, h.name, h.value);
  }
  http::appendFieldLine(out_, "X-Request-Id", request_id);
  if (head.framing == http::BodyFraming::Chunked && !rq_->resp_dechunk) {
    out_.append("Transfer-Encoding: chunked\r\n");
  }
  out_.append(rq_->filter_headers);
  if (head.status == 101) {
    out_.append("Connection: Upgrade\r\nUpgrade: websocket\r\n");
  } else if (close_after_response_) {
    out_.append("Connection: close\r\n");
  } else if (rq_->keep_alive_1_0) {
    out_.append("Connection: keep-alive\r\n");
  }
  out_.append("\r\n");
}

}  // namespace portico::proxy
