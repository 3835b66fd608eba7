#include "mailsync/config/config.hpp"

#include <fmt/format.h>

#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "mailsync/aws/secrets_manager.hpp"
#include "mailsync/cli.hpp"
#include "mailsync/imap/utf7.hpp"

namespace mailsync::config {

std::string Route::key() const {
  return "ROUTE#" + gmail_email + "#DEST#" + outlook_email + "#FOLDER#" + target_folder;
}

std::string_view to_string(InitialSync initial_sync) {
  switch (initial_sync) {
    case InitialSync::kWindow:
      return "window";
    case InitialSync::kAll:
      return "all";
    case InitialSync::kNone:
      return "none";
  }
  return "window";
}

bool acceptable_token_url(std::string_view url) {
  const bool https = url.starts_with("https://");
  if (!https && !url.starts_with("http://")) return false;
  const size_t start = https ? 8 : 7;
  // The authority ends at the path, query or fragment. A user part ("http://localhost:x@evil/")
  // would make the real host the part after '@': a token URL never has one.
  const std::string_view authority = url.substr(start, url.find_first_of("/?#", start) - start);
  if (authority.empty() || authority.find('@') != std::string_view::npos) return false;
  if (https) return true;
  const std::string_view host = authority.starts_with("[")
                                    ? authority.substr(0, authority.find(']') + 1)
                                    : authority.substr(0, authority.find(':'));
  return host == "127.0.0.1" || host == "localhost" || host == "[::1]";
}

namespace {

// One '@', something on both sides, no whitespace or '#' (which would break the route key).
bool plausible_email(const std::string& value) {
  const size_t at = value.find('@');
  return at != std::string::npos && at > 0 && at + 1 < value.size() &&
         value.find('@', at + 1) == std::string::npos &&
         value.find_first_of(" \t\r\n#") == std::string::npos;
}

const std::set<std::string>& known_route_fields() {
  static const std::set<std::string> fields = {"gmail_email",
                                               "outlook_email",
                                               "outlook_target_folder",
                                               "gmail_client_id",
                                               "gmail_client_secret",
                                               "gmail_refresh_token",
                                               "mark_seen",
                                               "create_folder",
                                               "fallback_window_hours",
                                               "enabled",
                                               "initial_sync",
                                               "gmail_oauth_app_testing",
                                               "push"};
  return fields;
}

// Resolves a secret field; with Needs::kStructure only its form is checked.
std::optional<Secret> secret_field(const std::string& spec, const std::string& where, Needs needs,
                                   Config& config) {
  if (spec.empty()) {
    // Processes that do not read secrets (scheduler, admin) may run without them.
    if (needs == Needs::kSecrets) config.errors.push_back(where + " is missing");
    return std::nullopt;
  }
  if (needs == Needs::kStructure) {
    if ((spec == "env:") || (spec == "file:"))
      config.errors.push_back(where + ": '" + spec + "' names nothing");
    else if (spec.starts_with("aws-sm:") && !parse_store_ref(spec))
      config.errors.push_back(where + ": '" + spec + "' is not aws-sm:SECRET_ID#KEY");
    return std::nullopt;
  }
  SecretResolution resolved = resolve_secret(spec, where);
  if (!resolved.error.empty()) config.errors.push_back(resolved.error);
  if (!resolved.warning.empty()) config.warnings.push_back(resolved.warning);
  return resolved.secret;
}

void check_route(const Route& route, const std::string& where, Config& config) {
  if (!plausible_email(route.gmail_email))
    config.errors.push_back(where + ": gmail_email '" + route.gmail_email +
                            "' is not an email address");
  if (!plausible_email(route.outlook_email))
    config.errors.push_back(where + ": outlook_email '" + route.outlook_email +
                            "' is not an email address (set it on the route or OUTLOOK_EMAIL)");
  if (route.target_folder.empty()) {
    config.errors.push_back(where + ": outlook_target_folder is missing");
  } else if (route.target_folder.find_first_of(std::string_view("\r\n\0", 3)) !=
                 std::string::npos ||
             !imap::encode_mailbox_name(route.target_folder)) {
    config.errors.push_back(where +
                            ": outlook_target_folder contains a line break, NUL or invalid UTF-8");
  }
  if (route.gmail_client_id.empty())
    config.errors.push_back(
        where + ": gmail_client_id is missing (set it on the route or GMAIL_CLIENT_ID)");
  if (route.fallback_window_hours < 1 || route.fallback_window_hours > 24 * 366)
    config.errors.push_back(where + ": fallback_window_hours must be between 1 and 8784");
}

std::string env_or(const char* name, const std::string& fallback) {
  return cli::env(name).value_or(fallback);
}

// A secret variable as a secret spec: its value when that is itself a reference ("file:/run/x"),
// else a reference to the variable (resolve_secret knows when that came from Secrets Manager), so
// the Secret says where it came from.
std::string env_secret(const char* name) {
  const auto value = cli::env(name);
  if (!value) return "";
  if (value->starts_with("env:") || value->starts_with("file:") || value->starts_with("aws-sm:"))
    return *value;
  return std::string("env:") + name;
}

Endpoint endpoint(const char* host_variable, const char* port_variable, const Endpoint& fallback,
                  Config& config) {
  Endpoint result{env_or(host_variable, fallback.host), fallback.port};
  if (const auto port = cli::env(port_variable)) {
    char* end = nullptr;
    const long value = std::strtol(port->c_str(), &end, 10);
    if (end == port->c_str() || *end != '\0' || value < 1 || value > 65535)
      config.errors.push_back(std::string(port_variable) + "=" + *port + " is not a port number");
    else
      result.port = static_cast<uint16_t>(value);
  }
  return result;
}

}  // namespace

void parse_routes_json(const std::string& text, const Settings& defaults, Needs needs,
                       Config& config) {
  const nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    config.errors.push_back(config.routes_source + ": not valid JSON");
    return;
  }
  if (!doc.is_array() || doc.empty()) {
    config.errors.push_back(config.routes_source +
                            ": routes must be a non-empty JSON array of objects");
    return;
  }
  std::set<std::string> keys;
  for (size_t i = 0; i < doc.size(); ++i) {
    const auto& item = doc[i];
    std::string where = "route " + std::to_string(i + 1);
    if (!item.is_object()) {
      config.errors.push_back(where + ": not a JSON object");
      continue;
    }
    if (item.contains("gmail_email") && item["gmail_email"].is_string())
      where += " (" + item["gmail_email"].get<std::string>() + ")";
    for (const auto& [name, value] : item.items())
      if (!known_route_fields().contains(name))
        config.errors.push_back(fmt::format("{}: unknown option '{}'", where, name));

    auto text_field = [&](const char* name, const std::string& fallback) {
      const auto found = item.find(name);
      if (found == item.end() || found->is_null()) return fallback;
      if (!found->is_string()) {
        config.errors.push_back(where + ": " + name + " must be a string");
        return fallback;
      }
      return found->get<std::string>();
    };
    auto bool_field = [&](const char* name, bool fallback) {
      const auto found = item.find(name);
      if (found == item.end()) return fallback;
      if (!found->is_boolean()) {
        config.errors.push_back(where + ": " + name + " must be true or false");
        return fallback;
      }
      return found->get<bool>();
    };

    Route route;
    route.gmail_email = text_field("gmail_email", "");
    route.outlook_email = text_field("outlook_email", defaults.outlook_email);
    route.target_folder = text_field("outlook_target_folder", "");
    route.gmail_client_id = text_field("gmail_client_id", defaults.gmail_client_id);
    route.enabled = bool_field("enabled", true);
    route.mark_seen = bool_field("mark_seen", false);
    route.create_folder = bool_field("create_folder", true);
    route.gmail_oauth_app_testing = bool_field("gmail_oauth_app_testing", false);
    route.push = bool_field("push", false);
    if (const auto hours = item.find("fallback_window_hours"); hours != item.end()) {
      if (hours->is_number_integer())
        route.fallback_window_hours = hours->get<int>();
      else
        config.errors.push_back(where + ": fallback_window_hours must be a whole number of hours");
    }
    const std::string initial = text_field("initial_sync", "window");
    if (initial == "window")
      route.initial_sync = InitialSync::kWindow;
    else if (initial == "all")
      route.initial_sync = InitialSync::kAll;
    else if (initial == "none")
      route.initial_sync = InitialSync::kNone;
    else
      config.errors.push_back(
          fmt::format("{}: initial_sync '{}' is not window, all or none", where, initial));

    if (item.contains("gmail_client_secret")) {
      route.gmail_client_secret = secret_field(text_field("gmail_client_secret", ""),
                                               where + ": gmail_client_secret", needs, config);
    } else if (defaults.gmail_client_secret || needs == Needs::kStructure) {
      route.gmail_client_secret = defaults.gmail_client_secret;
    } else {
      config.errors.push_back(
          where + ": gmail_client_secret is missing (set it on the route or GMAIL_CLIENT_SECRET)");
    }
    route.gmail_refresh_token = secret_field(text_field("gmail_refresh_token", ""),
                                             where + ": gmail_refresh_token", needs, config);

    check_route(route, where, config);
    if (!keys.insert(route.key()).second)
      config.errors.push_back(where + ": duplicate route " + route.key());
    config.routes.push_back(std::move(route));
  }
}

