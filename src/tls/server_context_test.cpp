// The TLS context of a listener: certificate choice by SNI, names from the certificate, and the
// errors a broken pair gives. Certificates are made here with OpenSSL, into a temporary folder.

#include "tls/server_context.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

namespace portico::tls {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};

void writePem(const std::string& path, auto write) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  write(f);
  std::fclose(f);
}

// A self-signed P-256 certificate for `cn` with DNS names `sans` ("" for none).
void makeCertificate(const std::string& cert, const std::string& key, const char* cn,
                     const char* sans) {
  std::unique_ptr<EVP_PKEY, PkeyFree> pkey(EVP_EC_gen("P-256"));
  ASSERT_TRUE(pkey);
  std::unique_ptr<X509, X509Free> x(X509_new());
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 3600);
  X509_set_pubkey(x.get(), pkey.get());
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                             -1, -1, 0);
  X509_set_issuer_name(x.get(), name);
  if (sans[0] != '\0') {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x.get(), x.get(), nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, sans);
    ASSERT_NE(ext, nullptr);
    X509_add_ext(x.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  ASSERT_GT(X509_sign(x.get(), pkey.get(), EVP_sha256()), 0);
  writePem(cert, [&](std::FILE* f) { PEM_write_X509(f, x.get()); });
  writePem(key, [&](std::FILE* f) {
    PEM_write_PrivateKey(f, pkey.get(), nullptr, nullptr, 0, nullptr, nullptr);
  });
}

class ServerContextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("portico-sni-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    makeCertificate(path("default.pem"), path("default.key"), "default.example.com",
                    "DNS:default.example.com");
    makeCertificate(path("api.pem"), path("api.key"), "api", "DNS:api.example.com");
    makeCertificate(path("wild.pem"), path("wild.key"), "wild", "DNS:*.wild.example.com");
    makeCertificate(path("cn.pem"), path("cn.key"), "cn-only.example.com", "");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string path(const char* name) const { return (dir_ / name).string(); }
  config::TlsCertificate certificate(const char* base, std::vector<std::string> sni = {}) const {
    return {path((std::string(base) + ".pem").c_str()), path((std::string(base) + ".key").c_str()),
            std::move(sni)};
  }

  std::filesystem::path dir_;
};

TEST_F(ServerContextTest, PicksTheCertificateByServerName) {
  config::ListenerTls tls;
  tls.certificates = {certificate("default"), certificate("api"), certificate("wild"),
                      certificate("cn")};
  std::vector<std::string> errors;
  auto context = ServerContext::build(tls, true, "main", errors);
  ASSERT_TRUE(context) << errors[0];
  EXPECT_EQ(context->certificateFor("api.example.com"), 1u);
  EXPECT_EQ(context->certificateFor("a.wild.example.com"), 2u);
  EXPECT_EQ(context->certificateFor("a.b.wild.example.com"), 0u);  // one label only
  EXPECT_EQ(context->certificateFor("wild.example.com"), 0u);
  EXPECT_EQ(context->certificateFor("cn-only.example.com"), 3u);  // no SAN: the CN
  EXPECT_EQ(context->certificateFor("unknown.example.com"), 0u);
  EXPECT_EQ(context->certificateFor(""), 0u);
}

TEST_F(ServerContextTest, ConfiguredNamesReplaceTheCertificatesOwn) {
  config::ListenerTls tls;
  tls.certificates = {certificate("default"), certificate("api", {"other.example.com"})};
  std::vector<std::string> errors;
  auto context = ServerContext::build(tls, false, "main", errors);
  ASSERT_TRUE(context) << errors[0];
  EXPECT_EQ(context->certificateFor("other.example.com"), 1u);
  EXPECT_EQ(context->certificateFor("api.example.com"), 0u);
}

TEST_F(ServerContextTest, AKeyOfAnotherCertificateIsRefusedByName) {
  config::ListenerTls tls;
  tls.certificates = {{path("api.pem"), path("wild.key"), {}}};
  std::vector<std::string> errors;
  EXPECT_FALSE(ServerContext::build(tls, false, "main", errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], "listener \"main\": private key \"" + path("wild.key") +
                           "\" does not match certificate \"" + path("api.pem") + "\"");
}

TEST_F(ServerContextTest, StampsChangeWhenAFileIsReplaced) {
  config::ListenerTls tls;
  tls.certificates = {certificate("api")};
  std::vector<std::string> errors;
  auto context = ServerContext::build(tls, false, "main", errors);
  ASSERT_TRUE(context);
  EXPECT_EQ(context->currentStamps(), context->stamps());
  makeCertificate(path("new.pem"), path("new.key"), "api", "DNS:api.example.com");
  std::filesystem::rename(path("new.pem"), path("api.pem"));  // a new inode, as cert tools do
  EXPECT_NE(context->currentStamps(), context->stamps());
}

}  // namespace
}  // namespace portico::tls
