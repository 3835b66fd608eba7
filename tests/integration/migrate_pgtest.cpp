// `mailsync migrate` and the Migrator against the local stack's real PostgreSQL.

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "mailsync/postgres/errors.hpp"
#include "mailsync/postgres/migration.hpp"
#include "mailsync/postgres/migrator.hpp"
#include "support/process.hpp"
#include "support/test_database.hpp"

namespace {

using mailsync::postgres::Migration;
using mailsync::postgres::MigrationError;
using mailsync::postgres::Migrator;
using mailsync::testing::ChildProcess;
using mailsync::testing::run_process;
using mailsync::testing::TestDatabase;

size_t count_lines(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
    ++count;
  return count;
}

std::string embedded_count() {
  return std::to_string(mailsync::postgres::embedded_migrations().size());
}

TEST(MigrateCommand, CreatesTheSchemaAndRecordsEachVersion) {
  TestDatabase db;
  const auto result =
      run_process({MAILSYNC_TEST_BIN_MAILSYNC, "migrate"}, {{"MAILSYNC_DATABASE_URL", db.url()}});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("applied 0001_initial_schema"), std::string::npos) << result.out;
  EXPECT_EQ(result.err, "");
  for (const char* table :
       {"routes", "jobs", "job_attempts", "watermarks", "uid_claims", "failures"})
    EXPECT_EQ(
        db.query_value("SELECT to_regclass('mailsync." + std::string(table) + "') IS NOT NULL"),
        "t")
        << table;
  EXPECT_EQ(db.query_value("SELECT count(*) FROM mailsync.schema_migrations"), embedded_count());
  EXPECT_EQ(
      db.query_value("SELECT length(checksum) FROM mailsync.schema_migrations WHERE version = 1"),
      "64");
}

TEST(MigrateCommand, RunningTwiceIsANoop) {
  TestDatabase db;
  ASSERT_EQ(
      run_process({MAILSYNC_TEST_BIN_MAILSYNC, "migrate"}, {{"MAILSYNC_DATABASE_URL", db.url()}})
          .exit_code,
      0);
  const std::string applied_at =
      db.query_value("SELECT applied_at FROM mailsync.schema_migrations WHERE version = 1");
  const auto second =
      run_process({MAILSYNC_TEST_BIN_MAILSYNC, "migrate"}, {{"MAILSYNC_DATABASE_URL", db.url()}});
  EXPECT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(second.out.find("applied 0"), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("(0 applied now, " + embedded_count() + " already present)"),
            std::string::npos)
      << second.out;
  EXPECT_EQ(db.query_value("SELECT applied_at FROM mailsync.schema_migrations WHERE version = 1"),
            applied_at);
}

TEST(MigrateCommand, TwoRunsAtOnceApplyEachMigrationExactlyOnce) {
  TestDatabase db;
  ChildProcess first({MAILSYNC_TEST_BIN_MAILSYNC, "migrate"},
                     {{"MAILSYNC_DATABASE_URL", db.url()}});
  ChildProcess second({MAILSYNC_TEST_BIN_MAILSYNC, "migrate"},
                      {{"MAILSYNC_DATABASE_URL", db.url()}});
  const auto a = first.wait();
  const auto b = second.wait();
  EXPECT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(count_lines(a.out + b.out, "applied 0001_initial_schema"), 1u) << a.out << b.out;
  EXPECT_EQ(db.query_value("SELECT count(*) FROM mailsync.schema_migrations"), embedded_count());
}

