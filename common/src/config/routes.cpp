#include "mailsync/config/routes.hpp"

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "mailsync/cli.hpp"

namespace mailsync::config {

std::string Route::key() const {
  return "ROUTE#" + gmail_email + "#DEST#" + outlook_email + "#FOLDER#" + target_folder;
}

namespace {

// One '@', something on both sides, no spaces or '#' (which would break the route key).
bool plausible_email(const std::string& value) {
  const size_t at = value.find('@');
  return at != std::string::npos && at > 0 && at + 1 < value.size() &&
         value.find('@', at + 1) == std::string::npos &&
         value.find_first_of(" \t\r\n#") == std::string::npos;
}

void check_route(const Route& route, const std::string& where, std::vector<std::string>& errors) {
  if (!plausible_email(route.gmail_email))
    errors.push_back(where + ": gmail_email '" + route.gmail_email + "' is not an email address");
  if (!plausible_email(route.outlook_email))
    errors.push_back(where + ": outlook_email '" + route.outlook_email +
                     "' is not an email address (set it on the route or OUTLOOK_EMAIL)");
  if (route.target_folder.empty()) errors.push_back(where + ": outlook_target_folder is missing");
  if (route.target_folder.find_first_of("\r\n") != std::string::npos)
    errors.push_back(where + ": outlook_target_folder contains a line break");
}

}  // namespace

RoutesLoad parse_routes_json(const std::string& text, const std::string& default_outlook_email) {
  RoutesLoad load;
  const nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    load.errors.push_back("routes are not valid JSON");
    return load;
  }
  if (!doc.is_array()) {
    load.errors.push_back("routes must be a JSON array of objects");
    return load;
  }
  std::set<std::string> keys;
  for (size_t i = 0; i < doc.size(); ++i) {
    const auto& item = doc[i];
    std::string where = "route " + std::to_string(i + 1);
    if (!item.is_object()) {
      load.errors.push_back(where + ": not a JSON object");
      continue;
    }
    auto text_field = [&](const char* name, const std::string& fallback) {
      const auto found = item.find(name);
      if (found == item.end() || found->is_null()) return fallback;
      if (!found->is_string()) {
        load.errors.push_back(where + ": " + name + " must be a string");
        return fallback;
      }
      return found->get<std::string>();
    };
    Route route{text_field("gmail_email", ""), text_field("outlook_email", default_outlook_email),
                text_field("outlook_target_folder", ""), true};
    if (const auto enabled = item.find("enabled"); enabled != item.end()) {
      if (enabled->is_boolean())
        route.enabled = enabled->get<bool>();
      else
        load.errors.push_back(where + ": enabled must be true or false");
    }
    if (!route.gmail_email.empty()) where += " (" + route.gmail_email + ")";
    check_route(route, where, load.errors);
    if (!keys.insert(route.key()).second)
      load.errors.push_back(where + ": duplicate route " + route.key());
    load.routes.push_back(std::move(route));
  }
  return load;
}

RoutesLoad load_routes() {
  const std::string outlook = cli::env("OUTLOOK_EMAIL").value_or("");
  if (const auto inline_json = cli::env("SYNC_ROUTES_JSON")) {
    RoutesLoad load = parse_routes_json(*inline_json, outlook);
    load.source = "SYNC_ROUTES_JSON";
    return load;
  }
  if (const auto path = cli::env("SYNC_ROUTES_FILE")) {
    std::ifstream in(*path);
    if (!in) {
      RoutesLoad load;
      load.source = "SYNC_ROUTES_FILE=" + *path;
      load.errors.push_back("SYNC_ROUTES_FILE: cannot read " + *path);
      return load;
    }
    std::stringstream text;
    text << in.rdbuf();
    RoutesLoad load = parse_routes_json(text.str(), outlook);
    load.source = "SYNC_ROUTES_FILE=" + *path;
    return load;
  }
  RoutesLoad load;
  load.source = "GMAIL_EMAIL";
  const auto gmail = cli::env("GMAIL_EMAIL");
  if (!gmail) {
    load.errors.push_back(
        "no routes configured: set SYNC_ROUTES_JSON, SYNC_ROUTES_FILE or GMAIL_EMAIL");
    return load;
  }
  Route route{*gmail, outlook, cli::env("OUTLOOK_TARGET_FOLDER").value_or(""), true};
  check_route(route, "route " + *gmail, load.errors);
  load.routes.push_back(std::move(route));
  return load;
}

}  // namespace mailsync::config
