#include "transcode/grpc_call.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include "transcode/test_protos.hpp"

namespace portico::transcode {
namespace {

std::string chunk(std::string_view data) {
  char size[16];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return size + std::string(data) + "\r\n";
}

std::string frame(std::string_view message) {
  std::string out;
  appendFrame(out, 0, message);
  return out;
}

const std::string kHead =
    "HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\nx-meta: m\r\n"
    "Transfer-Encoding: chunked\r\n\r\n";

std::string drainAll(GrpcCall& call) {
  std::string out(call.pending(), '\0');
  out.resize(call.drain(out.data(), out.size()));
  return out;
}

class JsonCallTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string error;
    catalog_ = Catalog::load(testing::compileLibrary(), {}, error);
    ASSERT_NE(catalog_, nullptr) << error;
  }
  static void TearDownTestSuite() { catalog_.reset(); }

  std::unique_ptr<GrpcCall> call(std::string_view verb, std::string_view path,
                                 StreamFormat format = StreamFormat::Ndjson) {
    auto match = catalog_->match(verb, path);
    EXPECT_TRUE(match);
    std::string error;
    auto made = makeJsonCall(catalog_, *match, "", {}, format, "rid", error);
    EXPECT_NE(made, nullptr) << error;
    made->startResponse();
    return made;
  }

  static std::shared_ptr<const Catalog> catalog_;
};

std::shared_ptr<const Catalog> JsonCallTest::catalog_;

// Book{id: "b1", pages: 5}
const std::string kBook = std::string(
    "\x0a\x02"
    "b1"
    "\x18\x05",
    6);

TEST_F(JsonCallTest, UnaryAnswerWaitsForTheStatusThenIsWholeJson) {
  auto c = call("GET", "/v1/libraries/a/books/b");
  std::string framed, error;
  ASSERT_TRUE(c->finishRequest(framed, error)) << error;
  EXPECT_EQ(framed.substr(0, 5),
            std::string("\0\0\0\0\x15", 5));  // title set from the path: 2 + 19 bytes
  const std::string answer =
      kHead + chunk(frame(kBook)) + "0\r\ngrpc-status: 0\r\nx-trail: t\r\n\r\n";
  c->feed(answer.substr(0, answer.size() - 10));
  EXPECT_EQ(c->pending(), 0u);  // the status decides the answer: nothing before it
  c->feed(answer.substr(answer.size() - 10));
  EXPECT_TRUE(c->ended());
  EXPECT_EQ(drainAll(*c),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-meta: m\r\nx-trail: t\r\n"
            "Content-Length: 23\r\n\r\n{\"id\":\"b1\",\"pages\":\"5\"}");
}

TEST_F(JsonCallTest, ErrorStatusBecomesTheMappedHttpStatusWithJsonError) {
  auto c = call("GET", "/v1/libraries/a/books/b");
  c->feed(
      "HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ngrpc-status: 5\r\n"
      "grpc-message: no%20such%20book\r\nContent-Length: 0\r\n\r\n");
  EXPECT_TRUE(c->ended());
  const std::string out = drainAll(*c);
  EXPECT_TRUE(out.starts_with("HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"))
      << out;
  EXPECT_TRUE(out.ends_with(
      R"({"error":{"status":404,"code":"not_found","message":"no such book","request_id":"rid","grpc_status":5}})"))
      << out;
}

TEST_F(JsonCallTest, StreamSendsEachMessageAsItComesAndEndsWithAnErrorLine) {
  auto c = call("GET", "/v1/list");
  c->feed(kHead);
  EXPECT_EQ(c->pending(), 0u);
  c->feed(chunk(frame(kBook)));
  EXPECT_EQ(drainAll(*c),
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nx-meta: m\r\n"
            "Transfer-Encoding: chunked\r\n\r\n" +
                chunk("{\"id\":\"b1\",\"pages\":\"5\"}\n"));
  c->feed(chunk(frame(kBook)) + "0\r\ngrpc-status: 14\r\ngrpc-message: gone\r\n\r\n");
  const std::string rest = drainAll(*c);
  EXPECT_EQ(
      rest,
      chunk("{\"id\":\"b1\",\"pages\":\"5\"}\n") +
          chunk(
              R"({"error":{"status":503,"code":"unavailable","message":"gone","request_id":"rid","grpc_status":14}})"
              "\n") +
          "0\r\n\r\n");
  EXPECT_TRUE(c->ended());
}