TEST(Migrator, ConcurrentMigratorsWaitForTheFirstAndSkipWhatItApplied) {
  TestDatabase db;
  // Not idempotent on purpose: applied twice, CREATE TABLE fails; the sleep holds the version row
  // long enough for the other migrators to queue behind it.
  static const Migration kSlow[] = {
      {1, "slow",
       "CREATE TABLE mailsync.applied_once (n int); INSERT INTO mailsync.applied_once VALUES (1);"
       "SELECT pg_sleep(0.3);"},
      {2, "second", "INSERT INTO mailsync.applied_once VALUES (2);"}};
  std::vector<std::future<mailsync::postgres::MigrationReport>> runs;
  for (int i = 0; i < 4; ++i)
    runs.push_back(std::async(std::launch::async, [&] { return Migrator(db.url(), kSlow).run(); }));
  size_t applied = 0, elsewhere_or_present = 0;
  for (auto& run : runs) {
    const auto report = run.get();
    applied += report.applied.size();
    elsewhere_or_present += report.applied_elsewhere.size() + report.already_applied.size();
  }
  EXPECT_EQ(applied, 2u);
  EXPECT_EQ(elsewhere_or_present, 6u);
  EXPECT_EQ(db.query_value("SELECT string_agg(n::text, ',' ORDER BY n) FROM mailsync.applied_once"),
            "1,2");
}

