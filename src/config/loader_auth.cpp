// The `auth_providers` and `consumers` sections (SPEC §3). Providers are parsed before routes,
// which name them in `auth`. Key material is checked here, at load, so that a provider which
// could never verify a token (a secret too short for its algorithm, a secret for RS256 only, "none"
// allowed) is refused with the line at fault rather than failing every request later.

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/loader_context.hpp"
#include "config/values.hpp"
#include "core/file.hpp"

namespace portico::config::detail {
namespace {

constexpr std::string_view kProviderTypes[] = {"jwt", "api_key", "mtls", "basic",
                                               "oauth2_introspection"};

constexpr std::string_view kApiKeyKeys[] = {"type", "from"};
constexpr std::string_view kMtlsKeys[] = {"type"};
constexpr std::string_view kBasicKeys[] = {"type", "realm"};
constexpr std::string_view kIntrospectionKeys[] = {
    "type",    "endpoint",  "endpoint_ca",        "client_id", "client_secret",
    "timeout", "cache_ttl", "negative_cache_ttl", "token_from", "insecure"};
constexpr std::string_view kBasicAuthKeys[] = {"username", "password_hash"};
constexpr std::string_view kConsumerKeys[] = {"name",          "groups",        "api_keys",
                                              "api_key_sha256", "jwt_subjects",  "mtls_subjects",
                                              "basic_auth",    "plan"};

const KeySet kApiKey{kApiKeyKeys, {}};
const KeySet kMtls{kMtlsKeys, {}};
const KeySet kBasic{kBasicKeys, {}};
const KeySet kIntrospection{kIntrospectionKeys, {}};
const KeySet kBasicAuth{kBasicAuthKeys, {}};

// crypt(3) hashes libxcrypt verifies: bcrypt, yescrypt, sha512-crypt, sha256-crypt.
bool isCryptHash(std::string_view hash) {
  for (std::string_view prefix : {"$2a$", "$2b$", "$2y$", "$y$", "$6$", "$5$", "$gy$"}) {
    if (hash.starts_with(prefix) && hash.size() > prefix.size() + 8) return true;
  }
  return false;
}
const KeySet kConsumer{kConsumerKeys, {}};

constexpr std::string_view kSourceForms =
    "use header:NAME, header:NAME:PREFIX, cookie:NAME or query:NAME";

std::optional<std::array<uint8_t, 32>> decodeSha256Hex(std::string_view hex) {
  if (hex.size() != 64) {
    return std::nullopt;
  }
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') {
      return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
      return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
      return c - 'A' + 10;
    }
    return -1;
  };
  std::array<uint8_t, 32> out{};
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = nibble(hex[2 * i]);
    int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return std::nullopt;
    }
    out[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return out;
}

// "header:NAME", "header:NAME:PREFIX", "cookie:NAME", "query:NAME".
Problem parseCredentialSource(std::string_view text, CredentialSource& out) {
  const std::string invalid = "invalid credential source " + quote(text) + " (" +
                              std::string(kSourceForms) + ")";
  size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    return invalid;
  }
  std::string_view kind = text.substr(0, colon);
  std::string_view rest = text.substr(colon + 1);
  if (kind == "header") {
    std::string_view name = rest;
    std::string_view prefix;
    if (size_t second = rest.find(':'); second != std::string_view::npos) {
      name = rest.substr(0, second);
      prefix = rest.substr(second + 1);
      if (!isToken(prefix)) {
        return "invalid prefix " + quote(prefix) + " in credential source " + quote(text) +
               " (a word such as Bearer)";
      }
    }
    if (!isToken(name)) {
      return "invalid header name " + quote(name) + " in credential source " + quote(text);
    }
    out.kind = CredentialSource::Kind::Header;
    out.name = lowercase(name);
    out.prefix = std::string(prefix);
    return std::nullopt;
  }
  if (kind == "cookie" || kind == "query") {
    // Cookie names are tokens (RFC 6265 §4.1.1); query names are kept as written.
    bool ok = kind == "cookie" ? isToken(rest) : !rest.empty();
    if (!ok) {
      return "invalid " + std::string(kind) + " name " + quote(rest) + " in credential source " +
             quote(text);
    }
    out.kind = kind == "cookie" ? CredentialSource::Kind::Cookie : CredentialSource::Kind::Query;
    out.name = std::string(rest);
    return std::nullopt;
  }
  return invalid;
}

