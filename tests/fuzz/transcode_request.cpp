// Fuzz target: a REST request's bindings and body made into a gRPC request message, and a
// message made into JSON (src/transcode/catalog.hpp), over the unit tests' service (compiled by
// protoc when the target starts). Path, query and body are the client's bytes: whatever they
// hold, the answer is a message or an error to send back, never an exception or a crash (a
// value that was not UTF-8 once reached nlohmann's dump and threw). The error is text a JSON
// body can carry.
//
// Input: a byte choosing the verb, then the path, '\n', the query, '\n', the body.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "transcode/catalog.hpp"
#include "transcode/field_encoder.hpp"
#include "transcode/test_protos.hpp"

using namespace portico;

namespace {
std::shared_ptr<const transcode::Catalog> catalog;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::string error;
  catalog = transcode::Catalog::load(transcode::testing::compileLibrary(), {}, error);
  if (catalog == nullptr) {
    std::fprintf(stderr, "transcode_request: %s\n", error.c_str());
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static constexpr std::string_view kVerbs[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "REPORT"};
  const std::string_view verb = kVerbs[data[0] % 6];
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t first = rest.find('\n');
  const std::string path(rest.substr(0, first));
  rest = first == std::string_view::npos ? std::string_view() : rest.substr(first + 1);
  const size_t second = rest.find('\n');
  const std::string_view query = rest.substr(0, second);
  const std::string_view body =
      second == std::string_view::npos ? std::string_view() : rest.substr(second + 1);

  auto match = catalog->match(verb, path);
  if (!match) return 0;
  for (bool ignore : {false, true}) {
    transcode::JsonOptions options;
    options.ignore_unknown_query_parameters = ignore;
    transcode::BoundFields bound;
    std::string message, error;
    if (!catalog->bindFields(*match, query, options, bound, error)) {
      FUZZ_CHECK(!error.empty());
      continue;
    }
    if (!catalog->bodyToMessage(*match->rule, body, bound, message, error)) {
      FUZZ_CHECK(!error.empty());
      continue;
    }
    // The request's bytes read as the rule's response type: any message converts or fails.
    std::string json;
    catalog->messageToJson(*match->rule, message, options, json, error);
  }
  // The body's bytes as an upstream's message.
  std::string json, error;
  catalog->messageToJson(*match->rule, body, {}, json, error);
  return 0;
}
