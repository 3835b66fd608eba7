#pragma once

#include <span>
#include <string>

// The `mailsync` admin subcommands, one file each.
namespace mailsync::admin {

int run_migrate(std::span<const std::string> args);

}  // namespace mailsync::admin
