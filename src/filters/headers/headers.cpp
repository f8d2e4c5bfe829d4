#include "filters/headers/headers.hpp"

#include <algorithm>

#include "http/header.hpp"

namespace portico::filters {
namespace {

http::FieldEdits compile(const HeaderEdits& edits) {
  http::FieldEdits out;
  out.drop = edits.remove;
  for (const auto& [name, value] : edits.set) {
    std::string lower(name);
    std::transform(lower.begin(), lower.end(), lower.begin(), http::asciiLower);
    if (lower == "host") out.sets_host = true;
    out.drop.push_back(std::move(lower));
    out.add.append(name).append(": ").append(value).append("\r\n");
  }
  std::sort(out.drop.begin(), out.drop.end());
  out.drop.erase(std::unique(out.drop.begin(), out.drop.end()), out.drop.end());
  return out;
}

}  // namespace

bool hasHeaderEdits(const config::Route& route) {
  return !route.request_headers.set.empty() || !route.request_headers.remove.empty() ||
         !route.response_headers.set.empty() || !route.response_headers.remove.empty();
}

HeadersFactory::HeadersFactory(const HeaderEdits& request,
                               const HeaderEdits& response)
    : request_(compile(request)), response_(compile(response)) {}

Filter& HeadersFactory::create(Arena& arena) const { return arena.make<HeadersFilter>(*this); }

FilterStatus HeadersFilter::onRequestHeaders(FilterCallbacks& stream, const RequestInfo&) {
  if (StreamEnvironment* env = stream.environment()) env->editUpstreamRequest(route_.request());
  return Continue;
}

FilterStatus HeadersFilter::onResponseHeaders(FilterCallbacks&, ResponseInfo& response) {
  if (!response.from_upstream) return Continue;
  response.dropped = &route_.response().drop;
  response.added_fields.append(route_.response().add);
  return Continue;
}

}  // namespace portico::filters
