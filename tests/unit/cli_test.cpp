// The executables' front door: --help answers with the usage of DESIGN.md section 3, bad usage
// exits 2.

#include <gtest/gtest.h>

#include "support/process.hpp"

namespace {

using mailsync::testing::run_process;

TEST(MailsyncCli, HelpListsEveryAdminCommandAndExitsZero) {
  const auto result = run_process({MAILSYNC_TEST_BIN_MAILSYNC, "--help"});
  EXPECT_EQ(result.exit_code, 0);
  for (const char* command : {"migrate", "enqueue --route KEY | --all", "status [--json]", "routes",
                              "jobs", "dead list|retry|discard", "pause ROUTE", "resume ROUTE",
                              "run-once [--dry-run] [--route KEY]", "auth gmail|microsoft", "gate",
                              "dynamo create-table"})
    EXPECT_NE(result.out.find(command), std::string::npos) << command;
  EXPECT_NE(result.out.find("4 database unavailable"), std::string::npos);
}

TEST(MailsyncCli, AnUnknownCommandIsAUsageError) {
  const auto result = run_process({MAILSYNC_TEST_BIN_MAILSYNC, "frobnicate"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("unknown command 'frobnicate'"), std::string::npos) << result.err;
}

TEST(MailsyncCli, NoCommandIsAUsageError) {
  EXPECT_EQ(run_process({MAILSYNC_TEST_BIN_MAILSYNC}).exit_code, 2);
}

TEST(MailsyncCli, MigrateWithoutDatabaseUrlIsAConfigurationError) {
  const auto result = run_process({MAILSYNC_TEST_BIN_MAILSYNC, "migrate"},
                                  {{"MAILSYNC_DATABASE_URL", std::nullopt}});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("MAILSYNC_DATABASE_URL is not set"), std::string::npos) << result.err;
}

TEST(MailsyncCli, VersionPrintsTheVersionLine) {
  const auto result = run_process({MAILSYNC_TEST_BIN_MAILSYNC, "--version"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out.rfind("mailsync " MAILSYNC_TEST_PROJECT_VERSION, 0), 0u) << result.out;
}

TEST(WorkerCli, HelpDescribesTheWorkerOptions) {
  const auto result = run_process({MAILSYNC_TEST_BIN_WORKER, "--help"});
  EXPECT_EQ(result.exit_code, 0);
  for (const char* option : {"--concurrency", "--drain", "--poll-only", "--metrics-port"})
    EXPECT_NE(result.out.find(option), std::string::npos) << option;
}

TEST(WorkerCli, WithoutDatabaseUrlIsAConfigurationError) {
  const auto result = run_process({MAILSYNC_TEST_BIN_WORKER, "--kinds", "noop"},
                                  {{"MAILSYNC_DATABASE_URL", std::nullopt}});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("MAILSYNC_DATABASE_URL is not set"), std::string::npos) << result.err;
}

TEST(WorkerCli, UnreachableDatabaseExitsFour) {
  const auto result =
      run_process({MAILSYNC_TEST_BIN_WORKER, "--drain", "--kinds", "noop"},
                  {{"MAILSYNC_DATABASE_URL", "postgresql://u:Pw0rd1x@127.0.0.1:1/db"}});
  EXPECT_EQ(result.exit_code, 4);
  EXPECT_NE(result.err.find("database unavailable"), std::string::npos) << result.err;
  EXPECT_EQ(result.err.find("Pw0rd1x"), std::string::npos) << result.err;
}

TEST(WorkerCli, AMetricsAddressThatIsNoAddressIsAUsageErrorNotAnyAddress) {
  const auto result = run_process({MAILSYNC_TEST_BIN_WORKER, "--kinds", "noop", "--metrics-port",
                                   "9100", "--metrics-address", "999.1.1.1"},
                                  {{"MAILSYNC_DATABASE_URL", "postgresql://127.0.0.1:1/x"}});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("'999.1.1.1' is not an IPv4 or IPv6 address"), std::string::npos)
      << result.err;
}

