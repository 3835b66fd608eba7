#pragma once

#include <boost/program_options.hpp>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "mailsync/queue/route_store.hpp"

// Plumbing shared by the admin commands.
namespace mailsync::admin {

namespace po = boost::program_options;

// Parses `args` for `command`; prints help or the error. nullopt: go on; a value: exit with it.
std::optional<int> parse_options(const std::string& command, const po::options_description& options,
                                 std::span<const std::string> args, po::variables_map& vm,
                                 const po::positional_options_description* positional = nullptr);

// Connects to MAILSYNC_DATABASE_URL and runs `body`; maps a missing URL to exit 2, an unreachable
// database to exit 4 and a failed statement to exit 1, each with a one-line message.
int with_route_store(const std::string& command,
                     const std::function<int(queue::RouteStore&)>& body);

// A route given as its full key or as its Gmail address (when exactly one route has it).
std::optional<std::string> resolve_route(queue::RouteStore& store, const std::string& given,
                                         std::string& error);

// Aligned columns; cells are cut at `max_width` characters.
void print_table(const std::vector<std::string>& headers,
                 const std::vector<std::vector<std::string>>& rows, size_t max_width = 60);

// A JSON value as a table cell: strings unquoted, null as "-".
std::string cell(const nlohmann::json& value);

}  // namespace mailsync::admin
