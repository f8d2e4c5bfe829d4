#pragma once
// ${NAME} and ${NAME:-default} substitution in config scalars (SPEC §3).

#include <string>
#include <string_view>
#include <vector>

#include "config/loader.hpp"

namespace portico::config::detail {

// Returns `text` with every reference replaced. A reference to an unset variable without a
// default, or a malformed reference, appends a message to `problems` and expands to "".
// Values are inserted as they are: a "${" inside a variable's value is not expanded again.
std::string expandEnv(std::string_view text, const EnvLookup& env,
                      std::vector<std::string>& problems);

}  // namespace portico::config::detail
