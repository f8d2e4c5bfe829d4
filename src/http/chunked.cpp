#include "http/chunked.hpp"

#include "http/chars.hpp"

namespace portico::http {
namespace {

constexpr uint32_t kMaxLine = 4096;          // one extension list, or one trailer field
constexpr uint32_t kMaxTrailers = 16 * 1024;  // the whole trailer section

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// qdtext and the second byte of a quoted-pair (RFC 9110 §5.6.4).
bool isQdtext(char c) {
  auto u = static_cast<unsigned char>(c);
  return u == '\t' || u == ' ' || u == 0x21 || (u >= 0x23 && u <= 0x5b) ||
         (u >= 0x5d && u <= 0x7e) || u >= 0x80;
}
bool isQuotedPairChar(char c) {
  auto u = static_cast<unsigned char>(c);
  return u == '\t' || (u >= 0x20 && u != 0x7f);
}

}  // namespace

// One byte of a chunk-ext; false when the grammar does not allow it.
bool ChunkedDecoder::stepExtension(char c) {
  if (++line_bytes_ > kMaxLine) return false;
  if (c == '\r') {
    // The list may end after a name or a value, never after ";" or "=".
    if (state_ != State::ExtName && state_ != State::ExtAfterName &&
        state_ != State::ExtToken && state_ != State::ExtAfterValue) {
      return false;
    }
    state_ = State::SizeLf;
    return true;
  }
  switch (state_) {
    case State::ExtBeforeName:
      if (isBlank(c)) return true;
      if (!isTchar(c)) return false;
      state_ = State::ExtName;
      return true;
    case State::ExtName:
    case State::ExtAfterName:
      if (c == ';') state_ = State::ExtBeforeName;
      else if (c == '=') state_ = State::ExtBeforeValue;
      else if (isBlank(c)) state_ = State::ExtAfterName;
      else return state_ == State::ExtName && isTchar(c);
      return true;
    case State::ExtBeforeValue:
      if (isBlank(c)) return true;
      if (c == '"') state_ = State::ExtQuoted;
      else if (isTchar(c)) state_ = State::ExtToken;
      else return false;
      return true;
    case State::ExtToken:
    case State::ExtAfterValue:
      if (c == ';') state_ = State::ExtBeforeName;
      else if (isBlank(c)) state_ = State::ExtAfterValue;
      else return state_ == State::ExtToken && isTchar(c);
      return true;
    case State::ExtQuoted:
      if (c == '"') state_ = State::ExtAfterValue;
      else if (c == '\\') state_ = State::ExtQuotedPair;
      else return isQdtext(c);
      return true;
    case State::ExtQuotedPair:
      state_ = State::ExtQuoted;
      return isQuotedPairChar(c);
    default:
      return false;
  }
}

// One byte of the trailer section: field-name ":" OWS field-value OWS CRLF, then CRLF.
bool ChunkedDecoder::stepTrailer(char c) {
  if (++trailer_bytes_ > kMaxTrailers) return false;
  switch (state_) {
    case State::TrailerStart:
      if (c == '\r') {
        state_ = State::FinalLf;
        return true;
      }
      line_bytes_ = 1;
      state_ = State::TrailerName;
      return isTchar(c);  // also refuses obs-fold and whitespace before the name
    case State::TrailerName:
      if (++line_bytes_ > kMaxLine) return false;
      if (c == ':') {
        state_ = State::TrailerValue;
        return true;
      }
      return isTchar(c);
    case State::TrailerValue:
      if (++line_bytes_ > kMaxLine) return false;
      if (c == '\r') {
        state_ = State::TrailerLf;
        return true;
      }
      return isFieldValueChar(c);
    case State::TrailerLf:
      state_ = State::TrailerStart;
      return c == '\n';
    case State::FinalLf:
      state_ = State::Done;
      return c == '\n';
    default:
      return false;
  }
}

ChunkedDecoder::Result ChunkedDecoder::feed(const char* data, size_t len, std::string* data_out,
                                            std::string* trailers_out) {
  Result r;
  size_t i = 0;
  auto fail = [&] {
    r.error = true;
    r.consumed = i;
    return r;
  };
  while (i < len && state_ != State::Done) {
    char c = data[i];
    switch (state_) {
      case State::SizeStart:
      case State::Size: {
        int digit = hexValue(c);
        if (digit >= 0) {
          if (++size_digits_ > 15) return fail();  // bounded well below 2^64
          remaining_ = remaining_ * 16 + static_cast<uint64_t>(digit);
          state_ = State::Size;
        } else if (state_ == State::Size && c == ';') {
          state_ = State::ExtBeforeName;
          line_bytes_ = 0;
        } else if (state_ == State::Size && c == '\r') {
          state_ = State::SizeLf;
        } else {
          return fail();  // whitespace around the size included: parsers disagree on it
        }
        ++i;
        break;
      }
      case State::ExtBeforeName:
      case State::ExtName:
      case State::ExtAfterName:
      case State::ExtBeforeValue:
      case State::ExtToken:
      case State::ExtQuoted:
      case State::ExtQuotedPair:
      case State::ExtAfterValue:
        if (!stepExtension(c)) return fail();
        ++i;
        break;
      case State::SizeLf:
        if (c != '\n') return fail();
        ++i;
        size_digits_ = 0;
        state_ = remaining_ == 0 ? State::TrailerStart : State::Data;
        break;
      case State::Data: {
        size_t n = len - i;
        if (n > remaining_) n = static_cast<size_t>(remaining_);
        if (data_out) data_out->append(data + i, n);
        remaining_ -= n;
        data_bytes_ += n;
        i += n;
        if (remaining_ == 0) state_ = State::DataCr;
        break;
      }
      case State::DataCr:
        if (c != '\r') return fail();
        state_ = State::DataLf;
        ++i;
        break;
      case State::DataLf:
        if (c != '\n') return fail();
        state_ = State::SizeStart;
        ++i;
        break;
      case State::TrailerStart:
      case State::TrailerName:
      case State::TrailerValue:
      case State::TrailerLf:
      case State::FinalLf: {
        const bool field_byte =
            state_ != State::FinalLf && !(state_ == State::TrailerStart && c == '\r');
        if (!stepTrailer(c)) return fail();
        if (field_byte) {
          ++r.trailer_bytes;
          if (trailers_out) trailers_out->push_back(c);
        }
        ++i;
        break;
      }
      case State::Done:
        break;
    }
  }
  r.consumed = i;
  r.done = state_ == State::Done;
  return r;
}

}  // namespace portico::http
