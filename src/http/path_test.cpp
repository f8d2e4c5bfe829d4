#include "http/path.hpp"

#include <gtest/gtest.h>

#include <string>

namespace portico::http {
namespace {

// The normalized path, or a marker naming the error, so each test is one EXPECT_EQ.
std::string normalized(std::string_view raw, const PathOptions& options = {}) {
  std::string out;
  switch (normalizePath(raw, out, options)) {
    case PathError::None:
      return out;
    case PathError::NotOriginForm:
      return "<NotOriginForm>";
    case PathError::BadPercent:
      return "<BadPercent>";
    case PathError::EncodedSlash:
      return "<EncodedSlash>";
    case PathError::EncodedNul:
      return "<EncodedNul>";
    case PathError::InvalidCharacter:
      return "<InvalidCharacter>";
    case PathError::Parameter:
      return "<Parameter>";
  }
  return "<?>";
}

TEST(NormalizePath, KeepsAlreadyNormalPath) {
  EXPECT_EQ("/", normalized("/"));
  EXPECT_EQ("/users/7", normalized("/users/7"));
}

TEST(NormalizePath, KeepsCase) { EXPECT_EQ("/ADMIN", normalized("/ADMIN")); }

// Review H3: what a servlet container makes of ';' parameters is what the router sees.
TEST(NormalizePath, StripsSegmentParametersBeforeDotSegments) {
  EXPECT_EQ("/admin/users", normalized("/admin;x/users"));
  EXPECT_EQ("/admin/users", normalized("/public/..;/admin/users"));
  EXPECT_EQ("/admin/users", normalized("/public/..;jsessionid=1/admin/users"));
  EXPECT_EQ("/a/b", normalized("/a/.;x/b"));
  EXPECT_EQ("/a/b", normalized("/a/;x/b"));
  EXPECT_EQ("/files", normalized("/files;v=2"));
  EXPECT_EQ("/a%3Bb", normalized("/a%3bb"));  // an escaped ';' is data, not a parameter
}

TEST(NormalizePath, KeepsOrRefusesParametersWhenAsked) {
  PathOptions keep{PathOptions::Parameters::Keep};
  EXPECT_EQ("/admin;x/users", normalized("/admin;x/users", keep));
  PathOptions reject{PathOptions::Parameters::Reject};
  EXPECT_EQ("<Parameter>", normalized("/admin;x/users", reject));
  EXPECT_EQ("<Parameter>", normalized("/p/..;/admin", reject));
  EXPECT_EQ("/a%3Bb", normalized("/a%3Bb", reject));
}

TEST(NormalizePath, LowercasesLettersButNotEscapes) {
  PathOptions lower;
  lower.lowercase = true;
  EXPECT_EQ("/admin/users", normalized("/ADMIN/Users", lower));
  EXPECT_EQ("/a%3Bb/x", normalized("/A%3bB/%58", lower));
}

TEST(NormalizePath, RemovesDotDotSegment) { EXPECT_EQ("/b", normalized("/a/../b")); }

TEST(NormalizePath, RemovesDotSegment) { EXPECT_EQ("/a/b", normalized("/a/./b")); }

TEST(NormalizePath, CollapsesLeadingDoubleSlash) { EXPECT_EQ("/b", normalized("//b")); }

TEST(NormalizePath, CollapsesSlashRuns) { EXPECT_EQ("/a/b/c", normalized("/a///b//c")); }

TEST(NormalizePath, OnlySlashesIsRoot) { EXPECT_EQ("/", normalized("////")); }

TEST(NormalizePath, DotDotNeverClimbsAboveRoot) {
  EXPECT_EQ("/", normalized("/.."));
  EXPECT_EQ("/c", normalized("/a/b/../../../c"));
  EXPECT_EQ("/etc/passwd", normalized("/../../etc/passwd"));
}

TEST(NormalizePath, LoneDotIsRoot) { EXPECT_EQ("/", normalized("/.")); }

TEST(NormalizePath, KeepsTrailingSlash) {
  EXPECT_EQ("/a/b/", normalized("/a/b/"));
  EXPECT_EQ("/a/b/", normalized("/a/b//"));
}

TEST(NormalizePath, TrailingDotSegmentsLeaveTrailingSlash) {
  EXPECT_EQ("/a/", normalized("/a/."));
  EXPECT_EQ("/", normalized("/a/.."));
  EXPECT_EQ("/a/", normalized("/a/b/.."));
  EXPECT_EQ("/a/", normalized("/a/./"));
}

TEST(NormalizePath, DotsInsideSegmentsAreOrdinary) {
  EXPECT_EQ("/a/.../b", normalized("/a/.../b"));
  EXPECT_EQ("/a/..b/.c", normalized("/a/..b/.c"));
  EXPECT_EQ("/file.tar.gz", normalized("/file.tar.gz"));
}

TEST(NormalizePath, EncodedDotsAreDotSegments) {
  EXPECT_EQ("/admin", normalized("/%2e%2e/admin"));
  EXPECT_EQ("/b", normalized("/a/%2E%2e/b"));
  EXPECT_EQ("/b", normalized("/a/.%2e/b"));
  EXPECT_EQ("/a/b", normalized("/a/%2e/b"));
}

TEST(NormalizePath, PublicDotDotCannotReachAdmin) {
  EXPECT_EQ("/admin", normalized("/public/../admin"));
}

TEST(NormalizePath, DecodesUnreserved) {
  EXPECT_EQ("/~user", normalized("/%7Euser"));
  EXPECT_EQ("/~user", normalized("/%7euser"));
  EXPECT_EQ("/A", normalized("/%41"));
  EXPECT_EQ("/a-b_c.d", normalized("/a%2Db%5Fc%2Ed"));
  EXPECT_EQ("/09", normalized("/%30%39"));
}

TEST(NormalizePath, KeepsOtherEscapesWithUpperCaseHex) {
  EXPECT_EQ("/a%20b", normalized("/a%20b"));
  EXPECT_EQ("/%3B%3D", normalized("/%3b%3d"));
  EXPECT_EQ("/caf%C3%A9", normalized("/caf%c3%a9"));
  EXPECT_EQ("/%25", normalized("/%25"));
}

TEST(NormalizePath, EscapedPercentIsNotDecodedTwice) { EXPECT_EQ("/%252e", normalized("/%252e")); }

TEST(NormalizePath, AcceptsSubDelimsColonAndAt) {
  EXPECT_EQ("/a:b@c!$&'()*+,=", normalized("/a:b@c!$&'()*+,="));
  EXPECT_EQ("/a:b@c!$&'()*+,;=", normalized("/a:b@c!$&'()*+,;=", {PathOptions::Parameters::Keep}));
}

TEST(NormalizePath, RejectsEncodedSlash) {
  EXPECT_EQ("<EncodedSlash>", normalized("/a%2fb"));
  EXPECT_EQ("<EncodedSlash>", normalized("/a%2Fb"));
  EXPECT_EQ("<EncodedSlash>", normalized("/public/..%2fadmin"));
}

TEST(NormalizePath, RejectsEncodedBackslash) {
  EXPECT_EQ("<EncodedSlash>", normalized("/a%5cb"));
  EXPECT_EQ("<EncodedSlash>", normalized("/a%5Cb"));
}

TEST(NormalizePath, RejectsEncodedNul) { EXPECT_EQ("<EncodedNul>", normalized("/a%00b")); }

TEST(NormalizePath, RejectsBadPercent) {
  EXPECT_EQ("<BadPercent>", normalized("/%zz"));
  EXPECT_EQ("<BadPercent>", normalized("/%4"));
  EXPECT_EQ("<BadPercent>", normalized("/%"));
  EXPECT_EQ("<BadPercent>", normalized("/a%/b"));
  EXPECT_EQ("<BadPercent>", normalized("/%g1"));
}

TEST(NormalizePath, RejectsSpace) { EXPECT_EQ("<InvalidCharacter>", normalized("/a b")); }

TEST(NormalizePath, RejectsCharactersOutsidePchar) {
  for (const char c : std::string_view("\"#<>\\^`{|}[]")) {
    SCOPED_TRACE(std::string(1, c));
    EXPECT_EQ("<InvalidCharacter>", normalized(std::string("/a") + c + "b"));
  }
}

TEST(NormalizePath, RejectsControlsDelAndNonAscii) {
  EXPECT_EQ("<InvalidCharacter>", normalized(std::string("/a\0b", 4)));
  EXPECT_EQ("<InvalidCharacter>", normalized("/a\tb"));
  EXPECT_EQ("<InvalidCharacter>", normalized("/a\x7f"));
  EXPECT_EQ("<InvalidCharacter>", normalized("/caf\xc3\xa9"));
}

TEST(NormalizePath, RejectsQueryAndFragmentMarkers) {
  // The caller splits off '?query'; a '?' reaching here is not part of a path.
  EXPECT_EQ("<InvalidCharacter>", normalized("/a?b"));
  EXPECT_EQ("<InvalidCharacter>", normalized("/a#b"));
}

TEST(NormalizePath, RejectsNonOriginForm) {
  EXPECT_EQ("<NotOriginForm>", normalized(""));
  EXPECT_EQ("<NotOriginForm>", normalized("*"));
  EXPECT_EQ("<NotOriginForm>", normalized("http://example.com/"));
  EXPECT_EQ("<NotOriginForm>", normalized("a/b"));
}

TEST(NormalizePath, ReportsFirstErrorInOrder) {
  EXPECT_EQ("<InvalidCharacter>", normalized("/a b/%zz"));
  EXPECT_EQ("<BadPercent>", normalized("/%zz/a b"));
}

TEST(NormalizePath, ClearsOutputFirst) {
  std::string out = "garbage";
  ASSERT_EQ(PathError::None, normalizePath("/x", out));
  EXPECT_EQ("/x", out);
}

TEST(NormalizePath, LeavesOutputEmptyOnError) {
  std::string out = "garbage";
  ASSERT_EQ(PathError::EncodedSlash, normalizePath("/a/b%2f", out));
  EXPECT_TRUE(out.empty());
}

TEST(NormalizePath, DoesNotReallocateWhenCapacitySuffices) {
  const std::string_view inputs[] = {"/a/b/c", "//x//y//", "/%7E%41%2e%2e/z", "/a/./b/../c/.",
                                     "/..",    "/",        "/a%20b%3b",       "/a/b/../../../c/"};
  for (const std::string_view raw : inputs) {
    SCOPED_TRACE(raw);
    std::string out;
    out.reserve(raw.size());
    const char* const data = out.data();
    const size_t capacity = out.capacity();
    ASSERT_EQ(PathError::None, normalizePath(raw, out));
    EXPECT_EQ(data, out.data());
    EXPECT_EQ(capacity, out.capacity());
  }
}

TEST(NormalizePath, IsIdempotent) {
  const std::string_view inputs[] = {"/a/../b/./c//", "/%7e%2E%2e/x", "/a%3bb/..", "/A/%41/"};
  for (const std::string_view raw : inputs) {
    SCOPED_TRACE(raw);
    std::string once;
    std::string twice;
    ASSERT_EQ(PathError::None, normalizePath(raw, once));
    ASSERT_EQ(PathError::None, normalizePath(once, twice));
    EXPECT_EQ(once, twice);
  }
}

}  // namespace

TEST(PercentDecode, DecodesEveryEscapeAndKeepsMalformedOnes) {
  EXPECT_EQ(percentDecode("a%2Fb%20c%C3%A9", false), "a/b c\xc3\xa9");
  EXPECT_EQ(percentDecode("a+b%2B", true), "a b+");
  EXPECT_EQ(percentDecode("a+b", false), "a+b");
  EXPECT_EQ(percentDecode("100%", false), "100%");
  EXPECT_EQ(percentDecode("%zz%4", false), "%zz%4");
}

}  // namespace portico::http
