// listeners[].tls and http2, upstreams.*.tls and protocol, the mtls provider (SPEC §3).

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "config/loader.hpp"

namespace portico::config {
namespace {

// Real files for the paths the loader checks: a folder holding a.pem, a.key and ca.pem (their
// contents are not looked at by the loader; the snapshot reads them).
class ConfigTls : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("portico-tls-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    for (const char* name : {"a.pem", "a.key", "ca.pem"}) std::ofstream(dir_ / name) << "x\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string file() const { return (dir_ / "portico.yaml").string(); }

  LoadResult load(std::string_view listener_extra, std::string_view upstream_extra = "",
                  std::string_view top_extra = "") const {
    std::string yaml = "listeners:\n  - address: 127.0.0.1:8443\n" + std::string(listener_extra) +
                       "upstreams:\n  u:\n    endpoints: [\"127.0.0.1:9001\"]\n" +
                       std::string(upstream_extra) + std::string(top_extra) +
                       "routes:\n  - match: {path_prefix: /}\n    upstream: u\n    auth: public\n";
    return loadConfigString(yaml, file(), [](const std::string&) { return std::nullopt; });
  }

  std::vector<std::string> messages(std::string_view listener_extra,
                                    std::string_view upstream_extra = "",
                                    std::string_view top_extra = "") const {
    std::vector<std::string> out;
    for (const auto& e : load(listener_extra, upstream_extra, top_extra).errors) {
      out.push_back(e.message);
    }
    return out;
  }

  std::filesystem::path dir_;
};

TEST_F(ConfigTls, ListenerCertificatesResolveAgainstTheConfigFolder) {
  auto r = load(
      "    http2: true\n    tls:\n      certificates:\n"
      "        - {cert: a.pem, key: a.key, sni: [API.example.com, \"*.wild.example.com\"]}\n"
      "      min_version: \"1.3\"\n");
  ASSERT_TRUE(r.config) << r.errors[0].format();
  const Listener& l = r.config->listeners[0];
  EXPECT_TRUE(l.http2);
  ASSERT_TRUE(l.tls);
  ASSERT_EQ(l.tls->certificates.size(), 1u);
  EXPECT_EQ(l.tls->certificates[0].cert_path, (dir_ / "a.pem").string());
  EXPECT_EQ(l.tls->certificates[0].key_path, (dir_ / "a.key").string());
  EXPECT_EQ(l.tls->certificates[0].sni,
            (std::vector<std::string>{"api.example.com", "*.wild.example.com"}));
  EXPECT_EQ(l.tls->min_version, ListenerTls::Version::Tls13);
  EXPECT_EQ(l.tls->client_auth, ListenerTls::ClientAuth::None);
}

TEST_F(ConfigTls, ClientCaMeansRequiredUnlessSaidOtherwise) {
  auto r = load("    tls:\n      certificates: [{cert: a.pem, key: a.key}]\n"
                "      client_ca: ca.pem\n");
  ASSERT_TRUE(r.config) << r.errors[0].format();
  EXPECT_EQ(r.config->listeners[0].tls->client_auth, ListenerTls::ClientAuth::Required);
  r = load("    tls:\n      certificates: [{cert: a.pem, key: a.key}]\n"
           "      client_ca: ca.pem\n      client_auth: optional\n");
  ASSERT_TRUE(r.config) << r.errors[0].format();
  EXPECT_EQ(r.config->listeners[0].tls->client_auth, ListenerTls::ClientAuth::Optional);
}

TEST_F(ConfigTls, ListenerMistakesAreReported) {
  EXPECT_EQ(messages("    tls:\n      certificates: [{cert: a.pem}]\n"),
            std::vector<std::string>{"missing required key \"key\" in certificate"});
  EXPECT_EQ(messages("    tls:\n      certificates: [{cert: nope.pem, key: a.key}]\n"),
            std::vector<std::string>{"cannot read certificate \"nope.pem\" (" +
                                     (dir_ / "nope.pem").string() +
                                     "): No such file or directory"});
  EXPECT_EQ(messages("    tls:\n      certificates:\n"
                     "        - {cert: a.pem, key: a.key, sni: [a.example.com]}\n"
                     "        - {cert: a.pem, key: a.key, sni: [A.example.com]}\n"),
            std::vector<std::string>{
                "server name \"a.example.com\" is listed for two certificates of this listener"});
  EXPECT_EQ(messages("    tls:\n      certificates: [{cert: a.pem, key: a.key, sni: [\"a b\"]}]\n"),
            std::vector<std::string>{
                "invalid server name \"a b\" in \"sni\" (use a DNS name or *.name)"});
  EXPECT_EQ(messages("    tls:\n      certificates: [{cert: a.pem, key: a.key}]\n"
                     "      client_auth: optional\n"),
            std::vector<std::string>{"client_auth \"optional\" needs \"client_ca\" (the CA that "
                                     "signs client certificates)"});
  EXPECT_EQ(messages("    tls:\n      certificates: []\n"),
            std::vector<std::string>{"\"certificates\" must not be empty"});
}

TEST_F(ConfigTls, UpstreamTlsAndProtocol) {
  auto r = load("", "    protocol: http2\n    tls: {ca: ca.pem, sni: Users.Internal}\n");
  ASSERT_TRUE(r.config) << r.errors[0].format();
  const Upstream& u = r.config->upstreams.at("u");
  EXPECT_EQ(u.protocol, Upstream::Protocol::Http2);
  ASSERT_TRUE(u.tls);
  EXPECT_TRUE(u.tls->verify);
  EXPECT_EQ(u.tls->ca_path, (dir_ / "ca.pem").string());
  EXPECT_EQ(u.tls->sni, "users.internal");
  r = load("", "    tls: {verify: false}\n");
  ASSERT_TRUE(r.config) << r.errors[0].format();
  EXPECT_FALSE(r.config->upstreams.at("u").tls->verify);
  EXPECT_EQ(messages("", "    tls: {cert: a.pem}\n"),
            std::vector<std::string>{"a client certificate needs both \"cert\" and \"key\""});
  EXPECT_EQ(messages("", "    tls: {sni: \"*.internal\"}\n"),
            std::vector<std::string>{"invalid value \"*.internal\" for \"sni\" (use a DNS name)"});
  r = load("", "    protocol: grpc\n");
  ASSERT_TRUE(r.config) << r.errors[0].format();
  EXPECT_EQ(r.config->upstreams.at("u").protocol, Upstream::Protocol::Grpc);
  EXPECT_TRUE(r.config->upstreams.at("u").speaksHttp2());
  EXPECT_EQ(
      messages("", "    protocol: h3\n"),
      std::vector<std::string>{"invalid value \"h3\" for \"protocol\" (use http1, http2 or grpc)"});
}

TEST_F(ConfigTls, MtlsProviderAndSubjects) {
  auto r = load("", "",
                "auth_providers: {partners: {type: mtls}}\n"
                "consumers: [{name: acme, mtls_subjects: [client.acme.example]}]\n");
  ASSERT_TRUE(r.config) << r.errors[0].format();
  EXPECT_EQ(r.config->auth_providers.at("partners").type, AuthProvider::Type::Mtls);
  EXPECT_EQ(r.config->consumers[0].mtls_subjects,
            std::vector<std::string>{"client.acme.example"});
}

}  // namespace
}  // namespace portico::config
