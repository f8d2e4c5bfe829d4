#include "transcode/catalog.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "transcode/test_protos.hpp"

namespace portico::transcode {
namespace {

// Wire bytes made from JSON keep the JSON's field order, and a field set twice (by the body,
// then the path) is there twice until a parser merges it (the last wins): compared as parsed.
#define EXPECT_JSON(actual, expected)                                                       \
  EXPECT_EQ(nlohmann::json::parse(actual, nullptr, false), nlohmann::json::parse(expected)) \
      << (actual)

class CatalogTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = testing::compileLibrary();
    ASSERT_FALSE(path.empty()) << "protoc failed";
    std::string error;
    catalog_ = Catalog::load(path, {}, error);
    ASSERT_NE(catalog_, nullptr) << error;
  }
  static void TearDownTestSuite() { catalog_.reset(); }

  // The request message a REST request makes, printed as JSON (proto names) to compare.
  static std::string requestJson(std::string_view verb, std::string_view path,
                                 std::string_view query, std::string_view body,
                                 JsonOptions options = {}) {
    auto match = catalog_->match(verb, path);
    if (!match) return "no match";
    BoundFields bound;
    std::string message, error;
    if (!catalog_->bindFields(*match, query, options, bound, error)) return "bind: " + error;
    if (!catalog_->bodyToMessage(*match->rule, body, bound, message, error)) {
      return "body: " + error;
    }
    std::string json;
    if (!requestPrinter(*match, message, json, error)) return "print: " + error;
    return json;
  }

  // Prints request bytes by finding a rule whose response type is the request type (the test
  // proto's Book-in, Book-out methods) or by converting through nlohmann for the others.
  static bool requestPrinter(const RuleMatch& match, const std::string& message, std::string& json,
                             std::string& error);

  static std::shared_ptr<const Catalog> catalog_;
};

std::shared_ptr<const Catalog> CatalogTest::catalog_;

bool CatalogTest::requestPrinter(const RuleMatch& match, const std::string& message,
                                 std::string& json, std::string& error) {
  // Named returns Book and takes Book: its rule prints Book bytes. For the other request types,
  // the bytes are checked by the fields they must hold (see the tests).
  (void)match;
  const HttpRule* book_printer = nullptr;
  for (const auto& rule : catalog_->rules()) {
    if (catalog_->methods()[rule.method].full_name == "ex.v1.Library.Named") book_printer = &rule;
  }
  JsonOptions options;
  options.preserve_proto_field_names = true;
  return catalog_->messageToJson(*book_printer, message, options, json, error);
}

TEST_F(CatalogTest, ReadsMethodsAndRulesWithAdditionalBindingsAndCustomVerbs) {
  ASSERT_EQ(catalog_->methods().size(), 8u);
  EXPECT_EQ(catalog_->methods()[0].grpc_path, "/ex.v1.Library/GetBook");
  EXPECT_TRUE(catalog_->methods()[5].server_streaming);
  // GetBook has two rules; Plain has none.
  ASSERT_EQ(catalog_->rules().size(), 8u);
  auto m = catalog_->match("GET", "/v1/books/b1");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->method->full_name, "ex.v1.Library.GetBook");
  m = catalog_->match("REPORT", "/v1/books/b1:notes");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->method->full_name, "ex.v1.Library.Notes");
  EXPECT_FALSE(catalog_->match("POST", "/v1/books/b1"));
  EXPECT_FALSE(catalog_->match("GET", "/v2/books/b1"));
  m = catalog_->match("GET", "/v1/shelves/s1/books/b2");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->method->full_name, "ex.v1.Library.GetBook");
  m = catalog_->match("GET", "/v1/libraries/s1/books/b2");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->method->full_name, "ex.v1.Library.Named");
}

TEST_F(CatalogTest, PathAndQueryBindNestedRepeatedAndTypedFields) {
  // Book in, Book printed: Named's rule binds {title=shelves/*/books/*}.
  EXPECT_JSON(
      requestJson("GET", "/v1/libraries/s1/books/b%202",
                  "pages=12&tags=a&tags=b%20c&draft=true&kind=NOVEL&rating=5&published=2020-01-"
                  "02T03:04:05Z",
                  ""),
      R"({"title":"libraries/s1/books/b 2","pages":"12","kind":"NOVEL","published":"2020-01-02T03:04:05Z","tags":["a","b c"],"draft":true,"rating":5})");
  // JSON names are accepted for query parameters too; '+' is a space there.
  EXPECT_JSON(requestJson("GET", "/v1/libraries/s/books/x", "title=ignored&id=a+b", ""),
              R"({"id":"a b","title":"libraries/s/books/x"})");
}