TEST_F(JsonCallTest, JsonArrayStreamAndACutStream) {
  auto c = call("GET", "/v1/list", StreamFormat::JsonArray);
  c->feed(kHead + chunk(frame(kBook)) + chunk(frame(kBook)) + "0\r\ngrpc-status: 0\r\n\r\n");
  const std::string out = drainAll(*c);
  EXPECT_TRUE(out.ends_with(chunk("[{\"id\":\"b1\",\"pages\":\"5\"}") +
                            chunk(",{\"id\":\"b1\",\"pages\":\"5\"}") + chunk("]") + "0\r\n\r\n"))
      << out;
  // The upstream's stream ends without a status after a message: the answer is left unfinished
  // (no last chunk), so the client's connection is cut rather than the stream passing as whole.
  auto cut = call("GET", "/v1/list");
  cut->feed(kHead + chunk(frame(kBook)) + chunk(frame(kBook).substr(0, 3)));
  cut->feedEnd();
  EXPECT_TRUE(cut->ended());
  EXPECT_FALSE(drainAll(*cut).ends_with("0\r\n\r\n"));
  // Nothing at all: no answer is made up (the session treats it as an upstream that did not
  // answer).
  auto silent = call("GET", "/v1/list");
  silent->feedEnd();
  EXPECT_TRUE(silent->ended());
  EXPECT_EQ(silent->pending(), 0u);
}

std::string gzip(std::string_view data) {
  z_stream stream{};
  deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
               Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&stream, data.size()) + 32, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

TEST_F(JsonCallTest, ACompressedAnswerIsInflatedAndABombIsRefused) {
  auto c = call("GET", "/v1/libraries/a/books/b");
  std::string compressed;
  appendFrame(compressed, kCompressedFlag, gzip(kBook));
  c->feed("HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ngrpc-encoding: gzip\r\n"
          "content-encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" +
          chunk(compressed) + "0\r\ngrpc-status: 0\r\n\r\n");
  // (content-encoding describes the upstream's body, not the JSON: it does not go on.)
  EXPECT_EQ(drainAll(*c),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            "Content-Length: 23\r\n\r\n{\"id\":\"b1\",\"pages\":\"5\"}");
  auto bomb = call("GET", "/v1/libraries/a/books/b");
  std::string big;
  appendFrame(big, kCompressedFlag, gzip(std::string(8 << 20, '\0')));
  bomb->feed("HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ngrpc-encoding: gzip\r\n"
             "Transfer-Encoding: chunked\r\n\r\n" + chunk(big));
  EXPECT_TRUE(bomb->ended());
  EXPECT_NE(drainAll(*bomb).find("does not inflate within the size limit"), std::string::npos);
}

