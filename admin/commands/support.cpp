#include "commands/support.hpp"

#include <iostream>

#include "mailsync/cli.hpp"
#include "mailsync/exit_codes.hpp"

namespace mailsync::admin {

std::optional<int> parse_options(const std::string& command, const po::options_description& options,
                                 std::span<const std::string> args, po::variables_map& vm,
                                 const po::positional_options_description* positional) {
  try {
    auto parser = po::command_line_parser(std::vector<std::string>(args.begin(), args.end()))
                      .options(options);
    if (positional != nullptr) parser.positional(*positional);
    po::store(parser.run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "mailsync " << command << ": " << e.what() << "\n";
    return exit_code::kUsage;
  }
  if (vm.count("help")) {
    std::cout << options;
    return exit_code::kOk;
  }
  return std::nullopt;
}

int with_route_store(const std::string& command,
                     const std::function<int(queue::RouteStore&)>& body) {
  const auto url = cli::env("MAILSYNC_DATABASE_URL");
  if (!url) {
    std::cerr << "mailsync " << command << ": MAILSYNC_DATABASE_URL is not set\n";
    return exit_code::kUsage;
  }
  try {
    auto store = queue::make_pg_route_store(*url, "mailsync " + command);
    return body(*store);
  } catch (...) {
    return cli::database_failure("mailsync " + command);
  }
}

std::optional<std::string> resolve_route(queue::RouteStore& store, const std::string& given,
                                         std::string& error) {
  if (given.starts_with("ROUTE#")) {
    if (store.route_exists(given)) return given;
    error = "no route " + given + " (`mailsync status` lists the routes)";
    return std::nullopt;
  }
  std::vector<std::string> matches;
  for (const auto& row : store.route_status())
    if (row.value("gmail_email", "") == given) matches.push_back(row.value("route_key", ""));
  if (matches.size() == 1) return matches.front();
  error =
      matches.empty()
          ? "no route for '" + given +
                "' (give a route key or a Gmail address; `mailsync status` lists them)"
          : "'" + given + "' has " + std::to_string(matches.size()) + " routes; give the route key";
  return std::nullopt;
}

std::string cell(const nlohmann::json& value) {
  if (value.is_null()) return "-";
  if (value.is_string()) return value.get<std::string>();
  return value.dump();
}

void print_table(const std::vector<std::string>& headers,
                 const std::vector<std::vector<std::string>>& rows, size_t max_width) {
  auto clip = [&](const std::string& text) {
    std::string one = text;
    for (char& c : one)
      if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    return one.size() > max_width ? one.substr(0, max_width - 3) + "..." : one;
  };
  std::vector<size_t> widths;
  for (const auto& header : headers) widths.push_back(header.size());
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i)
      widths[i] = std::max(widths[i], clip(row[i]).size());
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < widths.size(); ++i) {
      const std::string text = i < row.size() ? clip(row[i]) : "";
      line += text;
      if (i + 1 < widths.size()) line += std::string(widths[i] - text.size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::cout << line << "\n";
  };
  print_row(headers);
  for (const auto& row : rows) print_row(row);
}

}  // namespace mailsync::admin