TEST(Migrator, AFailingMigrationIsRolledBackAndNamed) {
  TestDatabase db;
  static const Migration kBroken[] = {
      {1, "good", "CREATE TABLE mailsync.kept (n int);"},
      {2, "broken", "CREATE TABLE mailsync.half (n int); SELECT 1/0;"}};
  try {
    Migrator(db.url(), kBroken).run();
    FAIL() << "expected MigrationError";
  } catch (const MigrationError& e) {
    EXPECT_NE(std::string(e.what()).find("0002_broken"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("division by zero"), std::string::npos) << e.what();
  }
  EXPECT_EQ(db.query_value("SELECT string_agg(version::text, ',') FROM mailsync.schema_migrations"),
            "1");
  EXPECT_EQ(db.query_value("SELECT to_regclass('mailsync.kept') IS NOT NULL"), "t");
  EXPECT_EQ(db.query_value("SELECT to_regclass('mailsync.half') IS NULL"), "t");
}

TEST(Migrator, RefusesADatabaseWhoseAppliedMigrationWasEdited) {
  TestDatabase db;
  static const Migration kOriginal[] = {{1, "first", "SELECT 1;"}};
  static const Migration kEdited[] = {{1, "first", "SELECT 2;"}};
  Migrator(db.url(), kOriginal).run();
  try {
    Migrator(db.url(), kEdited).run();
    FAIL() << "expected MigrationError";
  } catch (const MigrationError& e) {
    EXPECT_NE(std::string(e.what()).find("0001_first was changed after it was applied"),
              std::string::npos)
        << e.what();
  }
}

TEST(Migrator, ReportsMigrationsTheBinaryDoesNotKnow) {
  TestDatabase db;
  static const Migration kNewer[] = {{1, "first", "SELECT 1;"}, {2, "second", "SELECT 2;"}};
  static const Migration kOlder[] = {{1, "first", "SELECT 1;"}};
  Migrator(db.url(), kNewer).run();
  const auto report = Migrator(db.url(), kOlder).run();
  EXPECT_EQ(report.unknown, std::vector<int>{2});
}

TEST(MigrateCommand, UnreachableDatabaseExitsFourWithOneLineAndNoPassword) {
  const auto result = run_process(
      {MAILSYNC_TEST_BIN_MAILSYNC, "migrate"},
      {{"MAILSYNC_DATABASE_URL", "postgresql://mailsync:Sup3rS3cretPw@127.0.0.1:1/mailsync"}});
  EXPECT_EQ(result.exit_code, 4);
  EXPECT_EQ(count_lines(result.err, "\n"), 1u) << result.err;
  EXPECT_NE(result.err.find("database unavailable"), std::string::npos) << result.err;
  EXPECT_EQ(result.err.find("Sup3rS3cretPw"), std::string::npos) << result.err;
}

TEST(MigrateCommand, MalformedDatabaseUrlExitsFour) {
  for (const char* url : {"not a url", "postgresql://u:pw@host:notaport/db"}) {
    const auto result =
        run_process({MAILSYNC_TEST_BIN_MAILSYNC, "migrate"}, {{"MAILSYNC_DATABASE_URL", url}});
    EXPECT_EQ(result.exit_code, 4) << url;
    EXPECT_EQ(count_lines(result.err, "\n"), 1u) << result.err;
  }
}

TEST(MigrateCommand, MissingDatabaseExitsFourAndNamesIt) {
  const std::string admin = mailsync::testing::stack_env("MAILSYNC_STACK_PG_ADMIN_URL");
  const std::string url = admin.substr(0, admin.rfind('/')) + "/no_such_database";
  const auto result =
      run_process({MAILSYNC_TEST_BIN_MAILSYNC, "migrate"}, {{"MAILSYNC_DATABASE_URL", url}});
  EXPECT_EQ(result.exit_code, 4);
  EXPECT_NE(result.err.find("no_such_database"), std::string::npos) << result.err;
}

// ---- the schema's own guarantees -------------------------------------------------------------

class MigratedSchema : public ::testing::Test {
 protected:
  void SetUp() override {
    Migrator(db_.url(), mailsync::postgres::embedded_migrations()).run();
    db_.execute(
        "INSERT INTO mailsync.routes (route_key, gmail_email, outlook_email, target_folder) VALUES "
        "('ROUTE#a@gmail.test#DEST#me@outlook.test#FOLDER#Gmail/a', 'a@gmail.test', "
        "'me@outlook.test', 'Gmail/a')");
  }
  bool fails(const std::string& sql) {
    try {
      db_.execute(sql);
      return false;
    } catch (const std::exception&) {
      return true;
    }
  }
  TestDatabase db_;
  const std::string route_ = "'ROUTE#a@gmail.test#DEST#me@outlook.test#FOLDER#Gmail/a'";
};

TEST_F(MigratedSchema, AllowsOneQueuedOrRunningRouteSyncPerRoute) {
  const std::string enqueue =
      "INSERT INTO mailsync.jobs (kind, route_key) VALUES ('route_sync', " + route_ + ")";
  db_.execute(enqueue);
  EXPECT_TRUE(fails(enqueue));
  db_.execute("UPDATE mailsync.jobs SET state = 'succeeded', finished_at = now()");
  EXPECT_FALSE(fails(enqueue));  // a finished job does not block the next interval's
  EXPECT_FALSE(
      fails("INSERT INTO mailsync.jobs (kind, route_key) VALUES ('noop', " + route_ + ")"));
}

TEST_F(MigratedSchema, RejectsARouteKeyThatDoesNotMatchItsParts) {
  EXPECT_TRUE(fails(
      "INSERT INTO mailsync.routes (route_key, gmail_email, outlook_email, target_folder) VALUES "
      "('ROUTE#x', 'b@gmail.test', 'me@outlook.test', 'Gmail/b')"));
}

TEST_F(MigratedSchema, KeepsLeaseColumnsConsistentWithTheState) {
  EXPECT_TRUE(fails("INSERT INTO mailsync.jobs (kind, state) VALUES ('noop', 'running')"));
  EXPECT_TRUE(fails("INSERT INTO mailsync.jobs (kind, state) VALUES ('noop', 'succeeded')"));
  EXPECT_FALSE(
      fails("INSERT INTO mailsync.jobs (kind, state, lease_owner, lease_expires_at) "
            "VALUES ('noop', 'running', 'w1', now() + interval '30 s')"));
}

TEST_F(MigratedSchema, BoundsUidsToUnsigned32Bits) {
  const std::string claim =
      "INSERT INTO mailsync.uid_claims (route_key, uidvalidity, uid) VALUES (" + route_;
  EXPECT_FALSE(fails(claim + ", 4294967295, 4294967295)"));
  EXPECT_TRUE(fails(claim + ", 4294967296, 1)"));
  EXPECT_TRUE(fails(claim + ", 1, 0)"));
}

}  // namespace
