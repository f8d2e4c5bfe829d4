// The access log line of a request, written when its exchange ends (however it ends): JSON or
// the text format, with the fields the config lists, into the worker's buffer, flushed once per
// event-loop batch.
#include <cstdio>

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

double millisBetween(uint64_t from_us, uint64_t to_us) {
  return from_us != 0 && to_us > from_us ? static_cast<double>(to_us - from_us) / 1000.0 : 0.0;
}

// One field's value: text, or a number (JSON without quotes).
struct FieldValue {
  std::string_view text;
  bool number = false;
};

}  // namespace

void Session::writeAccessLog() {
  observability::AccessLogSink* sink = worker_.accessLog();
  if (sink == nullptr || !sink->enabled()) return;
  if (sink->sample() < 1.0 &&
      static_cast<double>(worker_.random() % 1'000'000) >= sink->sample() * 1'000'000) {
    return;
  }
  const config::AccessLog& config = worker_.current_->shared->config.access_log;
  std::span<const Field> fields = config.fields;
  const bool json = sink->json();
  const bool classic_text = !json && fields.empty();
  if (fields.empty()) fields = kDefaultFields;

  const uint64_t end_us = monotonicUs();
  const RequestState& rq = *rq_;
  char time[64];
  char digits[32];  // a number field's text, appended before the next field is made
  auto number = [&](const char* format, auto value) {
    int n = std::snprintf(digits, sizeof digits, format, value);
    return FieldValue{{digits, static_cast<size_t>(n)}, true};
  };
  std::string_view route = rq.route != nullptr ? std::string_view(rq.route->config->name) : "";
  // Only what this request reached is named: a request refused before dispatch has no upstream.
  const UpstreamRuntime* upstream =
      rq.upstream_chosen ? &rq.snap->shared->upstreams[rq.upstream_index] : nullptr;
  std::string_view endpoint;
  if (upstream != nullptr && !rq.echo && rq.upstream_start_us != 0) {
    endpoint = upstream->config->endpoints[rq.endpoint_index].text;
  }
  std::string_view consumer;
  if (rq.authenticated && rq.identity && rq.identity->consumer != nullptr) {
    consumer = rq.identity->consumer->name;
  }

  Buffer line(512);
  if (json) line.append('{');
  bool first = true;
  for (Field field : fields) {
    FieldValue value;
    switch (field) {
      case Field::Time:
        observability::formatUtcNow(time);
        value = {time};
        break;
      case Field::RequestId: value = {{rq.request_id, rq.request_id_len}}; break;
      case Field::TraceId: value = {rq.traced ? std::string_view(rq.trace_id, 32) : ""}; break;
      case Field::Client: value = {{peer_text_, peer_len_}}; break;
      case Field::Method: value = {rq.method}; break;
      case Field::Path: value = {rq.path}; break;
      case Field::Route: value = {route}; break;
      case Field::Upstream:
        value = {upstream != nullptr ? std::string_view(upstream->config->name) : ""};
        break;
      case Field::Endpoint: value = {endpoint}; break;
      case Field::Status: value = number("%d", rq.status); break;
      case Field::BytesIn:
        value = number("%llu", static_cast<unsigned long long>(rq.bytes_in));
        break;
      case Field::BytesOut:
        value = number("%llu", static_cast<unsigned long long>(rq.bytes_out));
        break;
      case Field::DurationMs: value = number("%.3f", millisBetween(rq.start_us, end_us)); break;
      case Field::UpstreamMs:
        value = number("%.3f", millisBetween(rq.upstream_start_us, rq.upstream_head_us));
        break;
      case Field::UpstreamConnectMs:
        value = number("%.3f", millisBetween(rq.upstream_start_us, rq.upstream_connected_us));
        break;
      case Field::UpstreamFirstByteMs:
        value = number("%.3f", millisBetween(rq.upstream_connected_us, rq.upstream_head_us));
        break;
      case Field::Consumer: value = {consumer}; break;
    }
    if (classic_text) continue;  // written below, in the classic layout
    if (!first) line.append(json ? ',' : ' ');
    first = false;
    if (json) {
      line.append('"');
      line.append(config::AccessLog::kFieldNames[static_cast<size_t>(field)]);
      line.append("\":");
      if (value.number) {
        line.append(value.text);
      } else {
        http::appendJsonString(value.text, line);
      }
    } else {
      line.append(value.text.empty() ? std::string_view("-") : value.text);
    }
  }
  if (classic_text) {
    // time client "METHOD path" status bytes duration route request-id [trace-id]
    observability::formatUtcNow(time);
    line.append(time);
    line.append(' ');
    line.append(std::string_view(peer_text_, peer_len_));
    line.append(" \"");
    line.append(rq.method);
    line.append(' ');
    line.append(rq.path);
    line.append("\" ");
    line.appendDecimal(static_cast<uint64_t>(rq.status));
    line.append(' ');
    line.appendDecimal(rq.bytes_out);
    line.append(' ');
    line.append(number("%.3fms", millisBetween(rq.start_us, end_us)).text);
    line.append(' ');
    line.append(route.empty() ? std::string_view("-") : route);
    line.append(' ');
    line.append(std::string_view(rq.request_id, rq.request_id_len));
    if (rq.traced) {
      line.append(' ');
      line.append(std::string_view(rq.trace_id, 32));
    }
  }
  if (json) line.append('}');
  line.append('\n');
  worker_.accessLogBuffer().append(line.view());
}

}  // namespace portico::proxy
