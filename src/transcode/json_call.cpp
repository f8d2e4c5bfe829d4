// A REST/JSON request transcoded to its gRPC method, and the answer back to JSON
// (docs/transcoding.md).
#include <nlohmann/json.hpp>

#include "http/header.hpp"
#include "http/local_reply.hpp"
#include "transcode/grpc_call.hpp"
#include "transcode/grpc_status.hpp"

namespace portico::transcode {
namespace {

// JSON answers are made here from one message at most 4 MiB (gRPC's own default limit), which
// may print five times larger.
constexpr size_t kMaxJsonMessage = 4 << 20;

// The upstream's initial metadata that a REST client gets as response headers: not gRPC's own
// fields, nor those that describe the gRPC body.
bool forwardsMetadata(std::string_view name) {
  if (name.size() >= 5 && http::equalsIgnoreCase(name.substr(0, 5), "grpc-")) return false;
  return !http::equalsIgnoreCase(name, "content-type") &&
         !http::equalsIgnoreCase(name, "content-length") &&
         !http::equalsIgnoreCase(name, "content-encoding") &&
         !http::equalsIgnoreCase(name, "transfer-encoding") &&
         !http::equalsIgnoreCase(name, "trailer") && !http::isHopByHop(name);
}

class JsonCall final : public GrpcCall {
 public:
  JsonCall(std::shared_ptr<const Catalog> catalog, const RuleMatch& match,
           const JsonOptions& options, StreamFormat format, std::string_view request_id)
      : GrpcCall(kMaxJsonMessage),
        catalog_(std::move(catalog)),
        rule_(*match.rule),
        streaming_(match.method->server_streaming),
        options_(options),
        format_(format),
        request_id_(request_id) {}

  bool bind(const RuleMatch& match, std::string_view query, std::string& error) {
    return catalog_->bindFields(match, query, options_, bound_, error);
  }

  bool finishRequest(std::string& framed, std::string& error) override {
    std::string message;
    if (!catalog_->bodyToMessage(rule_, request_body_, bound_, message, error)) return false;
    framed.clear();
    appendFrame(framed, 0, message);
    return true;
  }

 private:
  void restart() override {
    metadata_.clear();
    json_.clear();
    messages_ = 0;
    head_sent_ = false;
  }

  void onHead(const http::ResponseHead& head) override {
    for (const auto& h : head.headers) {
      if (forwardsMetadata(h.name))
        metadata_.append(h.name).append(": ").append(h.value).append("\r\n");
    }
  }

  void onMessage(std::string_view message, uint8_t) override {
    if (!streaming_ && messages_ == 1) {
      fail("the upstream answered a unary call with several messages");
      return;
    }
    std::string error;
    std::string json;
    if (!catalog_->messageToJson(rule_, message, options_, json, error)) {
      fail(error);
      return;
    }
    ++messages_;
    if (!streaming_) {
      json_ = std::move(json);  // sent with the status, which decides what the client gets
      return;
    }
    if (!head_sent_) sendStreamHead();
    if (format_ == StreamFormat::JsonArray)
      json.insert(0, messages_ == 1 ? "[" : ",");
    else
      json.push_back('\n');
    appendChunk(json);
  }

  void onStatus(int grpc_status, std::string_view grpc_message, std::string_view fields,
                bool in_head) override {
    // A whole answer (unary, or an error before a stream's first message) carries the
    // trailing metadata as headers too, as Envoy's transcoder does.
    if (!in_head && !head_sent_) {
      http::forEachFieldLine(fields, [&](std::string_view name, std::string_view value) {
        if (forwardsMetadata(name)) metadata_.append(name).append(": ").append(value).append("\r\n");
      });
    }
    if (grpc_status != kGrpcOk) {
      sendError(grpc_status, decodeGrpcMessage(grpc_message));
      return;
    }
    if (streaming_) {
      if (!head_sent_) sendStreamHead();
      if (format_ == StreamFormat::JsonArray) appendChunk(messages_ == 0 ? "[]" : "]");
      appendLastChunk();
      end();
      return;
    }
    if (messages_ != 1) {
      sendError(-1, messages_ == 0 ? "the upstream answered OK without a message"
                                   : "the upstream answered a unary call with several messages");
      return;
    }
    sendWhole(200, json_);
  }

  void onBroken(std::string_view why) override { sendError(-1, std::string(why)); }

  // An error: the whole answer when nothing was sent yet, else the stream's last element.
  // grpc_status -1: the upstream's answer is not valid gRPC (502).
  void sendError(int grpc_status, const std::string& message) {
    const int http_status = grpc_status < 0 ? 502 : httpStatusOfGrpc(grpc_status);
    nlohmann::ordered_json error = {
        {"status", http_status},
        {"code", grpc_status < 0 ? "bad_upstream" : grpcStatusName(grpc_status)},
        {"message", message},
        {"request_id", request_id_}};
    if (grpc_status >= 0) error["grpc_status"] = grpc_status;
    std::string body = nlohmann::ordered_json{{"error", std::move(error)}}.dump(
        -1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    if (!head_sent_) {
      if (grpc_status < 0) metadata_.clear();  // an answer that is not gRPC has none
      sendWhole(http_status, body);
      return;
    }
    if (format_ == StreamFormat::JsonArray) body.insert(0, messages_ == 0 ? "[" : ",");
    if (format_ == StreamFormat::JsonArray)
      body.push_back(']');
    else
      body.push_back('\n');
    appendChunk(body);
    if (grpc_status >= 0) appendLastChunk();  // a broken stream is cut: the client must see it
    end();
  }

  void sendWhole(int http_status, std::string_view body) {
    appendHead(http_status, "application/json");
    out_.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n\r\n");
    out_.append(body);
    head_sent_ = true;
    end();
  }

  void sendStreamHead() {
    appendHead(200,
               format_ == StreamFormat::JsonArray ? "application/json" : "application/x-ndjson");
    out_.append("Transfer-Encoding: chunked\r\n\r\n");
    head_sent_ = true;
  }

  void appendHead(int http_status, std::string_view content_type) {
    out_.append("HTTP/1.1 ").append(std::to_string(http_status)).append(" ");
    out_.append(http::reasonPhrase(http_status)).append("\r\n");
    out_.append("Content-Type: ").append(content_type).append("\r\n");
    out_.append(metadata_);
  }

  std::shared_ptr<const Catalog> catalog_;  // keeps rule_ alive across a reload
  const HttpRule& rule_;
  bool streaming_;
  JsonOptions options_;
  StreamFormat format_;
  std::string request_id_;
  BoundFields bound_;  // the path's and query's fields
  std::string metadata_;
  std::string json_;
  size_t messages_ = 0;
  bool head_sent_ = false;
};

}  // namespace

std::unique_ptr<GrpcCall> makeJsonCall(std::shared_ptr<const Catalog> catalog,
                                       const RuleMatch& match, std::string_view query,
                                       const JsonOptions& options, StreamFormat stream_format,
                                       std::string_view request_id, std::string& error) {
  auto call =
      std::make_unique<JsonCall>(std::move(catalog), match, options, stream_format, request_id);
  if (!call->bind(match, query, error)) return nullptr;
  return call;
}

}  // namespace portico::transcode
