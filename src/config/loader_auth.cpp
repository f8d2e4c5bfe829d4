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

constexpr std::string_view kProviderTypes[] = {"jwt", "api_key", "mtls"};
constexpr std::string_view kUnsupportedTypes[] = {"oauth2_introspection"};

constexpr std::string_view kJwtKeys[] = {"type",          "issuer",    "audiences", "algorithms",
                                         "secret",        "secret_base64", "jwks_file",
                                         "token_from",    "leeway",    "require_exp",
                                         "forward_claims"};
constexpr std::string_view kJwtUnsupported[] = {"jwks_url", "refresh"};
constexpr std::string_view kApiKeyKeys[] = {"type", "from"};
constexpr std::string_view kMtlsKeys[] = {"type"};
constexpr std::string_view kConsumerKeys[] = {"name",         "groups",       "api_keys",
                                              "api_key_sha256", "jwt_subjects", "mtls_subjects"};
constexpr std::string_view kConsumerUnsupported[] = {"basic_auth", "plan"};

const KeySet kJwt{kJwtKeys, kJwtUnsupported};
const KeySet kApiKey{kApiKeyKeys, {}};
const KeySet kMtls{kMtlsKeys, {}};
const KeySet kConsumer{kConsumerKeys, kConsumerUnsupported};

// RFC 7518 §3.1 and RFC 8037 §3.1. "none" is absent on purpose.
constexpr std::string_view kAlgorithms[] = {"HS256", "HS384", "HS512", "RS256", "RS384",
                                            "RS512", "PS256", "PS384", "PS512", "ES256",
                                            "ES384", "ES512", "EdDSA"};

constexpr std::string_view kSourceForms =
    "use header:NAME, header:NAME:PREFIX, cookie:NAME or query:NAME";

bool isHmac(std::string_view alg) { return alg.starts_with("HS"); }

// RFC 7518 §3.2: an HMAC key must be at least as long as the hash output.
size_t minimumSecretBytes(std::string_view alg) {
  return alg == "HS512" ? 64 : alg == "HS384" ? 48 : 32;
}

int base64Value(char c) {
  if (c >= 'A' && c <= 'Z') {
    return c - 'A';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 26;
  }
  if (c >= '0' && c <= '9') {
    return c - '0' + 52;
  }
  if (c == '+' || c == '-') {
    return 62;
  }
  if (c == '/' || c == '_') {
    return 63;
  }
  return -1;
}

