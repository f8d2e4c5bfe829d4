// google.api.http path templates: the grammar of http.proto, and what a path binds.
#include "transcode/path_template.hpp"

#include <gtest/gtest.h>

#include <map>

namespace portico::transcode {
namespace {

PathTemplate parsed(std::string_view text) {
  std::string error;
  auto t = PathTemplate::parse(text, error);
  EXPECT_TRUE(t) << text << ": " << error;
  return t ? *t : *PathTemplate::parse("/", error);
}

// The bindings of `path` as field path -> value; absent: no match.
std::optional<std::map<std::string, std::string>> bind(std::string_view templ,
                                                       std::string_view path) {
  PathTemplate t = parsed(templ);
  std::vector<PathTemplate::Binding> bindings;
  if (!t.match(path, bindings)) return std::nullopt;
  std::map<std::string, std::string> out;
  for (const auto& b : bindings) out.emplace(b.field_path, b.value);
  return out;
}

using Bound = std::map<std::string, std::string>;

TEST(PathTemplate, LiteralsMatchExactly) {
  EXPECT_EQ(bind("/v1/shelves", "/v1/shelves"), Bound{});
  EXPECT_FALSE(bind("/v1/shelves", "/v1/shelve"));
  EXPECT_FALSE(bind("/v1/shelves", "/v1/shelves/"));
  EXPECT_FALSE(bind("/v1/shelves", "/v1/shelves/1"));
  EXPECT_FALSE(bind("/v1/shelves", "/v1"));
  EXPECT_EQ(bind("/", "/"), Bound{});
  EXPECT_FALSE(bind("/", "/a"));
}

TEST(PathTemplate, AVariableIsOneSegment) {
  EXPECT_EQ(bind("/v1/shelves/{shelf}", "/v1/shelves/42"), (Bound{{"shelf", "42"}}));
  EXPECT_FALSE(bind("/v1/shelves/{shelf}", "/v1/shelves/"));
  EXPECT_FALSE(bind("/v1/shelves/{shelf}", "/v1/shelves/4/2"));
  EXPECT_EQ(bind("/v1/shelves/{shelf}/books/{book.id}", "/v1/shelves/1/books/b%2F2"),
            (Bound{{"shelf", "1"}, {"book.id", "b%2F2"}}));
}

TEST(PathTemplate, PatternsBindEveryCoveredSegment) {
  EXPECT_EQ(bind("/v1/{name=shelves/*/books/*}", "/v1/shelves/1/books/2"),
            (Bound{{"name", "shelves/1/books/2"}}));
  EXPECT_FALSE(bind("/v1/{name=shelves/*/books/*}", "/v1/shelves/1/tomes/2"));
  EXPECT_EQ(bind("/v1/{name=messages/**}", "/v1/messages/a/b/c"),
            (Bound{{"name", "messages/a/b/c"}}));
  EXPECT_EQ(bind("/files/{path=**}", "/files/a/b"), (Bound{{"path", "a/b"}}));
  EXPECT_EQ(bind("/files/{path=**}", "/files"), (Bound{{"path", ""}}));
  EXPECT_EQ(bind("/v1/*/things/**", "/v1/x/things/y/z"), Bound{});
  EXPECT_FALSE(bind("/v1/*/things", "/v1//things"));
}

TEST(PathTemplate, TheVerbIsTheLastColon) {
  EXPECT_EQ(bind("/v1/{name=books/*}:publish", "/v1/books/7:publish"),
            (Bound{{"name", "books/7"}}));
  EXPECT_FALSE(bind("/v1/{name=books/*}:publish", "/v1/books/7"));
  EXPECT_FALSE(bind("/v1/{name=books/*}:publish", "/v1/books/7:unpublish"));
  // Without a verb in the template, a colon is part of the segment.
  EXPECT_EQ(bind("/v1/{name}", "/v1/a:b"), (Bound{{"name", "a:b"}}));
  PathTemplate t = parsed("/v1/{name=books/*}:publish");
  EXPECT_EQ(t.verb(), "publish");
  EXPECT_EQ(t.variableCount(), 1u);
  EXPECT_EQ(t.fieldPath(0), "name");
}

TEST(PathTemplate, RefusesWhatTheGrammarDoesNot) {
  for (std::string_view bad :
       {"", "v1/x", "/v1//x", "/v1/x/", "/v1/{}", "/v1/{a.}", "/v1/{.a}", "/v1/{1a}", "/v1/{a",
        "/v1/{a=}", "/v1/{a={b}}", "/v1/**/x", "/v1/{a=**}/x", "/v1/x:", "/v1/x:a:b", "/v1/{a}/{a}",
        "/v1/x y", "/v1/***", "/v1/{a=b/**/c}"}) {
    std::string error;
    EXPECT_FALSE(PathTemplate::parse(bad, error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

}  // namespace
}  // namespace portico::transcode
