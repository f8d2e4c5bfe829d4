#pragma once
// Invariants of the HTTP/1.1 head parser (src/http/http1_parser.hpp), shared by the request and
// response head targets. They restate the parser's promises independently of its code: a head it
// accepts must be one no other strict reader frames differently (request smuggling).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_util.hpp"
#include "http/header.hpp"
#include "http/http1_parser.hpp"

namespace portico::fuzz {

inline bool isTchar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

inline bool isFieldValueChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u == '\t' || (u >= 0x20 && u != 0x7f);
}

// Whether `view` lies inside data[0, size): the parser promises views, not copies.
inline bool within(std::string_view view, const char* data, size_t size) {
  return view.data() >= data && view.data() + view.size() <= data + size;
}

// findHeadEnd fed the head as it would arrive from a socket, `step` bytes at a time with
// `scanned` carried over, must find what one call over all of it finds.
inline http::ParseStatus findHeadEndBothWays(const char* data, size_t size, size_t step,
                                             size_t& head_end, http::ParseError& error) {
  size_t scanned = 0;
  head_end = 0;
  error = http::ParseError::None;
  const http::ParseStatus whole = http::findHeadEnd(data, size, scanned, head_end, error);
  FUZZ_CHECK(whole != http::ParseStatus::Complete || (head_end >= 4 && head_end <= size));
  FUZZ_CHECK(whole != http::ParseStatus::Complete ||
             std::string_view(data + head_end - 4, 4) == "\r\n\r\n");

  size_t piece_scanned = 0;
  size_t piece_end = 0;
  http::ParseError piece_error = http::ParseError::None;
  http::ParseStatus pieces = http::ParseStatus::Incomplete;
  for (size_t len = std::min(step, size); pieces == http::ParseStatus::Incomplete;
       len = std::min(len + step, size)) {
    pieces = http::findHeadEnd(data, len, piece_scanned, piece_end, piece_error);
    FUZZ_CHECK(piece_scanned <= len);
    if (len == size) break;
  }
  FUZZ_CHECK(pieces == whole);
  if (whole == http::ParseStatus::Complete) FUZZ_CHECK(piece_end == head_end);
  if (whole == http::ParseStatus::Error) FUZZ_CHECK(piece_error == error);
  return whole;
}

// The field section of an accepted head: well-formed fields, and framing that is unambiguous.
inline void checkFields(const http::MessageHead& head, const char* data, size_t head_end,
                        size_t max_headers) {
  FUZZ_CHECK(head.head_size == head_end);
  FUZZ_CHECK(head.headers.size() <= max_headers);
  size_t lengths = 0;
  size_t codings = 0;
  uint64_t length_value = 0;
  for (const http::HeaderField& h : head.headers) {
    FUZZ_CHECK(!h.name.empty() && within(h.name, data, head_end));
    FUZZ_CHECK(std::all_of(h.name.begin(), h.name.end(), isTchar));
    FUZZ_CHECK(h.value.empty() || within(h.value, data, head_end));
    FUZZ_CHECK(std::all_of(h.value.begin(), h.value.end(), isFieldValueChar));
    FUZZ_CHECK(h.value.empty() || (h.value.front() != ' ' && h.value.front() != '\t' &&
                                   h.value.back() != ' ' && h.value.back() != '\t'));
    if (http::equalsIgnoreCase(h.name, "content-length")) {
      ++lengths;
      FUZZ_CHECK(!h.value.empty() && h.value.size() <= 18);
      for (char c : h.value) {
        FUZZ_CHECK(c >= '0' && c <= '9');
        length_value = length_value * 10 + static_cast<uint64_t>(c - '0');
      }
    }
    if (http::equalsIgnoreCase(h.name, "transfer-encoding")) {
      ++codings;
      FUZZ_CHECK(http::equalsIgnoreCase(h.value, "chunked"));
    }
  }
  // One framing, stated once (RFC 9112 §6.3): anything else is smuggling material.
  FUZZ_CHECK(lengths <= 1 && codings <= 1 && lengths + codings <= 1);
  switch (head.framing) {
    case http::BodyFraming::Chunked:
      FUZZ_CHECK(codings == 1);
      break;
    case http::BodyFraming::Length:
      FUZZ_CHECK(lengths == 1 && head.content_length > 0 && head.content_length == length_value);
      break;
    case http::BodyFraming::None:
    case http::BodyFraming::UntilClose:
      break;
  }
}

}  // namespace portico::fuzz
