#include "filters/cors/cors.hpp"

#include <algorithm>

namespace portico::filters {
namespace {

void appendList(std::string& out, std::string_view name, const std::vector<std::string>& values) {
  if (values.empty()) return;
  out.append(name);
  out.append(": ");
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.append(", ");
    out.append(values[i]);
  }
  out.append("\r\n");
}

void appendField(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
}

}  // namespace

CorsFactory::CorsFactory(CorsConfig config) : config_(std::move(config)) {
  appendList(preflight_fields_, "Access-Control-Allow-Methods", config_.methods);
  appendList(preflight_fields_, "Access-Control-Allow-Headers", config_.headers);
  if (config_.max_age_seconds) {
    appendField(preflight_fields_, "Access-Control-Max-Age",
                std::to_string(*config_.max_age_seconds));
  }
  if (config_.credentials) {
    appendField(preflight_fields_, "Access-Control-Allow-Credentials", "true");
    appendField(response_fields_, "Access-Control-Allow-Credentials", "true");
  }
  appendList(response_fields_, "Access-Control-Expose-Headers", config_.expose_headers);
}

Filter& CorsFactory::create(Arena& arena) const { return arena.make<CorsFilter>(*this, arena); }

bool CorsFactory::allowsOrigin(std::string_view origin) const {
  // "null" (sandboxed documents, file: pages) is never covered by "*": any page can send it.
  if (config_.any_origin && origin != "null") return true;
  return std::any_of(
      config_.origins.begin(), config_.origins.end(),
      [&](const std::string& allowed) { return http::equalsIgnoreCase(allowed, origin); });
}

bool CorsFactory::allowsMethod(std::string_view method) const {
  return std::find(config_.methods.begin(), config_.methods.end(), method) != config_.methods.end();
}

std::string_view CorsFilter::keep(std::string_view text) {
  std::span<char> copy = arena_.array<char>(text.size());
  std::copy(text.begin(), text.end(), copy.begin());
  return {copy.data(), copy.size()};
}

FilterStatus CorsFilter::onRequestHeaders(FilterCallbacks& stream, const RequestInfo& request) {
  const http::HeaderField* origin = http::findHeader(request.headers, "origin");
  if (origin == nullptr) return Continue;
  const bool allowed = policy_.allowsOrigin(origin->value);
  answer_ = allowed ? Answer::Allowed : Answer::Refused;
  if (allowed) origin_ = keep(origin->value);
  std::string_view preflight = http::preflightMethod(request.method, request.headers);
  if (preflight.empty()) return Continue;
  if (allowed && policy_.allowsMethod(preflight)) {
    answer_ = Answer::PreflightAllowed;
    const http::HeaderField* asked =
        http::findHeader(request.headers, "access-control-request-headers");
    if (!policy_.listsHeaders() && asked != nullptr) asked_headers_ = keep(asked->value);
  } else {
    answer_ = Answer::Refused;
  }
  stream.reply({.empty_status = 204});
  return Replied;
}

FilterStatus CorsFilter::onResponseHeaders(FilterCallbacks&, ResponseInfo& response) {
  if (answer_ == Answer::None) return Continue;
  std::string& out = response.added_fields;
  // The answer depends on Origin whether or not it is allowed: caches must keep them apart.
  out.append("Vary: Origin\r\n");
  if (answer_ == Answer::Refused) return Continue;
  appendField(out, "Access-Control-Allow-Origin", origin_);
  if (answer_ == Answer::Allowed) {
    out.append(policy_.responseFields());
    return Continue;
  }
  out.append(policy_.preflightFields());
  if (!asked_headers_.empty()) appendField(out, "Access-Control-Allow-Headers", asked_headers_);
  return Continue;
}

}  // namespace portico::filters
