#pragma once
// The path templates of google.api.http rules (google/api/http.proto), the first piece of
// REST-to-gRPC transcoding (#15):
//
//   Template = "/" Segments [ Verb ] ;
//   Segments = Segment { "/" Segment } ;
//   Segment  = "*" | "**" | LITERAL | Variable ;
//   Variable = "{" FieldPath [ "=" Segments ] "}" ;
//   FieldPath = IDENT { "." IDENT } ;
//   Verb     = ":" LITERAL ;
//
// `*` matches one segment, `**` the rest of the path (last only); `{id}` is `{id=*}`. A match
// binds each variable's field path to the text of the segments it covered (still
// percent-encoded: the transcoder decodes what it puts into a field).

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portico::transcode {

class PathTemplate {
 public:
  struct Binding {
    std::string_view field_path;  // "item.id", a view into the template
    std::string_view value;       // a view into the matched path
  };

  // The template, or nullopt with `error` saying what is wrong with it.
  static std::optional<PathTemplate> parse(std::string_view text, std::string& error);

  // True when `path` (no query) matches; `bindings` then holds one entry per variable, in
  // template order.
  bool match(std::string_view path, std::vector<Binding>& bindings) const;

  const std::string& text() const { return text_; }
  const std::string& verb() const { return verb_; }
  size_t variableCount() const { return variables_.size(); }
  std::string_view fieldPath(size_t variable) const;

 private:
  struct Segment {
    enum class Kind : uint8_t { Literal, One, Rest };
    Kind kind = Kind::Literal;
    std::string literal;
  };
  struct Variable {
    size_t path_begin = 0;  // the field path in text_
    size_t path_size = 0;
    size_t first = 0;  // the segments it covers: [first, end)
    size_t end = 0;
  };

  std::string text_;
  std::vector<Segment> segments_;
  std::vector<Variable> variables_;
  std::string verb_;
};

}  // namespace portico::transcode
