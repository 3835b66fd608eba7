// The build itself: what the binary says it is, and that the migrations it embeds are exactly
// the files of sql/ (a stale or partial embed would migrate a database to the wrong schema).

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "mailsync/build_info.hpp"
#include "mailsync/postgres/migration.hpp"

namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

TEST(BuildInfo, IsBuiltAsCxx20OrLater) {
  EXPECT_GE(mailsync::build_info().cxx_standard, 202002L);
}

TEST(BuildInfo, VersionMatchesTheProjectVersion) {
  EXPECT_EQ(mailsync::build_info().version, MAILSYNC_TEST_PROJECT_VERSION);
  EXPECT_TRUE(mailsync::version_line().starts_with("mailsync " MAILSYNC_TEST_PROJECT_VERSION " ("));
}

TEST(BuildInfo, SanitizerFlagMatchesTheBuild) {
  EXPECT_EQ(mailsync::build_info().sanitized, MAILSYNC_TEST_SANITIZED != 0);
  EXPECT_EQ(mailsync::version_line().find("asan+ubsan") != std::string_view::npos,
            MAILSYNC_TEST_SANITIZED != 0);
}

TEST(EmbeddedMigrations, AreNumberedFromOneWithoutGaps) {
  const auto migrations = mailsync::postgres::embedded_migrations();
  ASSERT_FALSE(migrations.empty());
  for (size_t i = 0; i < migrations.size(); ++i)
    EXPECT_EQ(migrations[i].version, static_cast<int>(i) + 1) << migrations[i].name;
}

TEST(EmbeddedMigrations, AreExactlyTheFilesOfSqlDirectory) {
  const std::filesystem::path sql_dir = MAILSYNC_TEST_SOURCE_DIR "/sql";
  const std::regex pattern(R"((\d{4})_([a-z0-9_]+)\.sql)");
  std::map<int, std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(sql_dir)) {
    std::smatch match;
    const std::string name = entry.path().filename().string();
    if (std::regex_match(name, match, pattern)) files[std::stoi(match[1])] = entry.path();
  }
  const auto migrations = mailsync::postgres::embedded_migrations();
  ASSERT_EQ(files.size(), migrations.size());
  for (const auto& migration : migrations) {
    ASSERT_TRUE(files.contains(migration.version)) << migration.version;
    const auto& path = files[migration.version];
    EXPECT_EQ(path.filename().string().substr(5), std::string(migration.name) + ".sql");
    EXPECT_EQ(read_file(path), migration.sql) << path << " differs from the embedded text";
  }
}

TEST(EmbeddedMigrations, FirstCreatesTheMailsyncSchemaTables) {
  const std::string_view sql = mailsync::postgres::embedded_migrations().front().sql;
  for (const char* table : {"mailsync.routes", "mailsync.jobs", "mailsync.job_attempts",
                            "mailsync.watermarks", "mailsync.uid_claims", "mailsync.failures"})
    EXPECT_NE(sql.find(std::string("CREATE TABLE ") + table + " ("), std::string_view::npos)
        << table;
}

}  // namespace
