#include "filters/cors/config.hpp"

#include <algorithm>
#include <cctype>
#include <string_view>

#include "config/loader_context.hpp"
#include "config/values.hpp"
#include "http/header.hpp"

namespace portico::filters {
namespace {

using config::detail::Context;
using config::detail::Item;
using config::detail::quote;

constexpr std::string_view kCorsKeys[] = {"origins",        "methods",     "headers",
                                          "expose_headers", "credentials", "max_age"};
const config::detail::KeySet kCors{kCorsKeys, {}};

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), http::asciiLower);
  return out;
}

// An origin as browsers send it (RFC 6454 §6.2): scheme "://" host [":" port], nothing more.
std::optional<std::string> originProblem(std::string_view origin) {
  const size_t sep = origin.find("://");
  if (sep == std::string_view::npos || sep == 0) {
    return "needs a scheme, as in \"https://app.example.com\"";
  }
  std::string_view scheme = origin.substr(0, sep);
  if (!std::all_of(scheme.begin(), scheme.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
      })) {
    return "has an invalid scheme";
  }
  std::string_view authority = origin.substr(sep + 3);
  if (authority.empty()) return "has no host";
  if (authority.find_first_of("/?#") != std::string_view::npos) {
    return "must not have a path, query or fragment (an origin is scheme://host[:port])";
  }
  if (authority.find_first_of("@ \t\"\\") != std::string_view::npos) {
    return "has an invalid host";
  }
  return std::nullopt;
}

void readOrigins(Context& ctx, const Item& item, CorsConfig& cors) {
  for (const Item& entry : ctx.readList(item, true)) {
    auto text = ctx.text(entry);
    if (!text) continue;
    if (*text == "*") {
      cors.any_origin = true;
      continue;
    }
    if (auto problem = originProblem(*text)) {
      ctx.error(ctx.pos(entry), "cors origin " + quote(*text) + " " + *problem);
      continue;
    }
    std::string origin = lowercase(*text);
    if (std::find(cors.origins.begin(), cors.origins.end(), origin) == cors.origins.end()) {
      cors.origins.push_back(std::move(origin));
    }
  }
}

// Methods and header names are tokens; anything else could break the fields they are sent in.
void readTokens(Context& ctx, const Item& item, std::string_view what, bool upper,
                std::vector<std::string>& out) {
  for (const Item& entry : ctx.readList(item, true)) {
    auto text = ctx.text(entry);
    if (!text) continue;
    if (!config::detail::isToken(*text)) {
      ctx.error(ctx.pos(entry), "invalid " + std::string(what) + " " + quote(*text) + " in cors");
      continue;
    }
    std::string value = *text;
    if (upper) {
      std::transform(value.begin(), value.end(), value.begin(),
                     [](char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c; });
    }
    if (std::find(out.begin(), out.end(), value) == out.end()) out.push_back(std::move(value));
  }
}

}  // namespace

std::optional<CorsConfig> parseCors(Context& ctx, const Item& item) {
  const size_t errors = ctx.errorCount();
  config::detail::MapFields map = ctx.readMap(item, "cors", &kCors);
  if (!map.valid) return std::nullopt;
  ctx.requireKey(map, "origins", "cors");
  CorsConfig cors;
  if (const auto* f = map.find("origins")) readOrigins(ctx, f->item(), cors);
  if (const auto* f = map.find("methods")) {
    readTokens(ctx, f->item(), "method", true, cors.methods);
  } else {
    cors.methods = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"};
  }
  if (const auto* f = map.find("headers")) {
    readTokens(ctx, f->item(), "header", false, cors.headers);
  }
  if (const auto* f = map.find("expose_headers")) {
    readTokens(ctx, f->item(), "header", false, cors.expose_headers);
  }
  if (const auto* f = map.find("credentials")) {
    cors.credentials = ctx.boolean(f->item()).value_or(false);
  }
  if (const auto* f = map.find("max_age")) {
    if (auto age = ctx.duration(f->item(), false)) {
      cors.max_age_seconds = static_cast<uint64_t>(age->count() / 1000);
    }
  }
  if (ctx.errorCount() != errors) return std::nullopt;
  return cors;
}

}  // namespace portico::filters
