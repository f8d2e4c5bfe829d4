#pragma once
// For the transcoder's unit tests: a descriptor set compiled by protoc (Debian's
// protobuf-compiler) from a test service, with the two google/api protos written here.

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace portico::transcode::testing {

inline constexpr const char* kHttpProto = R"(syntax = "proto3";
package google.api;
message HttpRule {
  string selector = 1;
  oneof pattern { string get = 2; string put = 3; string post = 4; string delete = 5;
                  string patch = 6; CustomHttpPattern custom = 8; }
  string body = 7;
  string response_body = 12;
  repeated HttpRule additional_bindings = 11;
}
message CustomHttpPattern { string kind = 1; string path = 2; }
)";

inline constexpr const char* kAnnotationsProto = R"(syntax = "proto3";
package google.api;
import "google/api/http.proto";
import "google/protobuf/descriptor.proto";
extend google.protobuf.MethodOptions { HttpRule http = 72295728; }
)";

inline constexpr const char* kLibraryProto = R"(syntax = "proto3";
package ex.v1;
import "google/api/annotations.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
message Page { int32 size = 1; string token = 2; }
message Book {
  string id = 1; string title = 2; int64 pages = 3;
  enum Kind { KIND_UNSPECIFIED = 0; NOVEL = 1; }
  Kind kind = 4; google.protobuf.Timestamp published = 5; bytes blob = 6;
  repeated string tags = 7; bool draft = 8; google.protobuf.Int32Value rating = 9;
  google.protobuf.BytesValue cover = 10;
}
message GetBookRequest { string shelf = 1; Book book = 2; Page page = 3; repeated int32 ids = 4; }
message CreateBookRequest { string shelf = 1; Book book = 2; }
message BookReply { Book book = 1; repeated string notes = 2; }
message Scalars {
  int32 i32 = 1; uint32 u32 = 2; sint32 s32 = 3; sint64 s64 = 4; fixed32 f32 = 5;
  fixed64 f64 = 6; sfixed32 sf32 = 7; sfixed64 sf64 = 8; float fl = 9; double db = 10;
  uint64 u64 = 11; int64 i64 = 12; repeated int32 many = 13; Page page = 14;
}
service Library {
  rpc GetBook(GetBookRequest) returns (Book) {
    option (google.api.http) = { get: "/v1/shelves/{shelf}/books/{book.id}"
                                 additional_bindings { get: "/v1/books/{book.id}" } };
  }
  rpc CreateBook(CreateBookRequest) returns (Book) {
    option (google.api.http) = { post: "/v1/shelves/{shelf}/books" body: "book" };
  }
  rpc ReplaceBook(Book) returns (BookReply) {
    option (google.api.http) = { put: "/v1/books/{id}" body: "*" response_body: "book" };
  }
  rpc Notes(Book) returns (BookReply) {
    option (google.api.http) = { custom: { kind: "REPORT" path: "/v1/books/{id}:notes" }
                                 response_body: "notes" };
  }
  rpc Named(Book) returns (Book) {
    option (google.api.http) = { get: "/v1/{title=libraries/*/books/*}" };
  }
  rpc List(Book) returns (stream Book) { option (google.api.http) = { get: "/v1/list" }; }
  rpc Plain(Book) returns (Book);
  rpc Echo(Scalars) returns (Scalars) { option (google.api.http) = { get: "/v1/scalars" }; }
}
)";

// Compiles the test service (or `library` instead) and returns the descriptor set's path
// (empty on failure).
inline std::string compileLibrary(const char* library = kLibraryProto) {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() /
      ("portico-transcode-" + std::to_string(::getpid()) + "-" + std::to_string(std::rand()));
  fs::create_directories(dir / "google" / "api");
  std::ofstream(dir / "google" / "api" / "http.proto") << kHttpProto;
  std::ofstream(dir / "google" / "api" / "annotations.proto") << kAnnotationsProto;
  std::ofstream(dir / "library.proto") << library;
  const std::string out = (dir / "library.pb").string();
  const std::string command = "protoc --include_imports -I" + dir.string() +
                              " --descriptor_set_out=" + out + " " +
                              (dir / "library.proto").string() + " 2>&1";
  return std::system(command.c_str()) == 0 ? out : std::string();
}

}  // namespace portico::transcode::testing