// Standard (RFC 4648 §4) or url-safe (§5) base64, '=' padding optional.
std::optional<std::string> decodeBase64(std::string_view in) {
  while (!in.empty() && in.back() == '=') {
    in.remove_suffix(1);
  }
  if (in.size() % 4 == 1) {
    return std::nullopt;
  }
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t bits = 0;
  int count = 0;
  for (char c : in) {
    int v = base64Value(c);
    if (v < 0) {
      return std::nullopt;
    }
    bits = (bits << 6) | static_cast<uint32_t>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<char>((bits >> count) & 0xFF));
    }
  }
  // Leftover bits must be zero, so one secret has one spelling.
  if ((bits & ((1u << count) - 1)) != 0) {
    return std::nullopt;
  }
  return out;
}

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

  std::vector<Consumer> parseConsumers(const Item& item) {
    std::vector<Consumer> out;
    std::unordered_map<std::string, Position> names;
    // Key (or hex digest) -> the consumer that has it; keys are secrets, messages never show them.
    std::unordered_map<std::string, std::string> keys;
    std::unordered_map<std::string, std::string> digests;
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
      if (const Field* f = map.find("jwt_subjects")) {
        ctx_.readStrings(f->item(), consumer.jwt_subjects);
      }
      if (const Field* f = map.find("mtls_subjects")) {
        ctx_.readStrings(f->item(), consumer.mtls_subjects);
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
      parseJwt(ctx_.readMap(entry.item(), context, &kJwt), context, provider.jwt);
    } else if (*value == "api_key") {
      provider.type = AuthProvider::Type::ApiKey;
      parseApiKey(ctx_.readMap(entry.item(), context, &kApiKey), provider.api_key);
    } else if (*value == "mtls") {
      provider.type = AuthProvider::Type::Mtls;
      ctx_.readMap(entry.item(), context, &kMtls);
    } else if (std::find(std::begin(kUnsupportedTypes), std::end(kUnsupportedTypes), *value) !=
               std::end(kUnsupportedTypes)) {
      ctx_.error(ctx_.pos(type->item()),
                 quote(*value) + " is not supported yet by this version of portico (use " +
                     joinChoices(kProviderTypes) + ")");
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

  void parseSources(const Item& item, std::vector<CredentialSource>& out) {
    for (const Item& entry : ctx_.readList(item, true)) {
      auto text = ctx_.text(entry);
      if (!text) {
        continue;
      }
      CredentialSource source;
      if (auto problem = parseCredentialSource(*text, source)) {
        ctx_.error(ctx_.pos(entry), *problem);
        continue;
      }
      out.push_back(std::move(source));
    }
  }

  void parseApiKey(const MapFields& map, ApiKeyProviderConfig& config) {
    if (const Field* f = map.find("from")) {
      parseSources(f->item(), config.from);
    } else {
      config.from.push_back(CredentialSource{CredentialSource::Kind::Header, "x-api-key", ""});
    }
  }

  // The algorithms, or nullopt when one of them was refused.
  std::optional<std::vector<std::string>> parseAlgorithms(const Item& item) {
    std::vector<std::string> out;
    bool ok = true;
    std::vector<Item> entries = ctx_.readList(item, true);
    if (entries.empty()) {
      return std::nullopt;
    }
    for (const Item& entry : entries) {
      auto alg = ctx_.text(entry);
      if (!alg) {
        ok = false;
        continue;
      }
      if (std::find(std::begin(kAlgorithms), std::end(kAlgorithms), *alg) != std::end(kAlgorithms)) {
        if (std::find(out.begin(), out.end(), *alg) == out.end()) {
          out.push_back(std::move(*alg));
        }
        continue;
      }
      ok = false;
      if (lowercase(*alg) == "none") {
        // RFC 8725 §3.1: an unsigned token must never be accepted as authenticated.
        ctx_.error(ctx_.pos(entry), "algorithm " + quote(*alg) + " is never accepted");
        continue;
      }
      std::string message = "unknown algorithm " + quote(*alg);
      if (auto suggestion = closestMatch(*alg, kAlgorithms)) {
        message += " (did you mean " + quote(*suggestion) + "?)";
      } else {
        message += " (use " + joinChoices(kAlgorithms) + ")";
      }
      ctx_.error(ctx_.pos(entry), std::move(message));
    }
    if (!ok) {
      return std::nullopt;
    }
    return out;
  }

  // The file's contents; relative paths start from the config file's folder.
  // On failure, `error` receives errno.
  std::optional<std::string> readJwksFile(const std::string& path, int& error) {
    std::string text;
    error = readWholeFile(resolveConfigPath(ctx_, path), text);
    if (error != 0) {
      return std::nullopt;
    }
    return text;
  }

  void parseJwt(const MapFields& map, const std::string& context, JwtProviderConfig& config) {
    if (!map.valid) {
      return;
    }
    if (const Field* f = map.find("issuer")) {
      config.issuer = ctx_.text(f->item()).value_or("");
    }
    if (const Field* f = map.find("audiences")) {
      ctx_.readStrings(f->item(), config.audiences);
    }
    std::optional<std::vector<std::string>> algorithms;
    const Field* algorithms_field = map.find("algorithms");
    if (algorithms_field != nullptr) {
      algorithms = parseAlgorithms(algorithms_field->item());
      config.algorithms = algorithms.value_or(std::vector<std::string>{});
    } else {
      ctx_.requireKey(map, "algorithms", context);
    }

    // The key: exactly one of secret, secret_base64, jwks_file.
    const Field* key = nullptr;
    bool key_ok = false;
    for (const Field& f : map.fields) {
      if (f.key != "secret" && f.key != "secret_base64" && f.key != "jwks_file") {
        continue;
      }
      if (key != nullptr) {
        ctx_.error(f.key_pos, quote(f.key) + " cannot be combined with " + quote(key->key) +
                                  " (use one of them)");
        key_ok = false;
        continue;
      }
      key = &f;
      key_ok = parseKey(f, config);
    }
    if (key == nullptr) {
      if (!map.unsupported_seen) {  // e.g. jwks_url, already refused
        ctx_.error(map.pos, context +
                                " needs a key: \"secret\", \"secret_base64\" or \"jwks_file\"");
      }
    } else if (key_ok && algorithms && !algorithms->empty()) {
      checkKeyFitsAlgorithms(*key, config, *algorithms);
    }

    if (const Field* f = map.find("token_from")) {
      parseSources(f->item(), config.token_from);
    } else {
      config.token_from.push_back(
          CredentialSource{CredentialSource::Kind::Header, "authorization", "Bearer"});
    }
    if (const Field* f = map.find("leeway")) {
      config.leeway = ctx_.duration(f->item(), false).value_or(config.leeway);
    }
    if (const Field* f = map.find("require_exp")) {
      config.require_exp = ctx_.boolean(f->item()).value_or(config.require_exp);
    }
    if (const Field* f = map.find("forward_claims")) {
      parseForwardClaims(f->item(), config.forward_claims);
    }
  }

  bool parseKey(const Field& f, JwtProviderConfig& config) {
    auto text = ctx_.text(f.item());
    if (!text) {
      return false;
    }
    Position at = ctx_.pos(f.item());
    if (text->empty()) {
      ctx_.error(at, quote(f.key) + " must not be empty");
      return false;
    }
    if (f.key == "secret") {
      config.secret = std::move(*text);
      return true;
    }
    if (f.key == "secret_base64") {
      auto decoded = decodeBase64(*text);
      if (!decoded) {
        ctx_.error(at, "invalid base64 in \"secret_base64\"");
        return false;
      }
      config.secret = std::move(*decoded);
      return true;
    }
    int error = 0;
    auto contents = readJwksFile(*text, error);
    if (!contents) {
      ctx_.error(at, "cannot read jwks_file " + quote(*text) + ": " + std::strerror(error));
      return false;
    }
    config.jwks_file = std::move(*text);
    config.jwks_text = std::move(*contents);
    return true;
  }

  void checkKeyFitsAlgorithms(const Field& key, const JwtProviderConfig& config,
                              const std::vector<std::string>& algorithms) {
    bool any_hmac = std::any_of(algorithms.begin(), algorithms.end(), isHmacName);
    bool any_public = !std::all_of(algorithms.begin(), algorithms.end(), isHmacName);
    if (key.key == "jwks_file") {
      if (!any_public) {
        ctx_.error(key.key_pos,
                   "\"jwks_file\" holds public keys, but \"algorithms\" lists only HMAC "
                   "algorithms (use \"secret\" or \"secret_base64\" for HS256, HS384 and HS512)");
      }
      return;
    }
    if (!any_hmac) {
      ctx_.error(key.key_pos, quote(key.key) +
                                  " is a shared secret for HS256, HS384 and HS512, but "
                                  "\"algorithms\" lists none of them (use \"jwks_file\" for RS, "
                                  "PS, ES and EdDSA keys)");
      return;
    }
    size_t needed = 0;
    std::string_view strictest;
    for (const std::string& alg : algorithms) {
      if (isHmac(alg) && minimumSecretBytes(alg) > needed) {
        needed = minimumSecretBytes(alg);
        strictest = alg;
      }
    }
    if (config.secret.size() < needed) {
      ctx_.error(ctx_.pos(key.item()),
                 "the secret is " + std::to_string(config.secret.size()) + " bytes, " +
                     std::string(strictest) + " needs at least " + std::to_string(needed) +
                     " (RFC 7518 §3.2: the key must be at least the hash size)");
    }
  }

  static bool isHmacName(const std::string& alg) { return isHmac(alg); }

  void parseForwardClaims(const Item& item, std::vector<std::pair<std::string, std::string>>& out) {
    MapFields map = ctx_.readMap(item, "forward_claims", nullptr);
    std::vector<std::string> headers;
    for (const Field& f : map.fields) {
      if (f.key.empty()) {
        ctx_.error(f.key_pos, "empty claim name in forward_claims");
        continue;
      }
      auto header = ctx_.text(f.item());
      if (!header) {
        continue;
      }
      Position at = ctx_.pos(f.item());
      if (!isToken(*header)) {
        ctx_.error(at, "invalid header name " + quote(*header));
        continue;
      }
      std::string lower = lowercase(*header);
      if (std::find(std::begin(kHopByHop), std::end(kHopByHop), lower) != std::end(kHopByHop)) {
        ctx_.error(at, "cannot forward a claim in hop-by-hop header " + quote(*header));
        continue;
      }
      if (lower == "host" || lower == "content-length") {
        ctx_.error(at, "cannot forward a claim in " + quote(*header));
        continue;
      }
      if (std::find(headers.begin(), headers.end(), lower) != headers.end()) {
        ctx_.error(at, "header " + quote(*header) + " is used by two claims");
        continue;
      }
      headers.push_back(std::move(lower));
      out.emplace_back(std::string(f.key), std::move(*header));
    }
  }

  Context& ctx_;
};

}  // namespace

std::map<std::string, AuthProvider> parseAuthProviders(Context& ctx, const Item& item) {
  return AuthParser(ctx).parseProviders(item);
}

std::vector<Consumer> parseConsumers(Context& ctx, const Item& item) {
  return AuthParser(ctx).parseConsumers(item);
}

}  // namespace portico::config::detail