// Scalars are encoded straight from their text: what protobuf reads back must be the value.
TEST_F(CatalogTest, EveryScalarTypeIsEncodedAsProtobufReadsIt) {
  auto m = catalog_->match("GET", "/v1/scalars");
  ASSERT_TRUE(m);
  BoundFields bound;
  std::string error, json;
  ASSERT_TRUE(catalog_->bindFields(
      *m,
      "i32=-5&u32=4294967295&s32=-2147483648&s64=-9223372036854775808&f32=7&f64="
      "18446744073709551615"
      "&sf32=-8&sf64=-9&fl=1.5&db=-0.25&u64=18446744073709551615&i64=-1&many=1&many=-2"
      "&page.token=t%C3%A9",
      {}, bound, error))
      << error;
  ASSERT_TRUE(catalog_->messageToJson(*m->rule, bound.message, {}, json, error)) << error;
  EXPECT_JSON(json, R"({"i32":-5,"u32":4294967295,"s32":-2147483648,"s64":"-9223372036854775808",
      "f32":7,"f64":"18446744073709551615","sf32":-8,"sf64":"-9","fl":1.5,"db":-0.25,
      "u64":"18446744073709551615","i64":"-1","many":[1,-2],"page":{"token":"t\u00e9"}})");
  for (const char* unfit : {"i32=2147483648", "u32=-1", "fl=1e39", "db=1e400", "i64=1.5",
                            "i32=", "u64=0x10", "fl=abc", "page.token=%FF", "page.token=%C0%80"}) {
    EXPECT_FALSE(catalog_->bindFields(*m, unfit, {}, bound, error)) << unfit;
  }
  EXPECT_TRUE(catalog_->bindFields(*m, "db=NaN&fl=-Infinity", {}, bound, error)) << error;
}

TEST_F(CatalogTest, RefusesQueryParametersThatNameNoValue) {
  EXPECT_EQ(requestJson("GET", "/v1/libraries/s/books/x", "nope=1", ""),
            "bind: unknown query parameter \"nope\"");
  EXPECT_EQ(requestJson("GET", "/v1/libraries/s/books/x", "pages=abc", "").substr(0, 45),
            "bind: a path or query value does not fit its ");
  JsonOptions ignore;
  ignore.ignore_unknown_query_parameters = true;
  EXPECT_JSON(requestJson("GET", "/v1/libraries/s/books/x", "nope=1&id=7", "", ignore),
              R"({"id":"7","title":"libraries/s/books/x"})");
  // GetBook: `page` is a message, `page.size` a value.
  auto m = catalog_->match("GET", "/v1/books/b1");
  BoundFields bound;
  std::string error;
  EXPECT_FALSE(catalog_->bindFields(*m, "page=1", {}, bound, error));
  EXPECT_EQ(error, "query parameter \"page\" names a message, not a value");
  EXPECT_TRUE(catalog_->bindFields(*m, "page.size=10&ids=1&ids=2", {}, bound, error)) << error;
  EXPECT_FALSE(catalog_->bindFields(*m, "book.id.x=1", {}, bound, error));
  // A message-typed value, then a field inside it: a conflict, not an exception (this once
  // threw out of nlohmann and ended the process).
  EXPECT_FALSE(catalog_->bindFields(*m, "book.cover=YQ==&book.cover.value=YQ==", {}, bound,
                                    error));
  EXPECT_EQ(error, "query parameters set \"book.cover.value\" and a field inside it");
  EXPECT_TRUE(catalog_->bindFields(*m, "book.cover.value=YQ==", {}, bound, error)) << error;
}