TEST_F(JsonCallTest, ARetryStartsTheAnswerAfreshAndAUnaryCallTakesOneMessage) {
  auto c = call("GET", "/v1/libraries/a/books/b");
  c->feed("HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\nx-meta: first\r\n"
          "grpc-status: 14\r\nContent-Length: 0\r\n\r\n");
  EXPECT_TRUE(drainAll(*c).starts_with("HTTP/1.1 503 "));
  c->startResponse();  // the retry's answer: not gRPC at all
  c->feed("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  const std::string second = drainAll(*c);
  EXPECT_TRUE(second.starts_with("HTTP/1.1 502 Bad Gateway\r\n")) << second;
  EXPECT_EQ(second.find("x-meta"), std::string::npos) << second;
  EXPECT_NE(second.find("the upstream answered HTTP 404, not gRPC"), std::string::npos);

  auto twice = call("GET", "/v1/libraries/a/books/b");
  twice->feed(kHead + chunk(frame(kBook)) + chunk(frame(kBook)));
  EXPECT_TRUE(twice->ended());
  EXPECT_NE(drainAll(*twice).find("several messages"), std::string::npos);
}

TEST(WebCall, AFrameWithUndefinedFlagsEndsTheCall) {
  // A 0x80 frame from the upstream relayed as it came would pass for the trailers, with more
  // frames after it (found by the grpc_response fuzz target).
  auto c = makeWebCall("application/grpc-web");
  c->startResponse();
  std::string frames;
  appendFrame(frames, 0, "a");
  appendFrame(frames, kTrailerFlag, "grpc-status: 0\r\n");
  c->feed(kHead + chunk(frames) + "0\r\ngrpc-status: 0\r\n\r\n");
  const std::string out = drainAll(*c);
  EXPECT_NE(out.find("grpc-status: 14\r\ngrpc-message: the upstream sent a message frame with "
                     "undefined flags"),
            std::string::npos)
      << out;
}

TEST(WebCall, CompressedFramesGoOnAsTheyCame) {
  auto c = makeWebCall("application/grpc-web");
  c->startResponse();
  std::string compressed;
  appendFrame(compressed, kCompressedFlag, "zz");
  c->feed("HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ngrpc-encoding: gzip\r\n"
          "Transfer-Encoding: chunked\r\n\r\n" + chunk(compressed) +
          "0\r\ngrpc-status: 0\r\n\r\n");
  const std::string out = drainAll(*c);
  EXPECT_NE(out.find("grpc-encoding: gzip\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find(chunk(compressed)), std::string::npos) << out;
}

TEST(WebCall, RelaysFramesAndSendsTrailersAsTheLastFrameInTextMode) {
  auto c = makeWebCall("application/grpc-web-text");
  c->requestBody() = "AAAAAAJoaQ==";
  std::string framed, error;
  ASSERT_TRUE(c->finishRequest(framed, error));
  EXPECT_EQ(framed, frame("hi"));
  c->startResponse();
  c->feed(kHead + chunk(frame("yo")) + "0\r\ngrpc-status: 0\r\nX-Trailer: t\r\n\r\n");
  EXPECT_TRUE(c->ended());
  std::string trailer;
  appendFrame(trailer, kTrailerFlag, "grpc-status: 0\r\nx-trailer: t\r\n");
  std::string expected_body;
  appendBase64(frame("yo"), expected_body);
  std::string encoded_trailer;
  appendBase64(trailer, encoded_trailer);
  EXPECT_EQ(drainAll(*c),
            "HTTP/1.1 200 OK\r\nContent-Type: application/grpc-web-text\r\n"
            "x-meta: m\r\nTransfer-Encoding: chunked\r\n\r\n" +
                chunk(expected_body) + chunk(encoded_trailer) + "0\r\n\r\n");

  auto bad = makeWebCall("application/grpc-web-text");
  bad->requestBody() = "AAA*";
  EXPECT_FALSE(bad->finishRequest(framed, error));
  EXPECT_EQ(error, "the grpc-web-text body is not valid base64");
}

TEST(WebCall, AnUpstreamThatIsNotGrpcEndsWithAnUnavailableTrailer) {
  auto c = makeWebCall("application/grpc-web+proto");
  c->startResponse();
  c->feed("HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc");
  EXPECT_TRUE(c->ended());
  const std::string out = drainAll(*c);
  EXPECT_NE(out.find("grpc-status: 14\r\ngrpc-message: the upstream answered HTTP 404, not gRPC"),
            std::string::npos)
      << out;
  EXPECT_TRUE(isGrpcWebContentType("application/grpc-web-text+proto"));
  EXPECT_FALSE(isGrpcWebContentType("application/grpc"));
  EXPECT_FALSE(isGrpcWebContentType("application/grpc-webx"));
}

}  // namespace
}  // namespace portico::transcode
