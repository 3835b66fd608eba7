// `mailsync gate` and `mailsync dynamo create-table`.

#include <iostream>

#include "commands/commands.hpp"
#include "commands/support.hpp"
#include "mailsync/cli.hpp"
#include "mailsync/dynamo/dynamo_client.hpp"
#include "mailsync/exit_codes.hpp"

namespace mailsync::admin {

namespace {

std::optional<dynamo::DynamoClient> client_or_report(const char* command) {
  const auto settings =
      dynamo::dynamo_options_from_env(cli::env("MAILSYNC_TLS_CA_FILE").value_or(""));
  if (!settings.options) {
    for (const auto& error : settings.errors)
      std::cerr << "mailsync " << command << ": " << error << "\n";
    return std::nullopt;
  }
  return std::optional<dynamo::DynamoClient>(std::in_place, *settings.options);
}

}  // namespace

int run_gate(std::span<const std::string> args) {
  po::options_description options(
      "Usage: mailsync gate\n"
      "Checks that the DynamoDB table answers and is ACTIVE: exit 0 when it does, 3 when not.\n"
      "Workers make the same check before any IMAP work.\n\nOptions");
  options.add_options()("help,h", "show this help");
  po::variables_map vm;
  if (auto exit = parse_options("gate", options, args, vm)) return *exit;
  auto client = client_or_report("gate");
  if (!client) return exit_code::kUsage;
  try {
    client->check_table();
    std::cout << "gate open: DynamoDB table " << client->table() << " is ACTIVE\n";
    return exit_code::kOk;
  } catch (const dynamo::DynamoError& e) {
    std::cerr << "mailsync gate: closed: " << e.what() << "\n";
    return exit_code::kGateUnavailable;
  }
}

int run_dynamo(std::span<const std::string> args) {
  po::options_description options(
      "Usage: mailsync dynamo create-table\n"
      "Creates the DynamoDB table (PK, SK; on-demand) if it does not exist and enables TTL on\n"
      "`ttl` where the endpoint supports it.\n\nOptions");
  options.add_options()("help,h", "show this help")("action", po::value<std::string>(),
                                                    "create-table");
  po::positional_options_description positional;
  positional.add("action", 1);
  po::variables_map vm;
  if (auto exit = parse_options("dynamo", options, args, vm, &positional)) return *exit;
  if (!vm.count("action") || vm["action"].as<std::string>() != "create-table") {
    std::cerr << "mailsync dynamo: the only action is create-table\n";
    return exit_code::kUsage;
  }
  auto client = client_or_report("dynamo");
  if (!client) return exit_code::kUsage;
  try {
    const std::string ttl = client->create_table();
    std::cout << "table " << client->table() << " is ACTIVE; TTL on ttl: " << ttl << "\n";
    return exit_code::kOk;
  } catch (const dynamo::DynamoError& e) {
    std::cerr << "mailsync dynamo: " << e.what() << "\n";
    return e.kind() == dynamo::DynamoError::Kind::kUnavailable ? exit_code::kGateUnavailable
                                                               : exit_code::kFailure;
  }
}

}  // namespace mailsync::admin
