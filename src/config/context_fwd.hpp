#pragma once
// What a filter's config header names of the loader (config/loader_context.hpp), declared only:
// those headers are included by the config model, and stay light.

namespace portico::config::detail {
class Context;
struct Field;
struct Item;
}  // namespace portico::config::detail
