// `mailsync`: the admin command (DESIGN.md section 3).

#include <iostream>
#include "commands/commands.hpp"

#include "mailsync/cli.hpp"
#include "mailsync/config/config.hpp"
#include "mailsync/exit_codes.hpp"
#include "mailsync/log.hpp"

int main(int argc, char** argv) {
  mailsync::cli::protect_memory();  // run-once and auth hold tokens and secrets
  using mailsync::cli::Command;
  const mailsync::cli::Program program{
      .name = "mailsync",
      .summary = "Administer mailsync: schema, queue, routes, tokens and the DynamoDB gate.",
      .commands =
          {
              Command{"migrate", "migrate", "apply the embedded database migrations",
                      mailsync::admin::run_migrate},
              Command{"enqueue", "enqueue --route KEY | --all [--priority P] [--run-at T]",
                      "queue route_sync jobs now", mailsync::admin::run_enqueue},
              Command{"status", "status [--json]", "routes with last outcome and queue counts",
                      mailsync::admin::run_status},
              Command{"routes", "routes [--json]", "list the configured routes, without secrets",
                      mailsync::admin::run_routes},
              Command{"jobs", "jobs [--state S] [--kind K] [--route KEY]", "list jobs",
                      mailsync::admin::run_jobs},
              Command{"dead", "dead list|retry|discard", "inspect, retry or discard dead jobs",
                      mailsync::admin::run_dead},
              Command{"pause", "pause ROUTE", "stop enqueuing a route", mailsync::admin::run_pause},
              Command{"resume", "resume ROUTE", "enqueue a paused route again",
                      mailsync::admin::run_resume},
              Command{"run-once", "run-once [--dry-run] [--route KEY]", "one sync inline, no queue",
                      mailsync::admin::run_run_once},
              Command{"auth", "auth gmail|microsoft", "obtain a refresh token interactively",
                      mailsync::admin::run_auth},
              Command{"gate", "gate", "check the DynamoDB gate (exit 0 or 3)",
                      mailsync::admin::run_gate},
              Command{"dynamo", "dynamo create-table", "create the DynamoDB table with TTL",
                      mailsync::admin::run_dynamo},
          },
      .footer =
          "Configuration comes from the environment (MAILSYNC_DATABASE_URL, SYNC_ROUTES_JSON,\n"
          "...; see README). Exit codes: 0 ok, 1 failure, 2 usage or configuration error,\n"
          "3 DynamoDB gate unavailable, 4 database unavailable.\n",
  };
  // Variables kept in AWS Secrets Manager (AWS_SECRETS_MANAGER_SECRET_IDS) before any command reads
  // one; --help and --version need none.
  const std::string_view first = argc > 1 ? argv[1] : "";
  if (!first.empty() && first != "--help" && first != "-h" && first != "help" &&
      first != "--version") {
    // Log lines to stderr (stdout is for the command's output, often JSON); a command that logs
    // much (run-once) sets logging up again and reports a bad LOG_LEVEL or LOG_FORMAT.
    (void)mailsync::init_logging("mailsync");
    if (const auto& problems = mailsync::config::merge_secrets_manager_once(); !problems.empty()) {
      for (const auto& problem : problems) std::cerr << "mailsync: " << problem << "\n";
      return mailsync::exit_code::kUsage;
    }
  }
  return mailsync::cli::dispatch(program, argc, argv);
}