TEST(WorkerCli, RouteSyncNeedsTheWholeConfigurationAndNamesWhatIsMissing) {
  const auto result = run_process(
      {MAILSYNC_TEST_BIN_WORKER},
      {{"MAILSYNC_DATABASE_URL", "postgresql://127.0.0.1:1/x"},
       {"SYNC_ROUTES_JSON", R"([{"gmail_email": "a@gmail.com", "outlook_target_folder": "F"}])"},
       {"SYNC_ROUTES_FILE", std::nullopt},
       {"OUTLOOK_EMAIL", "me@outlook.com"},
       {"GMAIL_CLIENT_ID", "cid"},
       {"GMAIL_CLIENT_SECRET", std::nullopt},
       {"MS_CLIENT_ID", std::nullopt},
       {"MS_REFRESH_TOKEN", std::nullopt},
       {"AWS_REGION", std::nullopt}});
  EXPECT_EQ(result.exit_code, 2);
  for (const char* problem :
       {"gmail_client_secret is missing", "gmail_refresh_token is missing",
        "MS_CLIENT_ID is not set", "MS_REFRESH_TOKEN is missing", "AWS_REGION is not set"})
    EXPECT_NE(result.err.find(problem), std::string::npos) << problem << "\n" << result.err;
}

TEST(WorkerCli, AnUnknownOptionIsAUsageError) {
  const auto result = run_process({MAILSYNC_TEST_BIN_WORKER, "--frobnicate"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("frobnicate"), std::string::npos);
}

TEST(SchedulerCli, HelpDescribesTheSchedulerOptions) {
  const auto result = run_process({MAILSYNC_TEST_BIN_SCHEDULER, "--help"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_NE(result.out.find("--once"), std::string::npos);
  EXPECT_NE(result.out.find("SYNC_INTERVAL_SECONDS"), std::string::npos);
}

TEST(SchedulerCli, NamesEveryConfigurationProblemAndExitsTwo) {
  const auto result =
      run_process({MAILSYNC_TEST_BIN_SCHEDULER, "--once"},
                  {{"MAILSYNC_DATABASE_URL", "postgresql://127.0.0.1:1/x"},
                   {"SYNC_INTERVAL_SECONDS", "soon"},
                   {"SYNC_ROUTES_JSON",
                    R"([{"gmail_email": "not-an-address", "outlook_target_folder": "A"}, 7])"},
                   {"OUTLOOK_EMAIL", "me@outlook.test"}});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("SYNC_INTERVAL_SECONDS=soon is not a positive integer"),
            std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find(
                "route 1 (not-an-address): gmail_email 'not-an-address' is not an email address"),
            std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find("route 2: not a JSON object"), std::string::npos) << result.err;
}

TEST(SchedulerCli, NoRoutesConfiguredIsAConfigurationError) {
  const auto result = run_process({MAILSYNC_TEST_BIN_SCHEDULER, "--once"},
                                  {{"MAILSYNC_DATABASE_URL", "postgresql://127.0.0.1:1/x"},
                                   {"SYNC_ROUTES_JSON", std::nullopt},
                                   {"SYNC_ROUTES_FILE", std::nullopt},
                                   {"GMAIL_EMAIL", std::nullopt}});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("no routes configured"), std::string::npos) << result.err;
}

TEST(MailsyncCli, DeadRetryNeedsIdsOrAll) {
  const auto result = run_process({MAILSYNC_TEST_BIN_MAILSYNC, "dead", "retry"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("give job ids or --all"), std::string::npos) << result.err;
}

TEST(MailsyncCli, EnqueueNeedsExactlyOneTarget) {
  EXPECT_EQ(run_process({MAILSYNC_TEST_BIN_MAILSYNC, "enqueue"}).exit_code, 2);
  EXPECT_EQ(run_process({MAILSYNC_TEST_BIN_MAILSYNC, "enqueue", "--all", "--route", "x"}).exit_code,
            2);
  const auto bad_time =
      run_process({MAILSYNC_TEST_BIN_MAILSYNC, "enqueue", "--all", "--run-at", "tomorrow"});
  EXPECT_EQ(bad_time.exit_code, 2);
  EXPECT_NE(bad_time.err.find("--run-at 'tomorrow'"), std::string::npos) << bad_time.err;
}

}  // namespace
