// Fuzz target: google.api.http path templates (src/transcode/path_template.hpp). Descriptor sets
// come from the operator, but a template is still a parser over bytes: it must refuse what the
// grammar does not allow and never read past what it was given. A match's bindings must be
// views into the path, in order, each within the path's segments, and a template of literals
// alone matches exactly its own text.
//
// Input: the template, a newline, the path.

#include "transcode/path_template.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using portico::transcode::PathTemplate;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  const std::string_view text = input.substr(0, newline);
  const std::string path(newline == std::string_view::npos ? std::string_view()
                                                           : input.substr(newline + 1));
  std::string error;
  auto parsed = PathTemplate::parse(text, error);
  if (!parsed) {
    FUZZ_CHECK(!error.empty());
    return 0;
  }
  FUZZ_CHECK(parsed->text() == text);
  FUZZ_CHECK(text.starts_with('/'));
  std::vector<PathTemplate::Binding> bindings;
  if (!parsed->match(path, bindings)) return 0;
  FUZZ_CHECK(path.starts_with('/'));
  FUZZ_CHECK(bindings.size() == parsed->variableCount());
  const char* previous_end = path.data();
  for (const auto& b : bindings) {
    FUZZ_CHECK(b.value.data() >= path.data() &&
               b.value.data() + b.value.size() <= path.data() + path.size());
    FUZZ_CHECK(b.value.data() >= previous_end);
    previous_end = b.value.data() + b.value.size();
    FUZZ_CHECK(!b.field_path.empty());
  }
  if (parsed->variableCount() == 0 && text.find('*') == std::string_view::npos) {
    FUZZ_CHECK(path == text);  // literals (and a verb) alone: the path is the template
  }
  return 0;
}
