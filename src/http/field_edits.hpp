#pragma once
// Edits of a header section on its way through the gateway: names to drop and whole lines to
// add. Filters make them (filters/headers); the request and response heads are written with
// them applied.

#include <string>
#include <vector>

namespace portico::http {

struct FieldEdits {
  std::vector<std::string> drop;  // lowercased, sorted: removed (and every name set below)
  std::string add;                // "Name: value\r\n" lines
  bool sets_host = false;         // `add` has a Host line: the gateway writes none of its own
};

}  // namespace portico::http
