#pragma once
// The chunked transfer coding (RFC 9112 §7.1), checked byte by byte as it streams through.

#include <cstddef>
#include <cstdint>
#include <string>

namespace portico::http {

// Incremental validator for a chunked body. It does not copy: feed() reports how many input
// bytes belong to the body (chunk framing included), so a proxy can pass them on verbatim, and
// optionally appends the decoded data to `data_out` (for consumers that need the payload).
//
// Chunk extensions must follow RFC 9112 §7.1.1's grammar (a name is required: `5;` is refused),
// and trailer fields the field grammar of RFC 9110 §5, so that no parser behind us can read
// either differently. Trailer field bytes are reported apart (Result::trailer_bytes), for a
// proxy that drops them.
class ChunkedDecoder {
 public:
  struct Result {
    size_t consumed = 0;       // bytes of input that belong to the chunked body
    size_t trailer_bytes = 0;  // of those, bytes of trailer fields (just before the final CRLF)
    bool done = false;         // the last chunk and trailers were seen
    bool error = false;
  };

  void reset() { *this = ChunkedDecoder{}; }
  // `trailers_out`, when given, gets the trailer section's field lines ("name: value\r\n").
  Result feed(const char* data, size_t len, std::string* data_out = nullptr,
              std::string* trailers_out = nullptr);
  uint64_t dataBytes() const { return data_bytes_; }
  // Data bytes received plus those the current chunk's size line still announces.
  uint64_t announcedBytes() const { return data_bytes_ + remaining_; }
  bool done() const { return state_ == State::Done; }

 private:
  enum class State : uint8_t {
    SizeStart, Size,
    // chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
    ExtBeforeName, ExtName, ExtAfterName, ExtBeforeValue, ExtToken, ExtQuoted, ExtQuotedPair,
    ExtAfterValue,
    SizeLf, Data, DataCr, DataLf,
    TrailerStart, TrailerName, TrailerValue, TrailerLf, FinalLf, Done
  };
  bool stepExtension(char c);
  bool stepTrailer(char c);

  State state_ = State::SizeStart;
  uint64_t remaining_ = 0;
  uint64_t data_bytes_ = 0;
  uint32_t line_bytes_ = 0;   // length of the current extension list or trailer line
  uint32_t trailer_bytes_ = 0;
  uint8_t size_digits_ = 0;
};

}  // namespace portico::http
