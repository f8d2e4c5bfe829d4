// Runs every config in tests/configs/broken and compares the reported errors with the
// "# expect: file:line:col: message" lines at the top of each file, and checks that every
// config in tests/configs/good loads. Adding a case is adding a file.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/loader.hpp"

namespace portico::config {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kExpect = "# expect: ";

// A fixed environment, so a variable set in the shell running the tests changes nothing.
std::optional<std::string> testEnv(const std::string& name) {
  if (name == "USERS_HOST") {
    return "users.internal";
  }
  return std::nullopt;
}

std::string readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// The `# expect: ` lines of the comment block that opens the file.
std::vector<std::string> expectedErrors(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line) && line.starts_with("#")) {
    if (line.starts_with(kExpect)) {
      out.push_back(line.substr(kExpect.size()));
    }
  }
  return out;
}

std::vector<fs::path> yamlFiles(const std::string& folder) {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(fs::path(PORTICO_SOURCE_DIR) / folder)) {
    if (entry.path().extension() == ".yaml") {
      out.push_back(entry.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(BrokenConfigs, EachReportsExactlyTheExpectedErrors) {
  std::vector<fs::path> files = yamlFiles("tests/configs/broken");
  EXPECT_GE(files.size(), 25u);
  for (const fs::path& path : files) {
    // The name as a user would pass it from the repository root.
    const std::string name = "tests/configs/broken/" + path.filename().string();
    SCOPED_TRACE(name);
    const std::string text = readFile(path);
    std::vector<std::string> expected = expectedErrors(text);
    ASSERT_FALSE(expected.empty()) << "no '# expect: ' line";
    LoadResult result = loadConfigString(text, name, testEnv);
    std::vector<std::string> actual;
    for (const ConfigError& e : result.errors) {
      actual.push_back(e.format());
    }
    EXPECT_EQ(actual, expected);
    EXPECT_FALSE(result.config);
  }
}

TEST(BrokenConfigs, ExpectationsNameTheirOwnFile) {
  for (const fs::path& path : yamlFiles("tests/configs/broken")) {
    const std::string prefix = "tests/configs/broken/" + path.filename().string() + ":";
    for (const std::string& line : expectedErrors(readFile(path))) {
      EXPECT_TRUE(line.starts_with(prefix)) << line;
    }
  }
}

TEST(GoodConfigs, EachLoadsWithoutErrors) {
  std::vector<fs::path> files = yamlFiles("tests/configs/good");
  EXPECT_GE(files.size(), 3u);
  for (const fs::path& path : files) {
    const std::string name = "tests/configs/good/" + path.filename().string();
    SCOPED_TRACE(name);
    LoadResult result = loadConfigString(readFile(path), name, testEnv);
    for (const ConfigError& e : result.errors) {
      ADD_FAILURE() << e.format();
    }
    EXPECT_TRUE(result.config);
  }
}

TEST(GoodConfigs, EnvironmentVariablesComeFromTheLookup) {
  const fs::path path =
      fs::path(PORTICO_SOURCE_DIR) / "tests/configs/good/02-every-supported-key.yaml";
  LoadResult result = loadConfigFile(path.string(), testEnv);
  ASSERT_TRUE(result.config);
  const Upstream& users = result.config->upstreams.at("users");
  ASSERT_EQ(users.endpoints.size(), 2u);
  EXPECT_EQ(users.endpoints[1].host, "users.internal");
  EXPECT_EQ(users.endpoints[1].text, "users.internal:9002");
  EXPECT_EQ(result.config->admin.token, "");  // ${ADMIN_TOKEN:-} with ADMIN_TOKEN unset
  const Upstream& sessions = result.config->upstreams.at("sessions");
  EXPECT_EQ(sessions.balancing, Upstream::Balancing::ConsistentHash);
  EXPECT_EQ(sessions.hash_on.kind, HashOn::Kind::Cookie);
  EXPECT_EQ(sessions.hash_on.name, "session");
  ASSERT_EQ(sessions.endpoints.size(), 3u);
  EXPECT_EQ(sessions.endpoints[0].weight, 1u);
  EXPECT_EQ(sessions.endpoints[1].weight, 3u);
  EXPECT_EQ(sessions.endpoints[1].text, "127.0.0.1:9005");
  EXPECT_EQ(sessions.endpoints[2].weight, 0u);

  auto without_host = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  result = loadConfigFile(path.string(), without_host);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].message,
            "environment variable USERS_HOST is not set (use ${USERS_HOST:-default} for a "
            "default)");
  EXPECT_EQ(result.errors[0].line, 32);
  EXPECT_EQ(result.errors[0].column, 35);
}

}  // namespace
}  // namespace portico::config
