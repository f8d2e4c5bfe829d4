#include "filters/headers/config.hpp"

#include <algorithm>
#include <string_view>

#include "config/loader_context.hpp"
#include "config/values.hpp"

namespace portico::filters {
namespace {

using config::detail::Context;
using config::detail::Field;
using config::detail::Item;
using config::detail::KeySet;
using config::detail::lowercase;
using config::detail::MapFields;
using config::detail::quote;

constexpr std::string_view kHeadersKeys[] = {"request", "response"};
constexpr std::string_view kEditKeys[] = {"set", "remove"};
const KeySet kHeaders{kHeadersKeys, {}};
const KeySet kEdits{kEditKeys, {}};

bool hasControlBreak(std::string_view value) {
  return value.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

bool checkSettable(Context& ctx, const Field& h, bool response) {
  if (!config::detail::isToken(h.key)) {
    ctx.error(h.key_pos, "invalid header name " + quote(h.key));
    return false;
  }
  std::string lower = lowercase(h.key);
  const auto& hop = config::detail::kHopByHop;
  if (std::find(std::begin(hop), std::end(hop), lower) != std::end(hop)) {
    ctx.error(h.key_pos, "cannot set hop-by-hop header " + quote(h.key));
    return false;
  }
  // The gateway frames every message itself; a configured length would desynchronize it.
  if (lower == "content-length") {
    ctx.error(h.key_pos, "cannot set " + quote(h.key) + " (the gateway computes it)");
    return false;
  }
  if (response && lower == "host") {
    ctx.error(h.key_pos, "cannot set " + quote(h.key) + " in response headers");
    return false;
  }
  return true;
}

void parseSet(Context& ctx, const Item& item, const std::string& where, bool response,
              HeaderEdits& edits) {
  MapFields set = ctx.readMap(item, where + ".set", nullptr);
  std::vector<std::string> seen;
  for (const Field& h : set.fields) {
    if (!checkSettable(ctx, h, response)) continue;
    std::string lower = lowercase(h.key);
    if (std::find(seen.begin(), seen.end(), lower) != seen.end()) {
      ctx.error(h.key_pos, "header " + quote(h.key) + " is set twice");
      continue;
    }
    seen.push_back(lower);
    auto value = ctx.text(h.item());
    if (!value) continue;
    if (hasControlBreak(*value)) {
      ctx.error(ctx.pos(h.item()),
                "invalid value for header " + quote(h.key) + " (must not contain CR, LF or NUL)");
      continue;
    }
    edits.set.emplace_back(std::string(h.key), std::move(*value));
  }
}

void parseRemove(Context& ctx, const Item& item, HeaderEdits& edits) {
  for (const Item& entry : ctx.readList(item, false)) {
    auto name = ctx.text(entry);
    if (!name) continue;
    if (!config::detail::isToken(*name)) {
      ctx.error(ctx.pos(entry), "invalid header name " + quote(*name));
      continue;
    }
    std::string lower = lowercase(*name);
    if (std::find(edits.remove.begin(), edits.remove.end(), lower) == edits.remove.end()) {
      edits.remove.push_back(std::move(lower));
    }
  }
}

void parseEdits(Context& ctx, const Item& item, const std::string& where, bool response,
                HeaderEdits& edits) {
  MapFields map = ctx.readMap(item, where, &kEdits);
  if (const Field* f = map.find("set")) parseSet(ctx, f->item(), where, response, edits);
  if (const Field* f = map.find("remove")) parseRemove(ctx, f->item(), edits);
}

}  // namespace

void parseHeaders(Context& ctx, const Item& item, HeaderEdits& request, HeaderEdits& response) {
  MapFields headers = ctx.readMap(item, "headers", &kHeaders);
  if (const Field* r = headers.find("request")) {
    parseEdits(ctx, r->item(), "headers.request", false, request);
  }
  if (const Field* r = headers.find("response")) {
    parseEdits(ctx, r->item(), "headers.response", true, response);
  }
}

}  // namespace portico::filters
