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

CorsFilter::CorsFilter(CorsConfig config) : config_(std::move(config)) {
  // Fixed for the route: built once here, appended as they are per request.
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

bool CorsFilter::allowsOrigin(std::string_view origin) const {
  // "null" (sandboxed documents, file: pages) is never covered by "*": any page can send it.
  if (config_.any_origin && origin != "null") return true;
  return std::any_of(
      config_.origins.begin(), config_.origins.end(),
      [&](const std::string& allowed) { return http::equalsIgnoreCase(allowed, origin); });
}

bool CorsFilter::allowsMethod(std::string_view method) const {
  return std::find(config_.methods.begin(), config_.methods.end(), method) != config_.methods.end();
}

std::optional<Reply> CorsFilter::onRequestHead(const RequestInfo& request,
                                               std::string& response_headers) const {
  const http::HeaderField* origin = http::findHeader(request.headers, "origin");
  if (origin == nullptr) return std::nullopt;
  // The answer depends on Origin whether or not it is allowed: caches must keep them apart.
  response_headers.append("Vary: Origin\r\n");
  const bool allowed = allowsOrigin(origin->value);
  std::string_view preflight = http::preflightMethod(request.method, request.headers);
  if (preflight.empty()) {
    if (allowed) {
      appendField(response_headers, "Access-Control-Allow-Origin", origin->value);
      response_headers.append(response_fields_);
    }
    return std::nullopt;
  }
  if (allowed && allowsMethod(preflight)) {
    appendField(response_headers, "Access-Control-Allow-Origin", origin->value);
    response_headers.append(preflight_fields_);
    if (config_.headers.empty()) {
      const http::HeaderField* asked =
          http::findHeader(request.headers, "access-control-request-headers");
      if (asked != nullptr && !asked->value.empty()) {
        appendField(response_headers, "Access-Control-Allow-Headers", asked->value);
      }
    }
  }
  return Reply{.empty_status = 204};
}

}  // namespace portico::filters
