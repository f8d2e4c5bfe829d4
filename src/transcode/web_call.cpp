// gRPC-Web (grpc/doc/PROTOCOL-WEB.md): a browser's call, relayed as a gRPC call; the answer's
// trailers travel as the body's last frame.
#include "http/header.hpp"
#include "http/local_reply.hpp"
#include "transcode/grpc_call.hpp"
#include "transcode/grpc_status.hpp"

namespace portico::transcode {
namespace {

constexpr std::string_view kWeb = "application/grpc-web";
constexpr std::string_view kWebText = "application/grpc-web-text";

bool startsWithIgnoreCase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() &&
         http::equalsIgnoreCase(text.substr(0, prefix.size()), prefix);
}

// A gRPC-Web call relays messages as they come: only a message's own size is held.
constexpr size_t kMaxWebMessage = 16 << 20;

// Fields of the upstream's head that are not metadata for the browser.
bool isTransportField(std::string_view name) {
  return http::equalsIgnoreCase(name, "content-type") ||
         http::equalsIgnoreCase(name, "content-length") ||
         http::equalsIgnoreCase(name, "content-encoding") ||
         http::equalsIgnoreCase(name, "transfer-encoding") ||
         http::equalsIgnoreCase(name, "trailer") || http::isHopByHop(name);
}

class WebCall final : public GrpcCall {
 public:
  explicit WebCall(std::string_view content_type)
      : GrpcCall(kMaxWebMessage),
        content_type_(content_type),
        text_(startsWithIgnoreCase(content_type, kWebText)) {}

  bool finishRequest(std::string& framed, std::string& error) override {
    framed.clear();
    if (!text_) {
      framed.swap(request_body_);
      return true;
    }
    Base64StreamDecoder decoder;
    if (!decoder.feed(request_body_, framed) || !decoder.complete()) {
      error = "the grpc-web-text body is not valid base64";
      return false;
    }
    return true;
  }

  bool keepsCompressed() const override { return true; }

 private:
  void restart() override { head_sent_ = false; }

  void onHead(const http::ResponseHead& head) override {
    head_sent_ = true;
    out_.append("HTTP/1.1 200 OK\r\nContent-Type: ").append(content_type_).append("\r\n");
    // A trailers-only answer's status is in its head: the browser finds it there too.
    for (const auto& h : head.headers) {
      if (!isTransportField(h.name))
        out_.append(h.name).append(": ").append(h.value).append("\r\n");
    }
    out_.append("Transfer-Encoding: chunked\r\n\r\n");
  }

  void onMessage(std::string_view message, uint8_t flags) override {
    frame_.clear();
    appendFrame(frame_, flags, message);
    sendPiece(frame_);
  }

  void onStatus(int, std::string_view, std::string_view fields, bool) override {
    std::string lines;
    // Trailer names go lower-case (PROTOCOL-WEB.md); a trailers-only head's transport fields
    // are not trailers.
    http::forEachFieldLine(fields, [&](std::string_view name, std::string_view value) {
      if (isTransportField(name)) return;
      for (char c : name) lines.push_back(http::asciiLower(c));
      lines.append(": ").append(value).append("\r\n");
    });
    sendTrailers(lines);
  }

  void onBroken(std::string_view why) override {
    if (!head_sent_) {
      head_sent_ = true;
      out_.append("HTTP/1.1 200 OK\r\nContent-Type: ").append(content_type_).append("\r\n");
      out_.append("Transfer-Encoding: chunked\r\n\r\n");
    }
    Buffer message;
    http::appendGrpcMessage(why, message);
    std::string lines = "grpc-status: " + std::to_string(kGrpcUnavailable) + "\r\ngrpc-message: ";
    lines.append(message.view()).append("\r\n");
    sendTrailers(lines);
  }

  void sendTrailers(std::string_view lines) {
    frame_.clear();
    appendFrame(frame_, kTrailerFlag, lines);
    sendPiece(frame_);
    appendLastChunk();
    end();
  }

  // Each piece is base64 on its own in text mode (padded), so it goes out at once.
  void sendPiece(std::string_view bytes) {
    if (!text_) {
      appendChunk(bytes);
      return;
    }
    encoded_.clear();
    appendBase64(bytes, encoded_);
    appendChunk(encoded_);
  }

  std::string content_type_;
  bool text_;
  bool head_sent_ = false;
  std::string frame_;
  std::string encoded_;
};

}  // namespace

bool isGrpcWebContentType(std::string_view content_type) {
  if (!startsWithIgnoreCase(content_type, kWeb)) return false;
  if (content_type.size() == kWeb.size()) return true;
  const char next = content_type[kWeb.size()];
  return next == '+' || next == ';' || next == '-';
}

bool isGrpcWebTextContentType(std::string_view content_type) {
  return startsWithIgnoreCase(content_type, kWebText);
}

std::unique_ptr<GrpcCall> makeWebCall(std::string_view content_type) {
  return std::make_unique<WebCall>(content_type);
}

}  // namespace portico::transcode
