// listeners[].tls (SPEC §3): certificates chosen by SNI, the minimum version, client
// certificates. Files are checked for readability here, with the position of the path; whether a
// key matches its certificate is checked when the snapshot builds the TLS contexts.

#include <cstring>
#include <string>
#include <unordered_map>

#include "config/loader_context.hpp"
#include "config/values.hpp"
#include "core/file.hpp"

namespace portico::config::detail {
namespace {

constexpr std::string_view kTlsKeys[] = {"certificates", "min_version", "client_ca",
                                         "client_auth"};
constexpr std::string_view kCertificateKeys[] = {"cert", "key", "sni"};
constexpr std::string_view kVersions[] = {"1.2", "1.3"};
constexpr std::string_view kClientAuth[] = {"none", "optional", "required"};

constexpr std::string_view kUpstreamTlsKeys[] = {"verify", "ca", "sni", "cert", "key"};

const KeySet kTls{kTlsKeys, {}};
const KeySet kUpstreamTls{kUpstreamTlsKeys, {}};
const KeySet kCertificate{kCertificateKeys, {}};

// The absolute path of a file the gateway must be able to read, or nullopt (reported).
std::optional<std::string> readablePath(Context& ctx, const Item& item, std::string_view what) {
  auto text = ctx.text(item);
  if (!text) {
    return std::nullopt;
  }
  if (text->empty()) {
    ctx.error(ctx.pos(item), quote(std::string(item.key)) + " must not be empty");
    return std::nullopt;
  }
  std::string path = resolveConfigPath(ctx, *text);
  std::string contents;
  if (int error = readWholeFile(path, contents)) {
    std::string shown = quote(*text);
    if (path != *text) shown += " (" + path + ")";
    ctx.error(ctx.pos(item),
              "cannot read " + std::string(what) + " " + shown + ": " + std::strerror(error));
    return std::nullopt;
  }
  return path;
}

// A server name for SNI: a DNS name, optionally "*." + name (one leftmost label).
bool isServerName(std::string_view name) {
  if (name.starts_with("*.")) name.remove_prefix(2);
  if (name.empty() || name.size() > 253 || name.front() == '.' || name.back() == '.') return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (!ok) return false;
  }
  return name.find("..") == std::string_view::npos;
}

void parseCertificate(Context& ctx, const Item& item, TlsCertificate& out,
                      std::unordered_map<std::string, Position>& names) {
  MapFields map = ctx.readMap(item, "certificate", &kCertificate);
  if (!map.valid) {
    return;
  }
  ctx.requireKey(map, "cert", "certificate");
  ctx.requireKey(map, "key", "certificate");
  if (const Field* f = map.find("cert")) {
    out.cert_path = readablePath(ctx, f->item(), "certificate").value_or("");
  }
  if (const Field* f = map.find("key")) {
    out.key_path = readablePath(ctx, f->item(), "private key").value_or("");
  }
  if (const Field* f = map.find("sni")) {
    for (const Item& entry : ctx.readList(f->item(), true)) {
      auto name = ctx.text(entry);
      if (!name) {
        continue;
      }
      std::string lower = lowercase(*name);
      if (!isServerName(lower)) {
        ctx.error(ctx.pos(entry), "invalid server name " + quote(*name) +
                                      " in \"sni\" (use a DNS name or *.name)");
      } else if (!names.emplace(lower, ctx.pos(entry)).second) {
        ctx.error(ctx.pos(entry), "server name " + quote(lower) +
                                      " is listed for two certificates of this listener");
      } else {
        out.sni.push_back(std::move(lower));
      }
    }
  }
}

}  // namespace

void parseListenerTls(Context& ctx, const Item& item, ListenerTls& out) {
  MapFields map = ctx.readMap(item, "tls", &kTls);
  if (!map.valid) {
    return;
  }
  ctx.requireKey(map, "certificates", "tls");
  if (const Field* f = map.find("certificates")) {
    std::unordered_map<std::string, Position> names;
    for (const Item& entry : ctx.readList(f->item(), true)) {
      TlsCertificate certificate;
      parseCertificate(ctx, entry, certificate, names);
      out.certificates.push_back(std::move(certificate));
    }
  }
  if (const Field* f = map.find("min_version")) {
    if (auto index = ctx.choice(f->item(), kVersions)) {
      out.min_version = *index == 0 ? ListenerTls::Version::Tls12 : ListenerTls::Version::Tls13;
    }
  }
  const Field* ca = map.find("client_ca");
  if (ca != nullptr) {
    out.client_ca_path = readablePath(ctx, ca->item(), "client_ca").value_or("");
    out.client_auth = ListenerTls::ClientAuth::Required;  // asking for a CA means using it
  }
  if (const Field* f = map.find("client_auth")) {
    if (auto index = ctx.choice(f->item(), kClientAuth)) {
      out.client_auth = static_cast<ListenerTls::ClientAuth>(*index);
      if (*index != 0 && ca == nullptr) {
        ctx.error(ctx.pos(f->item()), "client_auth " + quote(std::string(kClientAuth[*index])) +
                                          " needs \"client_ca\" (the CA that signs client "
                                          "certificates)");
      }
    }
  }
}

void parseUpstreamTls(Context& ctx, const Item& item, UpstreamTls& out) {
  MapFields map = ctx.readMap(item, "tls", &kUpstreamTls);
  if (!map.valid) {
    return;
  }
  if (const Field* f = map.find("verify")) {
    out.verify = ctx.boolean(f->item()).value_or(true);
  }
  if (const Field* f = map.find("ca")) {
    out.ca_path = readablePath(ctx, f->item(), "ca").value_or("");
  }
  if (const Field* f = map.find("sni")) {
    if (auto name = ctx.text(f->item())) {
      std::string lower = lowercase(*name);
      if (!isServerName(lower) || lower.starts_with("*.")) {
        ctx.error(ctx.pos(f->item()), "invalid value " + quote(*name) + " for \"sni\" (use a DNS name)");
      } else {
        out.sni = std::move(lower);
      }
    }
  }
  const Field* cert = map.find("cert");
  const Field* key = map.find("key");
  if (cert != nullptr) {
    out.cert_path = readablePath(ctx, cert->item(), "certificate").value_or("");
  }
  if (key != nullptr) {
    out.key_path = readablePath(ctx, key->item(), "private key").value_or("");
  }
  if ((cert == nullptr) != (key == nullptr)) {
    const Field* given = cert != nullptr ? cert : key;
    ctx.error(given->key_pos, "a client certificate needs both \"cert\" and \"key\"");
  }
}

}  // namespace portico::config::detail