TEST_F(CatalogTest, BodyIsParsedAsTheMessageOrItsFieldAndThePathWins) {
  // ReplaceBook: body "*", path {id}.
  auto m = catalog_->match("PUT", "/v1/books/from-path");
  ASSERT_TRUE(m);
  BoundFields bound;
  std::string message, error;
  ASSERT_TRUE(catalog_->bindFields(*m, "", {}, bound, error)) << error;
  ASSERT_TRUE(catalog_->bodyToMessage(*m->rule, R"({"id":"from-body","title":"T","pages":"7"})", bound,
                                      message, error))
      << error;
  std::string json;
  ASSERT_TRUE(requestPrinter(*m, message, json, error)) << error;
  EXPECT_JSON(json, R"({"id":"from-path","title":"T","pages":"7"})");
  // With body "*", a query parameter has no field left to set.
  EXPECT_FALSE(catalog_->bindFields(*m, "title=x", {}, bound, error));
}

TEST_F(CatalogTest, BoundRepeatedAndMessageFieldsReplaceTheBodysRatherThanMerge) {
  // Named: Book in, path {title=...}; the query sets tags (repeated) and rating (a wrapper).
  auto m = catalog_->match("GET", "/v1/libraries/s/books/b");
  ASSERT_TRUE(m);
  HttpRule with_body = *m->rule;  // (GET rules take no body: this one does, for the test)
  with_body.body = HttpRule::Body::Whole;
  BoundFields bound;
  std::string message, error, json;
  ASSERT_TRUE(catalog_->bindFields(*m, "tags=q1&tags=q2&rating=3", {}, bound, error)) << error;
  EXPECT_TRUE(bound.replaces_whole_fields);
  ASSERT_TRUE(catalog_->bodyToMessage(
      with_body, R"({"tags":["b1"],"rating":9,"id":"from-body","title":"from-body"})", bound,
      message, error))
      << error;
  ASSERT_TRUE(catalog_->messageToJson(*m->rule, message, {}, json, error)) << error;
  EXPECT_EQ(json,
            R"({"id":"from-body","title":"libraries/s/books/b","tags":["q1","q2"],"rating":3})");
  // Scalars alone: the bytes are appended (the later value wins), nothing is parsed.
  ASSERT_TRUE(catalog_->bindFields(*m, "id=q", {}, bound, error)) << error;
  EXPECT_FALSE(bound.replaces_whole_fields);
}

TEST_F(CatalogTest, RefusesBadBodies) {
  auto create = catalog_->match("POST", "/v1/shelves/s/books");
  ASSERT_TRUE(create);
  BoundFields bound;
  std::string message, error;
  EXPECT_FALSE(catalog_->bodyToMessage(*create->rule, R"({"title":)", bound, message, error));
  EXPECT_EQ(error, "the request body is not valid JSON");
  EXPECT_FALSE(catalog_->bodyToMessage(*create->rule, R"({"pages":"many"})", bound, message, error));
  EXPECT_NE(error.find("does not fit ex.v1.CreateBookRequest"), std::string::npos) << error;
  EXPECT_FALSE(catalog_->bodyToMessage(*create->rule, R"({"unknown_field":1})", bound, message, error));
  // A body that only becomes JSON once spliced into {"book": ...} must not set other fields.
  EXPECT_FALSE(
      catalog_->bodyToMessage(*create->rule, R"({"title":"x"},"shelf":"evil")", bound, message, error));
  EXPECT_EQ(error, "the request body is not valid JSON");
  // No body rule: an empty body is fine, a body that says something is not.
  auto get = catalog_->match("GET", "/v1/books/b");
  EXPECT_TRUE(catalog_->bodyToMessage(*get->rule, " \r\n", bound, message, error));
  EXPECT_FALSE(catalog_->bodyToMessage(*get->rule, "{}", bound, message, error));
}

