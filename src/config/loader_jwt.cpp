// auth_providers of type jwt (SPEC §3): algorithms, the key (a secret, a JWKS file or a JWKS
// URL fetched and refreshed at run time), the claims checks and forward_claims.

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "config/loader_context.hpp"
#include "config/values.hpp"
#include "core/file.hpp"

namespace portico::config::detail {
namespace {

constexpr std::string_view kJwtKeys[] = {
    "type",     "issuer",      "audiences", "algorithms", "secret",     "secret_base64",
    "jwks_file", "jwks_url",   "jwks_ca",   "refresh",    "token_from", "leeway",
    "require_exp", "forward_claims", "insecure"};
const KeySet kJwt{kJwtKeys, {}};

// RFC 7518 §3.1 and RFC 8037 §3.1. "none" is absent on purpose.
constexpr std::string_view kAlgorithms[] = {"HS256", "HS384", "HS512", "RS256", "RS384",
                                            "RS512", "PS256", "PS384", "PS512", "ES256",
                                            "ES384", "ES512", "EdDSA"};

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

class JwtParser {
 public:
  explicit JwtParser(Context& ctx) : ctx_(ctx) {}

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
      if (std::find(std::begin(kAlgorithms), std::end(kAlgorithms), *alg) !=
          std::end(kAlgorithms)) {
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

    // The key: exactly one of secret, secret_base64, jwks_file, jwks_url.
    const Field* key = nullptr;
    bool key_ok = false;
    for (const Field& f : map.fields) {
      if (f.key != "secret" && f.key != "secret_base64" && f.key != "jwks_file" &&
          f.key != "jwks_url") {
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
      ctx_.error(map.pos, context + " needs a key: \"secret\", \"secret_base64\", " +
                              "\"jwks_file\" or \"jwks_url\"");
    } else if (key_ok && algorithms && !algorithms->empty()) {
      checkKeyFitsAlgorithms(*key, config, *algorithms);
    }
    if (key != nullptr && key->key == "jwks_url" && key_ok) {
      checkFetchUrl(ctx_, map, *key, config.jwks_url);
    }

    parseJwksUrlOptions(map, config);
    if (const Field* f = map.find("token_from")) {
      parseCredentialSources(ctx_, f->item(), config.token_from);
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

  // refresh and jwks_ca belong to jwks_url.
  void parseJwksUrlOptions(const MapFields& map, JwtProviderConfig& config) {
    if (const Field* f = map.find("refresh")) {
      if (map.find("jwks_url") == nullptr) {
        ctx_.error(f->key_pos, "\"refresh\" needs \"jwks_url\" (it is how often the key set is "
                               "fetched again)");
      } else if (auto d = ctx_.duration(f->item(), true)) {
        if (d->count() < 1000) {
          ctx_.error(ctx_.pos(f->item()), "\"refresh\" must be at least 1s");
        } else {
          config.refresh = *d;
        }
      }
    }
    if (const Field* f = map.find("jwks_ca")) {
      if (!config.jwks_url.starts_with("https://")) {
        ctx_.error(f->key_pos, "\"jwks_ca\" needs an https \"jwks_url\"");
      } else if (auto path = ctx_.text(f->item())) {
        std::string full = resolveConfigPath(ctx_, *path);
        std::string contents;
        if (int error = readWholeFile(full, contents)) {
          ctx_.error(ctx_.pos(f->item()),
                     "cannot read jwks_ca " + quote(*path) + ": " + std::strerror(error));
        } else {
          config.jwks_ca = std::move(full);
        }
      }
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
    if (f.key == "jwks_url") {
      std::string_view url = *text;
      const bool https = url.starts_with("https://");
      if (!https && !url.starts_with("http://")) {
        ctx_.error(at, "invalid value " + quote(*text) +
                           " for \"jwks_url\" (use an http:// or https:// URL)");
        return false;
      }
      url.remove_prefix(https ? 8 : 7);
      if (url.empty() || url.front() == '/' || url.find_first_of(" \t\r\n") != url.npos) {
        ctx_.error(at, "invalid value " + quote(*text) + " for \"jwks_url\" (no host)");
        return false;
      }
      config.jwks_url = std::move(*text);
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
    if (key.key == "jwks_file" || key.key == "jwks_url") {
      if (!any_public) {
        ctx_.error(key.key_pos,
                   quote(key.key) + " holds public keys, but \"algorithms\" lists only HMAC "
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

 private:
  Context& ctx_;
};

}  // namespace

void parseJwtProvider(Context& ctx, const Item& item, const std::string& context,
                      JwtProviderConfig& config) {
  JwtParser(ctx).parseJwt(ctx.readMap(item, context, &kJwt), context, config);
}

}  // namespace portico::config::detail