class AuthParser {
 public:
  explicit AuthParser(Context& ctx) : ctx_(ctx) {}

  std::map<std::string, AuthProvider> parseProviders(const Item& item) {
    std::map<std::string, AuthProvider> out;
    MapFields map = ctx_.readMap(item, "auth_providers", nullptr);
    for (const Field& entry : map.fields) {
      AuthProvider provider;
      provider.name = std::string(entry.key);
      if (!isPlainName(provider.name)) {
        ctx_.error(entry.key_pos, "invalid auth provider name " + quote(provider.name) +
                                      " (use letters, digits, '_', '-' and '.')");
      }
      parseProvider(entry, provider);
      // Kept even when broken, so routes naming it do not add "unknown auth provider".
      out.emplace(provider.name, std::move(provider));
    }
    return out;
  }

  std::vector<Consumer> parseConsumers(const Item& item, const std::map<std::string, Plan>& plans) {
    std::vector<Consumer> out;
    std::unordered_map<std::string, Position> names;
    // Key (or hex digest) -> the consumer that has it; keys are secrets, messages never show them.
    std::unordered_map<std::string, std::string> keys;
    std::unordered_map<std::string, std::string> digests;
    std::unordered_map<std::string, std::string> usernames;
    for (const Item& entry : ctx_.readList(item, false)) {
      MapFields map = ctx_.readMap(entry, "consumer", &kConsumer);
      if (!map.valid) {
        continue;
      }
      ctx_.requireKey(map, "name", "consumer");
      Consumer consumer;
      if (const Field* f = map.find("name")) {
        if (auto name = ctx_.text(f->item())) {
          if (name->empty()) {
            ctx_.error(ctx_.pos(f->item()), "\"name\" must not be empty");
          } else if (!names.emplace(*name, ctx_.pos(f->item())).second) {
            ctx_.error(ctx_.pos(f->item()), "duplicate consumer name " + quote(*name));
          }
          consumer.name = std::move(*name);
        }
      }
      if (const Field* f = map.find("groups")) {
        ctx_.readStrings(f->item(), consumer.groups);
      }
      if (const Field* f = map.find("plan")) {
        if (auto plan = ctx_.text(f->item())) {
          if (plans.find(*plan) == plans.end()) {
            ctx_.error(ctx_.pos(f->item()),
                       "unknown plan " + quote(*plan) +
                           (plans.empty() ? " (define it under plans)" : ""));
          }
          consumer.plan = std::move(*plan);
        }
      }
      if (const Field* f = map.find("jwt_subjects")) {
        ctx_.readStrings(f->item(), consumer.jwt_subjects);
      }
      if (const Field* f = map.find("mtls_subjects")) {
        ctx_.readStrings(f->item(), consumer.mtls_subjects);
      }
      if (const Field* f = map.find("basic_auth")) {
        parseBasicAuth(f->item(), consumer, usernames);
      }
      if (const Field* f = map.find("api_keys")) {
        for (const Item& key_item : ctx_.readList(f->item(), false)) {
          auto key = ctx_.text(key_item);
          if (!key) {
            continue;
          }
          if (key->empty()) {
            ctx_.error(ctx_.pos(key_item), key_item.label() + " must not be empty");
            continue;
          }
          if (checkKeyOwner(keys, *key, consumer.name, ctx_.pos(key_item), "API key")) {
            consumer.api_keys.push_back(std::move(*key));
          }
        }
      }
      if (const Field* f = map.find("api_key_sha256")) {
        for (const Item& hex_item : ctx_.readList(f->item(), false)) {
          auto hex = ctx_.text(hex_item);
          if (!hex) {
            continue;
          }
          auto digest = decodeSha256Hex(*hex);
          if (!digest) {
            ctx_.error(ctx_.pos(hex_item), "invalid value " + quote(*hex) + " for " +
                                               hex_item.label() +
                                               " (use the 64 hex digits of a SHA-256 digest)");
            continue;
          }
          if (checkKeyOwner(digests, lowercase(*hex), consumer.name, ctx_.pos(hex_item),
                            "API key digest")) {
            consumer.api_key_sha256.push_back(*digest);
          }
        }
      }
      out.push_back(std::move(consumer));
    }
    return out;
  }