TEST_F(CatalogTest, ResponsesPrintInProto3JsonWithResponseBodyAndOptions) {
  // A Book as bytes, made through the JSON mapping itself.
  auto named = catalog_->match("GET", "/v1/libraries/s/books/b");
  std::string book, error;
  ASSERT_TRUE(catalog_->bodyToMessage(
      *catalog_->match("PUT", "/v1/books/x")->rule,
      R"({"id":"b1","pages":"9007199254740993","blob":"AAE=","kind":"NOVEL"})", {}, book, error))
      << error;
  std::string json;
  ASSERT_TRUE(catalog_->messageToJson(*named->rule, book, {}, json, error)) << error;
  EXPECT_JSON(json, R"({"id":"b1","pages":"9007199254740993","kind":"NOVEL","blob":"AAE="})");
  JsonOptions all;
  all.always_print_primitive_fields = true;
  all.preserve_proto_field_names = true;
  ASSERT_TRUE(catalog_->messageToJson(*named->rule, book, all, json, error));
  auto parsed = nlohmann::json::parse(json);
  EXPECT_EQ(parsed["draft"], false);
  EXPECT_EQ(parsed["title"], "");
  EXPECT_TRUE(parsed["tags"].is_array());
  // response_body "book" of a BookReply {book: {...}, notes: [...]}: the book alone.
  const std::string reply =
      "\x0a" + std::string(1, static_cast<char>(book.size())) + book + "\x12\x02n1" + "\x12\x02n2";
  ASSERT_TRUE(
      catalog_->messageToJson(*catalog_->match("PUT", "/v1/books/x")->rule, reply, {}, json, error))
      << error;
  EXPECT_JSON(json, R"({"id":"b1","pages":"9007199254740993","kind":"NOVEL","blob":"AAE="})");
  // response_body "notes", a repeated scalar.
  ASSERT_TRUE(catalog_->messageToJson(*catalog_->match("REPORT", "/v1/books/x:notes")->rule, reply,
                                      {}, json, error));
  EXPECT_EQ(json, R"(["n1","n2"])");
}

TEST_F(CatalogTest, AMalformedAnswerIsAnErrorNotAnEndlessPrint) {
  // Scalars.many (13) packed, announcing 34 bytes where 3 follow: protobuf's printer, fed the
  // wire as is, grew its output without end (found by the transcode_request fuzz target).
  auto m = catalog_->match("GET", "/v1/scalars");
  std::string json, error;
  EXPECT_FALSE(catalog_->messageToJson(*m->rule, "j\"ta1", {}, json, error));
  EXPECT_EQ(error, "the upstream's message does not parse as ex.v1.Scalars");
  // A field sent twice prints once, merged as protobuf merges it (the bytes are not canonical:
  // printed from the parsed message).
  const std::string twice = std::string("\x72\x02\x08\x03") + "\x72\x03\x12\x01t";
  ASSERT_TRUE(catalog_->messageToJson(*m->rule, twice, {}, json, error)) << error;
  EXPECT_EQ(json, R"({"page":{"size":3,"token":"t"}})");
}

TEST(CatalogLoad, RefusesWhatCannotServe) {
  std::string error;
  EXPECT_EQ(Catalog::load("/nonexistent/x.pb", {}, error), nullptr);
  EXPECT_NE(error.find("cannot read /nonexistent/x.pb"), std::string::npos) << error;
  const std::string good = testing::compileLibrary();
  ASSERT_FALSE(good.empty());
  EXPECT_EQ(Catalog::load(good, std::vector<std::string>{"ex.v1.Nope"}, error), nullptr);
  EXPECT_NE(error.find("no service \"ex.v1.Nope\""), std::string::npos) << error;
  EXPECT_NE(Catalog::load(good, std::vector<std::string>{"ex.v1.Library"}, error), nullptr);
  // Not a descriptor set: the proto source itself.
  EXPECT_EQ(Catalog::load(good.substr(0, good.size() - 2) + "proto", {}, error), nullptr);
  EXPECT_NE(error.find("is not a descriptor set"), std::string::npos) << error;

  auto broken = [&](const std::string& rule) {
    std::string proto = testing::kLibraryProto;
    const std::string plain = "rpc Plain(Book) returns (Book);";
    proto.replace(
        proto.find(plain), plain.size(),
        "rpc Plain(Book) returns (Book) { option (google.api.http) = { " + rule + " }; }");
    const std::string path = testing::compileLibrary(proto.c_str());
    EXPECT_FALSE(path.empty());
    EXPECT_EQ(Catalog::load(path, {}, error), nullptr) << rule;
    return error;
  };
  EXPECT_NE(broken(R"(get: "/v1/{nope}")").find("no field \"nope\" in ex.v1.Book"),
            std::string::npos);
  EXPECT_NE(broken(R"(get: "/v1/{tags}")").find("must name a singular scalar field"),
            std::string::npos);
  EXPECT_NE(broken(R"(get: "v1/x")").find("path \"v1/x\""), std::string::npos);
  EXPECT_NE(broken(R"(post: "/v1/x" body: "nope")").find("body \"nope\" is not a field"),
            std::string::npos);
  EXPECT_NE(broken(R"(get: "/v1/x" response_body: "nope")").find("response_body \"nope\""),
            std::string::npos);
}

}  // namespace
}  // namespace portico::transcode
