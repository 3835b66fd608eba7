#pragma once

#include <span>
#include <string>

// The `mailsync` admin subcommands.
namespace mailsync::admin {

int run_migrate(std::span<const std::string> args);
int run_enqueue(std::span<const std::string> args);
int run_status(std::span<const std::string> args);
int run_jobs(std::span<const std::string> args);
int run_dead(std::span<const std::string> args);
int run_pause(std::span<const std::string> args);
int run_resume(std::span<const std::string> args);
int run_routes(std::span<const std::string> args);
int run_auth(std::span<const std::string> args);
int run_gate(std::span<const std::string> args);
int run_dynamo(std::span<const std::string> args);
int run_run_once(std::span<const std::string> args);

}  // namespace mailsync::admin