const std::vector<std::string>& merge_secrets_manager_once() {
  static std::once_flag once;
  static std::vector<std::string> problems;
  std::call_once(once, [] { problems = aws::merge_secrets_manager_environment(); });
  return problems;
}

Config load_config(Needs needs) {
  Config config;
  config.errors = merge_secrets_manager_once();
  Settings& s = config.settings;
  s.database_url = env_or("MAILSYNC_DATABASE_URL", "");
  s.outlook_email = env_or("OUTLOOK_EMAIL", "");
  s.gmail_client_id = env_or("GMAIL_CLIENT_ID", "");
  s.ms_client_id = env_or("MS_CLIENT_ID", "");
  s.ms_tenant = env_or("MS_TENANT", "consumers");
  s.google_token_url = env_or("GOOGLE_TOKEN_URL", s.google_token_url);
  s.ms_token_url = env_or(
      "MS_TOKEN_URL", "https://login.microsoftonline.com/" + s.ms_tenant + "/oauth2/v2.0/token");
  s.gmail_imap = endpoint("GMAIL_IMAP_HOST", "GMAIL_IMAP_PORT", s.gmail_imap, config);
  s.outlook_imap = endpoint("OUTLOOK_IMAP_HOST", "OUTLOOK_IMAP_PORT", s.outlook_imap, config);
  s.tls_ca_file = env_or("MAILSYNC_TLS_CA_FILE", "");

  const cli::IntSetting interval = cli::env_positive_int("SYNC_INTERVAL_SECONDS", 300);
  if (!interval.error.empty()) config.errors.push_back(interval.error);
  s.sync_interval = std::chrono::seconds(interval.value);
  const cli::IntSetting grace = cli::env_positive_int("MAILSYNC_RECONCILE_GRACE_SECONDS", 120);
  if (!grace.error.empty()) config.errors.push_back(grace.error);
  s.reconcile_grace = std::chrono::seconds(grace.value);
  for (const auto& [name, url] :
       {std::pair{"GOOGLE_TOKEN_URL", s.google_token_url}, {"MS_TOKEN_URL", s.ms_token_url}})
    if (!acceptable_token_url(url))
      config.errors.push_back(std::string(name) + "=" + url +
                              " must be https:// (or http:// to a loopback host)");
  if (!s.tls_ca_file.empty() && !std::ifstream(s.tls_ca_file))
    config.errors.push_back("MAILSYNC_TLS_CA_FILE: cannot read " + s.tls_ca_file);

  if (cli::env("GMAIL_CLIENT_SECRET"))
    s.gmail_client_secret =
        secret_field(env_secret("GMAIL_CLIENT_SECRET"), "GMAIL_CLIENT_SECRET", needs, config);
  if (cli::env("MS_CLIENT_SECRET"))
    s.ms_client_secret =
        secret_field(env_secret("MS_CLIENT_SECRET"), "MS_CLIENT_SECRET", needs, config);
  if (needs == Needs::kSecrets) {
    if (s.ms_client_id.empty())
      config.errors.emplace_back("MS_CLIENT_ID is not set (the Outlook app registration)");
    s.ms_refresh_token =
        secret_field(env_secret("MS_REFRESH_TOKEN"), "MS_REFRESH_TOKEN", needs, config);
  }

  if (const auto inline_json = cli::env("SYNC_ROUTES_JSON")) {
    config.routes_source = "SYNC_ROUTES_JSON";
    parse_routes_json(*inline_json, s, needs, config);
  } else if (const auto path = cli::env("SYNC_ROUTES_FILE")) {
    config.routes_source = "SYNC_ROUTES_FILE=" + *path;
    std::ifstream in(*path);
    if (!in) {
      config.errors.push_back("SYNC_ROUTES_FILE: cannot read " + *path);
    } else {
      std::stringstream text;
      text << in.rdbuf();
      parse_routes_json(text.str(), s, needs, config);
    }
  } else if (const auto gmail = cli::env("GMAIL_EMAIL")) {
    config.routes_source = "GMAIL_EMAIL";
    nlohmann::json route = {{"gmail_email", *gmail},
                            {"outlook_target_folder", env_or("OUTLOOK_TARGET_FOLDER", "")}};
    if (cli::env("GMAIL_REFRESH_TOKEN"))
      route["gmail_refresh_token"] = env_secret("GMAIL_REFRESH_TOKEN");
    parse_routes_json(nlohmann::json::array({route}).dump(), s, needs, config);
  } else {
    config.errors.emplace_back(
        "no routes configured: set SYNC_ROUTES_JSON, SYNC_ROUTES_FILE or GMAIL_EMAIL");
  }
  return config;
}

}  // namespace mailsync::config
