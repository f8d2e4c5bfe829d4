#include "auth/jwks_fetcher.hpp"

#include "auth/blocking_http.hpp"
#include "core/clock.hpp"
#include "core/log.hpp"

namespace portico::auth {

class JwksFetcher::RefreshTimer final : public net::Timed {
 public:
  RefreshTimer(JwksFetcher& fetcher, std::string url) : fetcher_(fetcher), url_(std::move(url)) {}
  void onTimer() override {
    auto it = fetcher_.sources_.find(url_);
    if (it != fetcher_.sources_.end()) fetcher_.start(*it->second);
  }

 private:
  JwksFetcher& fetcher_;
  std::string url_;
};

JwksFetcher::JwksFetcher(net::EventLoop& loop, PublishFn publish)
    : loop_(loop), publish_(std::move(publish)) {}

JwksFetcher::~JwksFetcher() {
  for (auto& [url, source] : sources_) {
    if (source->thread.joinable()) source->thread.join();
  }
}

namespace {

// URL -> the shortest refresh of the providers using it, and their CA.
std::map<std::string, std::pair<uint64_t, std::string>> jwksUrls(const config::Config& config) {
  std::map<std::string, std::pair<uint64_t, std::string>> urls;
  for (const auto& [name, provider] : config.auth_providers) {
    const auto& jwt = provider.jwt;
    if (provider.type != config::AuthProvider::Type::Jwt || jwt.jwks_url.empty()) continue;
    uint64_t refresh = static_cast<uint64_t>(jwt.refresh.count());
    auto [it, inserted] = urls.emplace(jwt.jwks_url, std::make_pair(refresh, jwt.jwks_ca));
    if (!inserted) it->second.first = std::min(it->second.first, refresh);
  }
  return urls;
}

}  // namespace

void JwksFetcher::prepare(const config::Config& config) {
  for (const auto& [url, settings] : jwksUrls(config)) {
    auto& slot = sources_[url];
    if (!slot) {
      slot = std::make_unique<Source>();
      slot->url = url;
      slot->ca = settings.second;
      slot->timer = std::make_unique<RefreshTimer>(*this, url);
    }
    if (slot->keys || slot->in_flight) continue;
    std::string error;
    slot->last_start_ms = monotonicMs();
    slot->keys = fetch(url, slot->ca, error);
    slot->fetched_by_prepare = true;
    if (!slot->keys) {
      LOG_WARN("jwks_url %s: %s; tokens are refused until a fetch succeeds", url.c_str(),
               error.c_str());
    }
  }
}

void JwksFetcher::activate(const config::Config& config) {
  auto urls = jwksUrls(config);
  for (auto& [url, source] : sources_) {
    auto it = urls.find(url);
    if (it == urls.end()) {
      loop_.clearTimeout(*source->timer);  // not used any more: kept, but not refreshed
      continue;
    }
    source->refresh_ms = it->second.first;
    source->ca = it->second.second;
    if (source->keys && !source->fetched_by_prepare) {
      start(*source);  // a (re)load fetches the set again, in the background
    } else {
      loop_.setTimeout(*source->timer, source->keys ? source->refresh_ms
                                                    : std::min<uint64_t>(source->refresh_ms, 5000));
    }
    source->fetched_by_prepare = false;
  }
}

JwksFetcher::KeySetPtr JwksFetcher::keys(const std::string& url) const {
  auto it = sources_.find(url);
  return it == sources_.end() ? nullptr : it->second->keys;
}

void JwksFetcher::unknownKid(const std::string& url) {
  auto it = sources_.find(url);
  if (it == sources_.end()) return;
  Source& source = *it->second;
  if (source.in_flight || monotonicMs() - source.last_start_ms < kRefetchGapMs) return;
  start(source);
}

void JwksFetcher::start(Source& source) {
  if (source.in_flight) return;
  if (source.thread.joinable()) source.thread.join();  // done: it posted its result already
  source.in_flight = true;
  source.last_start_ms = monotonicMs();
  source.thread = std::thread([this, url = source.url, ca = source.ca] {
    std::string error;
    KeySetPtr keys = fetch(url, ca, error);
    loop_.post([this, url, keys, error = std::move(error)]() mutable {
      finished(url, std::move(keys), std::move(error));
    });
  });
}

void JwksFetcher::finished(const std::string& url, KeySetPtr keys, std::string error) {
  auto it = sources_.find(url);
  if (it == sources_.end()) return;
  Source& source = *it->second;
  source.in_flight = false;
  if (keys) {
    // Publishing clears every worker's token cache for the provider: an unchanged set (a
    // refetch for a kid it does not hold, say) is not published (review L4).
    const bool changed = !source.keys || !source.keys->sameAs(*keys);
    source.keys = keys;
    if (changed) publish_(url, std::move(keys));
  } else {
    LOG_WARN("jwks_url %s: %s; keeping the last good key set (%zu keys)", url.c_str(),
             error.c_str(), source.keys ? source.keys->size() : 0);
  }
  // Without a good set yet, try again sooner than a long refresh would.
  loop_.setTimeout(*source.timer, source.keys ? source.refresh_ms
                                              : std::min<uint64_t>(source.refresh_ms, 5000));
}

JwksFetcher::KeySetPtr JwksFetcher::fetch(const std::string& url, const std::string& ca,
                                          std::string& error) {
  HttpGetResult response = httpGet(url, ca, kFetchTimeout);
  if (!response.ok) {
    error = response.error;
    return nullptr;
  }
  jwt::JwksResult jwks = jwt::parseJwks(response.body);
  if (!jwks.document_ok) {
    error = "the answer is not a JWKS document";
    return nullptr;
  }
  if (jwks.keys.empty()) {
    error = "the key set holds no usable key";
    return nullptr;
  }
  return std::make_shared<const jwt::KeySet>(std::move(jwks.keys));
}

}  // namespace portico::auth
