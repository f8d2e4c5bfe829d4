#include "transcode/path_template.hpp"

#include <algorithm>

namespace portico::transcode {
namespace {

bool isIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool isIdentChar(char c) { return isIdentStart(c) || (c >= '0' && c <= '9'); }

// RFC 3986 pchar, less ':' (the verb's) and the template's own punctuation.
bool isLiteralChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("-._~%!$&'()+,;=@").find(c) != std::string_view::npos;
}

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  bool fail(std::string message) {
    error = std::move(message) + " at offset " + std::to_string(at_);
    return false;
  }
  bool done() const { return at_ == text_.size(); }
  char peek() const { return done() ? '\0' : text_[at_]; }
  size_t at() const { return at_; }
  void skip() { ++at_; }

  std::string_view literal() {
    const size_t begin = at_;
    while (!done() && isLiteralChar(text_[at_])) ++at_;
    return text_.substr(begin, at_ - begin);
  }
  std::string_view fieldPath() {
    const size_t begin = at_;
    while (!done() && isIdentStart(peek())) {
      while (!done() && isIdentChar(peek())) ++at_;
      if (peek() != '.') return text_.substr(begin, at_ - begin);
      ++at_;
    }
    return {};  // empty, or ending in '.': not a field path
  }

  std::string error;

 private:
  std::string_view text_;
  size_t at_ = 0;
};

}  // namespace

std::optional<PathTemplate> PathTemplate::parse(std::string_view text, std::string& error) {
  PathTemplate result;
  result.text_ = std::string(text);
  Parser p(result.text_);
  bool in_variable = false;
  Variable variable;
  // One segment per round, after its '/' (or the '=' of a variable).
  auto segment = [&]() -> bool {
    Segment s;
    if (p.peek() == '*') {
      p.skip();
      s.kind = Segment::Kind::One;
      if (p.peek() == '*') {
        p.skip();
        s.kind = Segment::Kind::Rest;
      }
    } else {
      std::string_view literal = p.literal();
      if (literal.empty()) return p.fail("expected a path segment");
      s.literal = std::string(literal);
    }
    result.segments_.push_back(std::move(s));
    return true;
  };
  if (p.peek() != '/') {
    error = "a path template starts with '/'";
    return std::nullopt;
  }
  if (text == "/") return result;  // the root: no segment
  for (;;) {
    if (!in_variable) {
      if (p.peek() != '/') break;
      p.skip();
    }
    if (!in_variable && p.peek() == '{') {
      p.skip();
      variable = {};
      variable.path_begin = p.at();
      std::string_view path = p.fieldPath();
      if (path.empty()) {
        p.fail("expected a field path");
        error = p.error;
        return std::nullopt;
      }
      variable.path_size = path.size();
      variable.first = result.segments_.size();
      if (p.peek() == '=') {
        p.skip();
        in_variable = true;
        if (!segment()) break;
        while (p.peek() == '/') {
          p.skip();
          if (!segment()) break;
        }
        if (!p.error.empty()) break;
        in_variable = false;
      } else {
        result.segments_.push_back({Segment::Kind::One, {}});
      }
      if (p.peek() != '}') {
        p.fail("expected '}'");
        break;
      }
      p.skip();
      variable.end = result.segments_.size();
      result.variables_.push_back(variable);
      continue;
    }
    if (!segment()) break;
  }
  if (p.error.empty() && p.peek() == ':') {
    p.skip();
    std::string_view verb = p.literal();
    if (verb.empty()) {
      p.fail("expected a verb after ':'");
    } else {
      result.verb_ = std::string(verb);
    }
  }
  if (p.error.empty() && !p.done()) p.fail("unexpected character");
  if (p.error.empty()) {
    for (size_t i = 0; i + 1 < result.segments_.size(); ++i) {
      if (result.segments_[i].kind == Segment::Kind::Rest) {
        p.fail("'**' must be the last segment");
        break;
      }
    }
  }
  if (p.error.empty()) {
    for (size_t a = 0; a < result.variables_.size(); ++a) {
      for (size_t b = 0; b < a; ++b) {
        if (result.fieldPath(a) == result.fieldPath(b)) {
          p.fail("the field path \"" + std::string(result.fieldPath(a)) + "\" is bound twice");
        }
      }
    }
  }
  if (!p.error.empty()) {
    error = p.error;
    return std::nullopt;
  }
  return result;
}

std::string_view PathTemplate::fieldPath(size_t variable) const {
  const Variable& v = variables_[variable];
  return std::string_view(text_).substr(v.path_begin, v.path_size);
}

bool PathTemplate::match(std::string_view path, std::vector<Binding>& bindings) const {
  bindings.clear();
  if (!path.starts_with('/')) return false;
  if (!verb_.empty()) {
    if (path.size() < verb_.size() + 1 || !path.ends_with(verb_) ||
        path[path.size() - verb_.size() - 1] != ':') {
      return false;
    }
    path.remove_suffix(verb_.size() + 1);
  }
  if (segments_.empty()) return path == "/";
  // Where each template segment's text begins and ends in the path.
  std::vector<std::pair<size_t, size_t>> spans;
  spans.reserve(segments_.size());
  size_t at = 1;  // after the leading '/'
  bool rest = false;
  for (const Segment& segment : segments_) {
    if (segment.kind == Segment::Kind::Rest) {  // zero or more segments: whatever is left
      const size_t begin = std::min(at, path.size());
      spans.emplace_back(begin, path.size());
      rest = true;
      break;
    }
    if (at > path.size()) return false;  // the path ran out
    size_t end = path.find('/', at);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view text = path.substr(at, end - at);
    if (segment.kind == Segment::Kind::Literal ? text != segment.literal : text.empty()) {
      return false;
    }
    spans.emplace_back(at, end);
    at = end + 1;
  }
  // The whole path taken: a segment (or a trailing '/') the template lacks is no match.
  if (!rest && at != path.size() + 1) return false;
  for (size_t i = 0; i < variables_.size(); ++i) {
    const Variable& v = variables_[i];
    const size_t begin = v.first < spans.size() ? spans[v.first].first : path.size();
    const size_t end = v.end > v.first ? spans[v.end - 1].second : begin;
    bindings.push_back({fieldPath(i), path.substr(begin, end - begin)});
  }
  return true;
}

}  // namespace portico::transcode
