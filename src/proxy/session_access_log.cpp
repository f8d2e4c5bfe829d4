// The access log line of a request, written when its exchange ends (however it ends): JSON or
// the text format, with the fields the config lists, straight into the worker's buffer, which
// goes out once per event-loop batch. Nothing here goes through printf: a line costs about as
// much as the bytes it writes.
#include <array>
#include <charconv>
#include <cstring>
#include <string>

#include "auth/authenticator.hpp"
#include "core/clock.hpp"
#include "http/local_reply.hpp"
#include "proxy/session.hpp"
#include "proxy/worker.hpp"

namespace portico::proxy {
namespace {

using Field = config::AccessLog::Field;

constexpr Field kDefaultFields[] = {
    Field::Time,       Field::RequestId,  Field::TraceId,         Field::Client,
    Field::Method,     Field::Path,       Field::Route,           Field::Upstream,
    Field::Endpoint,   Field::Status,     Field::BytesIn,         Field::BytesOut,
    Field::DurationMs, Field::UpstreamMs, Field::UpstreamConnectMs, Field::UpstreamFirstByteMs,
    Field::Consumer};

uint64_t microsBetween(uint64_t from_us, uint64_t to_us) {
  return from_us != 0 && to_us > from_us ? to_us - from_us : 0;
}

// JSON keys as `,"name":` and `,"name":"` (a string value's opening quote), padded to a fixed
// size so that each is copied with one fixed-size move.
struct JsonKey {
  char text[32];
  uint8_t size;
};
using JsonKeys = std::array<std::array<JsonKey, 2>, std::size(config::AccessLog::kFieldNames)>;
constexpr JsonKeys makeJsonKeys() {
  JsonKeys keys{};
  for (size_t i = 0; i < keys.size(); ++i) {
    for (size_t quoted = 0; quoted < 2; ++quoted) {
      JsonKey& key = keys[i][quoted];
      size_t n = 0;
      key.text[n++] = ',';
      key.text[n++] = '"';
      for (char c : config::AccessLog::kFieldNames[i]) key.text[n++] = c;
      key.text[n++] = '"';
      key.text[n++] = ':';
      if (quoted) key.text[n++] = '"';
      key.size = static_cast<uint8_t>(n);
    }
  }
  return keys;
}
constexpr JsonKeys kJsonKeys = makeJsonKeys();

// Fields written one after the other into room reserved in the log buffer: `"name":value`
// pairs of a JSON object, or values separated by spaces with "-" for an empty one.
class LineWriter {
 public:
  // `bound`: the most the line can take.
  LineWriter(Buffer& out, bool json, size_t bound)
      : out_(out), json_(json), start_(out.extend(bound)), p_(start_), bound_(bound) {}
  ~LineWriter() { out_.truncateEnd(bound_ - static_cast<size_t>(p_ - start_)); }

  // Bytes as they are, with no separator.
  void raw(std::string_view text) { copy(text); }

  // A value that may hold any byte (a path, a name from the config, a client's request id).
  void text(Field field, std::string_view value) {
    if (!json_) return bare(value);
    name(field, true);
    p_ = http::writeJsonEscaped(value, p_);
    *p_++ = '"';
  }
  // A value made of characters JSON takes as they are: hex ids, addresses, times, methods
  // (tokens, RFC 9110 §5.6.2, hold no quote or backslash).
  void plain(Field field, std::string_view value) {
    if (!json_) return bare(value);
    name(field, true);
    copy(value);
    *p_++ = '"';
  }
  void number(Field field, uint64_t value) {
    name(field, false);
    p_ = std::to_chars(p_, p_ + 20, value).ptr;
  }
  // "12.345": milliseconds with three decimals, from microseconds.
  void millis(Field field, uint64_t us) {
    name(field, false);
    p_ = std::to_chars(p_, p_ + 20, us / 1000).ptr;
    const unsigned rest = static_cast<unsigned>(us % 1000);
    p_[0] = '.';
    p_[1] = static_cast<char>('0' + rest / 100);
    p_[2] = static_cast<char>('0' + rest / 10 % 10);
    p_[3] = static_cast<char>('0' + rest % 10);
    p_ += 4;
  }

 private:
  void copy(std::string_view value) {
    if (!value.empty()) std::memcpy(p_, value.data(), value.size());
    p_ += value.size();
  }
  // Text format: the value, or "-" for none.
  void bare(std::string_view value) {
    if (!first_) *p_++ = ' ';
    first_ = false;
    copy(value.empty() ? std::string_view("-") : value);
  }
  void name(Field field, bool quoted) {
    if (!json_) {
      if (!first_) *p_++ = ' ';
    } else {
      const JsonKey& key = kJsonKeys[static_cast<size_t>(field)][quoted ? 1 : 0];
      std::memcpy(p_, key.text, sizeof key.text);  // the room covers the padding
      p_ += key.size;
      if (first_) {  // no comma before the first
        std::memmove(p_ - key.size, p_ - key.size + 1, key.size - 1u);
        --p_;
      }
    }
    first_ = false;
  }