 private:
  // Records that `owner` holds `key`; false (with an error) when someone already does.
  bool checkKeyOwner(std::unordered_map<std::string, std::string>& owners, const std::string& key,
                     const std::string& owner, Position at, std::string_view what) {
    auto [it, inserted] = owners.emplace(key, owner);
    if (inserted) {
      return true;
    }
    if (it->second == owner) {
      ctx_.error(at, "the same " + std::string(what) + " is listed twice for consumer " +
                         quote(owner));
    } else {
      ctx_.error(at, "an " + std::string(what) + " of consumer " + quote(owner) +
                         " is also used by consumer " + quote(it->second) +
                         " (each key must name one consumer)");
    }
    return false;
  }

  void parseProvider(const Field& entry, AuthProvider& provider) {
    const std::string context = "auth provider " + quote(provider.name);
    // A first look without a key set: which keys are allowed depends on the type.
    MapFields raw = ctx_.readMap(entry.item(), context, nullptr);
    if (!raw.valid) {
      return;
    }
    const Field* type = raw.find("type");
    if (type == nullptr) {
      ctx_.requireKey(raw, "type", context);
      return;
    }
    auto value = ctx_.text(type->item());
    if (!value) {
      return;
    }
    if (*value == "jwt") {
      provider.type = AuthProvider::Type::Jwt;
      parseJwtProvider(ctx_, entry.item(), context, provider.jwt);
    } else if (*value == "api_key") {
      provider.type = AuthProvider::Type::ApiKey;
      parseApiKey(ctx_.readMap(entry.item(), context, &kApiKey), provider.api_key);
    } else if (*value == "mtls") {
      provider.type = AuthProvider::Type::Mtls;
      ctx_.readMap(entry.item(), context, &kMtls);
    } else if (*value == "basic") {
      provider.type = AuthProvider::Type::Basic;
      MapFields map = ctx_.readMap(entry.item(), context, &kBasic);
      if (const Field* f = map.find("realm")) {
        provider.basic.realm = ctx_.text(f->item()).value_or(provider.basic.realm);
        if (provider.basic.realm.find_first_of("\"\\\r\n") != std::string::npos) {
          ctx_.error(ctx_.pos(f->item()), "\"realm\" must not hold quotes, backslashes or "
                                          "line breaks");
        }
      }
    } else if (*value == "oauth2_introspection") {
      provider.type = AuthProvider::Type::Introspection;
      parseIntrospection(ctx_.readMap(entry.item(), context, &kIntrospection), context,
                         provider.introspection);
    } else {
      std::string message = "invalid value " + quote(*value) + " for \"type\" (use " +
                            joinChoices(kProviderTypes) + ")";
      if (auto suggestion = closestMatch(*value, kProviderTypes)) {
        message = "invalid value " + quote(*value) + " for \"type\" (did you mean " +
                  quote(*suggestion) + "?)";
      }
      ctx_.error(ctx_.pos(type->item()), std::move(message));
    }
  }

  void parseBasicAuth(const Item& item, Consumer& consumer,
                      std::unordered_map<std::string, std::string>& usernames) {
    MapFields map = ctx_.readMap(item, "basic_auth", &kBasicAuth);
    if (!map.valid) {
      return;
    }
    ctx_.requireKey(map, "username", "basic_auth");
    ctx_.requireKey(map, "password_hash", "basic_auth");
    if (const Field* f = map.find("username")) {
      auto name = ctx_.text(f->item());
      if (name && (name->empty() || name->find(':') != std::string::npos)) {
        ctx_.error(ctx_.pos(f->item()), "\"username\" must be non-empty, without ':' (RFC 7617)");
      } else if (name && checkKeyOwner(usernames, *name, consumer.name, ctx_.pos(f->item()),
                                       "basic_auth username")) {
        consumer.basic_username = std::move(*name);
      }
    }
    if (const Field* f = map.find("password_hash")) {
      auto hash = ctx_.text(f->item());
      if (hash && !isCryptHash(*hash)) {
        // Never echo it: it may be a password written where its hash belongs.
        ctx_.error(ctx_.pos(f->item()), "\"password_hash\" is not a crypt(3) hash (use bcrypt "
                                        "$2b$, yescrypt $y$ or sha512-crypt $6$, e.g. from "
                                        "mkpasswd or htpasswd -B)");
      } else if (hash) {
        consumer.basic_password_hash = std::move(*hash);
      }
    }
  }

