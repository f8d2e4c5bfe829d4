#pragma once
// A route's `auth` (public, or the auth providers of which any one authenticates) and
// `authorize` (scopes, groups, claims), as the loader hands them to the auth filter. The
// providers themselves are the `auth_providers` section's (config/loader_auth.cpp).

#include <map>
#include <string>

#include "config/context_fwd.hpp"
#include "config/model.hpp"

namespace portico::filters {

// `auth: public` or `auth: [provider, ...]`, each an entry of `providers`.
void parseRouteAuth(config::detail::Context& ctx, const config::detail::Item& item,
                    const std::map<std::string, config::AuthProvider>& providers,
                    config::Route& route);
// `authorize: {scopes, groups, claims}`; only on a route with providers.
void parseRouteAuthorize(config::detail::Context& ctx, const config::detail::Field& field,
                         config::Route& route);

}  // namespace portico::filters