  Buffer& out_;
  bool json_;
  char* start_;
  char* p_;
  size_t bound_;
  bool first_ = true;
};

}  // namespace

void Session::writeAccessLog() {
  observability::AccessLogSink* sink = worker_.accessLog();
  if (sink == nullptr || !sink->enabled()) return;
  if (sink->sample() < 1.0 &&
      static_cast<double>(worker_.random() % 1'000'000) >= sink->sample() * 1'000'000) {
    return;
  }
  RequestState& rq = *rq_;
  const uint64_t end_us = rq.end_us = monotonicUs();
  char time[observability::kUtcTimeSize];
  observability::formatUtcAt(end_us, time);
  const std::string_view route =
      rq.route != nullptr ? std::string_view(rq.route->config->name) : std::string_view();
  Buffer& out = worker_.accessLogBuffer();
  const config::AccessLog& config = worker_.current_->shared->config.access_log;
  // Only what this request reached is named: a request refused before dispatch has no upstream.
  const UpstreamRuntime* upstream =
      rq.upstream_chosen ? &rq.snap->shared->upstreams[rq.upstream_index] : nullptr;
  const bool reached = upstream != nullptr && !rq.echo && rq.upstream_start_us != 0;
  const std::string_view upstream_name =
      upstream != nullptr ? std::string_view(upstream->config->name) : std::string_view();
  const std::string_view endpoint =
      reached ? std::string_view(upstream->config->endpoints[rq.endpoint_index].text)
              : std::string_view();
  const std::string_view consumer =
      rq.authenticated && rq.identity && rq.identity->consumer != nullptr
          ? std::string_view(rq.identity->consumer->name)
          : std::string_view();
  // Every key, number, id and time fits in the fixed part; the rest may grow sixfold escaped.
  const size_t bound = 1024 + http::kJsonEscapeGrowth *
                                  (rq.path.size() + rq.request_id_len + route.size() +
                                   upstream_name.size() + endpoint.size() + consumer.size() +
                                   rq.method.size() + peer_len_);
  if (!sink->json() && config.fields.empty()) {
    // The classic text line: time client "METHOD path" status bytes duration route request-id
    // [trace-id]
    LineWriter line(out, false, bound);
    line.plain(Field::Time, {time, observability::kUtcTimeSize - 1});
    line.plain(Field::Client, {peer_text_, peer_len_});
    line.raw(" \"");
    line.raw(rq.method);
    line.raw(" ");
    line.raw(rq.path);
    line.raw("\"");
    line.number(Field::Status, static_cast<uint64_t>(rq.status));
    line.number(Field::BytesOut, rq.bytes_out);
    line.millis(Field::DurationMs, microsBetween(rq.start_us, end_us));
    line.raw("ms");
    line.plain(Field::Route, route);
    line.plain(Field::RequestId, {rq.request_id, rq.request_id_len});
    if (rq.traced) line.plain(Field::TraceId, {rq.trace_id, sizeof rq.trace_id});
    line.raw("\n");
    return;
  }
  std::span<const Field> fields = config.fields;
  if (fields.empty()) fields = kDefaultFields;
  LineWriter line(out, sink->json(), bound);
  if (sink->json()) line.raw("{");
  for (Field field : fields) {
    switch (field) {
      case Field::Time: line.plain(field, {time, observability::kUtcTimeSize - 1}); break;
      case Field::RequestId: line.text(field, {rq.request_id, rq.request_id_len}); break;
      case Field::TraceId:
        line.plain(field, rq.traced ? std::string_view(rq.trace_id, sizeof rq.trace_id) : "");
        break;
      case Field::Client: line.plain(field, {peer_text_, peer_len_}); break;
      case Field::Method: line.plain(field, rq.method); break;
      case Field::Path: line.text(field, rq.path); break;
      case Field::Route: line.text(field, route); break;
      case Field::Upstream: line.text(field, upstream_name); break;
      case Field::Endpoint: line.text(field, endpoint); break;
      case Field::Status: line.number(field, static_cast<uint64_t>(rq.status)); break;
      case Field::BytesIn: line.number(field, rq.bytes_in); break;
      case Field::BytesOut: line.number(field, rq.bytes_out); break;
      case Field::DurationMs: line.millis(field, microsBetween(rq.start_us, end_us)); break;
      case Field::UpstreamMs:
        line.millis(field, microsBetween(rq.upstream_start_us, rq.upstream_head_us));
        break;
      case Field::UpstreamConnectMs:
        line.millis(field, microsBetween(rq.upstream_start_us, rq.upstream_connected_us));
        break;
      case Field::UpstreamFirstByteMs:
        line.millis(field, microsBetween(rq.upstream_connected_us, rq.upstream_head_us));
        break;
      case Field::Consumer: line.text(field, consumer); break;
    }
  }
  if (sink->json()) line.raw("}");
  line.raw("\n");
}

}  // namespace portico::proxy
