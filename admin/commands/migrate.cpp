#include <boost/program_options.hpp>
#include <iostream>

#include "commands/commands.hpp"
#include "mailsync/cli.hpp"
#include "mailsync/exit_codes.hpp"
#include "mailsync/postgres/errors.hpp"
#include "mailsync/postgres/migrator.hpp"

namespace mailsync::admin {

namespace po = boost::program_options;

namespace {

std::string four_digits(int version) {
  std::string number = std::to_string(version);
  return std::string(number.size() < 4 ? 4 - number.size() : 0, '0') + number;
}

}  // namespace

int run_migrate(std::span<const std::string> args) {
  po::options_description options(
      "Usage: mailsync migrate\n"
      "Applies the schema migrations embedded in this binary to MAILSYNC_DATABASE_URL, each in\n"
      "its own transaction. Safe to run twice and from several hosts at once.\n\nOptions");
  options.add_options()("help,h", "show this help");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(std::vector<std::string>(args.begin(), args.end()))
                  .options(options)
                  .run(),
              vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "mailsync migrate: " << e.what() << "\n";
    return exit_code::kUsage;
  }
  if (vm.count("help")) {
    std::cout << options;
    return exit_code::kOk;
  }

  const auto url = cli::env("MAILSYNC_DATABASE_URL");
  if (!url) {
    std::cerr << "mailsync migrate: MAILSYNC_DATABASE_URL is not set (a libpq URI such as "
                 "postgresql://mailsync@db.example:5432/mailsync)\n";
    return exit_code::kUsage;
  }

  const auto migrations = postgres::embedded_migrations();
  try {
    const postgres::MigrationReport report = postgres::Migrator(*url, migrations).run();
    for (const postgres::Migration& migration : migrations) {
      const std::string label = four_digits(migration.version) + "_" + std::string(migration.name);
      if (std::find(report.applied.begin(), report.applied.end(), migration.version) !=
          report.applied.end())
        std::cout << "applied " << label << "\n";
      else if (std::find(report.applied_elsewhere.begin(), report.applied_elsewhere.end(),
                         migration.version) != report.applied_elsewhere.end())
        std::cout << "skipped " << label << " (applied concurrently by another migrator)\n";
    }
    for (const int version : report.unknown)
      std::cerr << "mailsync migrate: warning: the database has migration " << four_digits(version)
                << ", which this binary does not know; it is newer than this binary\n";
    std::cout << "schema is at version " << (migrations.empty() ? 0 : migrations.back().version)
              << " (" << report.applied.size() << " applied now, "
              << report.already_applied.size() + report.applied_elsewhere.size()
              << " already present)\n";
    return exit_code::kOk;
  } catch (const postgres::MigrationError& e) {
    std::cerr << "mailsync migrate: " << e.what() << "\n";
    return exit_code::kFailure;
  } catch (...) {
    return cli::database_failure("mailsync migrate");
  }
}

}  // namespace mailsync::admin