  void parseIntrospection(const MapFields& map, const std::string& context,
                          IntrospectionProviderConfig& config) {
    if (!map.valid) {
      return;
    }
    ctx_.requireKey(map, "endpoint", context);
    ctx_.requireKey(map, "client_id", context);
    if (const Field* f = map.find("endpoint")) {
      auto url = ctx_.text(f->item());
      if (url && !url->starts_with("http://") && !url->starts_with("https://")) {
        ctx_.error(ctx_.pos(f->item()), "invalid value " + quote(*url) +
                                            " for \"endpoint\" (use an http:// or https:// URL)");
      } else if (url) {
        checkFetchUrl(ctx_, map, *f, *url);
        config.endpoint = std::move(*url);
      }
    }
    if (const Field* f = map.find("endpoint_ca")) {
      auto path = ctx_.text(f->item());
      std::string contents;
      if (path) {
        std::string full = resolveConfigPath(ctx_, *path);
        if (int error = readWholeFile(full, contents)) {
          ctx_.error(ctx_.pos(f->item()),
                     "cannot read endpoint_ca " + quote(*path) + ": " + std::strerror(error));
        } else {
          config.endpoint_ca = std::move(full);
        }
      }
    }
    if (const Field* f = map.find("client_id")) {
      config.client_id = ctx_.text(f->item()).value_or("");
    }
    if (const Field* f = map.find("client_secret")) {
      config.client_secret = ctx_.text(f->item()).value_or("");
    }
    if (const Field* f = map.find("timeout")) {
      config.timeout = ctx_.duration(f->item(), true).value_or(config.timeout);
    }
    if (const Field* f = map.find("cache_ttl")) {
      config.cache_ttl = ctx_.duration(f->item(), false).value_or(config.cache_ttl);
    }
    if (const Field* f = map.find("negative_cache_ttl")) {
      config.negative_cache_ttl =
          ctx_.duration(f->item(), false).value_or(config.negative_cache_ttl);
    }
    if (const Field* f = map.find("token_from")) {
      parseCredentialSources(ctx_, f->item(), config.token_from);
    } else {
      config.token_from.push_back(
          CredentialSource{CredentialSource::Kind::Header, "authorization", "Bearer"});
    }
  }

  void parseApiKey(const MapFields& map, ApiKeyProviderConfig& config) {
    if (const Field* f = map.find("from")) {
      parseCredentialSources(ctx_, f->item(), config.from);
    } else {
      config.from.push_back(CredentialSource{CredentialSource::Kind::Header, "x-api-key", ""});
    }
  }

  Context& ctx_;
};

}  // namespace

void parseCredentialSources(Context& ctx, const Item& item, std::vector<CredentialSource>& out) {
  for (const Item& entry : ctx.readList(item, true)) {
    auto text = ctx.text(entry);
    if (!text) {
      continue;
    }
    CredentialSource source;
    if (auto problem = parseCredentialSource(*text, source)) {
      ctx.error(ctx.pos(entry), *problem);
      continue;
    }
    out.push_back(std::move(source));
  }
}

std::map<std::string, AuthProvider> parseAuthProviders(Context& ctx, const Item& item) {
  return AuthParser(ctx).parseProviders(item);
}

std::vector<Consumer> parseConsumers(Context& ctx, const Item& item,
                                     const std::map<std::string, Plan>& plans) {
  return AuthParser(ctx).parseConsumers(item, plans);
}

}  // namespace portico::config::detail
