#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mailsync/config/secret.hpp"

// Configuration (DESIGN.md section 4): environment first, routes from SYNC_ROUTES_JSON,
// SYNC_ROUTES_FILE or the single-route variables. One loader for the scheduler, the worker and the
// admin command; it names every problem at once.
namespace mailsync::config {

enum class InitialSync { kWindow, kAll, kNone };

struct Route {
  std::string gmail_email;
  std::string outlook_email;
  std::string target_folder;
  bool enabled = true;
  bool mark_seen = false;
  bool create_folder = true;
  int fallback_window_hours = 24;
  InitialSync initial_sync = InitialSync::kWindow;
  // The Google OAuth app is in "Testing" status: Google ends its refresh tokens after 7 days, and
  // `status` counts down to that (mailsync cannot see the app's status itself).
  bool gmail_oauth_app_testing = false;
  // Near-real-time delivery: a worker holds IDLE on the INBOX and enqueues the route's sync when
  // mail arrives (a route_watch job); the schedule stays as the safety net.
  bool push = false;
  std::string gmail_client_id;
  std::optional<Secret> gmail_client_secret;  // resolved only when the process needs secrets
  std::optional<Secret> gmail_refresh_token;

  // ROUTE#<gmail_email>#DEST#<outlook_email>#FOLDER#<folder>: the Postgres and DynamoDB key.
  std::string key() const;
};

std::string_view to_string(InitialSync initial_sync);

struct Endpoint {
  std::string host;
  uint16_t port = 993;
};

// Everything that is not a route.
struct Settings {
  std::string database_url;
  std::string outlook_email;                  // default for routes
  std::string gmail_client_id;                // GMAIL_CLIENT_ID: default for routes
  std::optional<Secret> gmail_client_secret;  // GMAIL_CLIENT_SECRET: default for routes
  std::string ms_client_id;
  std::optional<Secret> ms_client_secret;  // optional: public client registrations have none
  std::optional<Secret> ms_refresh_token;
  std::string ms_tenant = "consumers";
  std::string google_token_url = "https://oauth2.googleapis.com/token";
  std::string ms_token_url;  // default https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token
  Endpoint gmail_imap{"imap.gmail.com", 993};
  Endpoint outlook_imap{"outlook.office365.com", 993};
  std::string tls_ca_file;
  std::chrono::seconds sync_interval{300};
  // MAILSYNC_RECONCILE_GRACE_SECONDS: how long after an attempt lost its lease crash recovery
  // leaves its PENDING claims alone (longer than the longest APPEND; docs/state_machine.md).
  std::chrono::seconds reconcile_grace{120};
  // DynamoDB's settings are read by dynamo::dynamo_options_from_env, not here.
};

struct Config {
  Settings settings;
  std::vector<Route> routes;
  std::string routes_source;          // "SYNC_ROUTES_JSON", "SYNC_ROUTES_FILE=/path", "GMAIL_EMAIL"
  std::vector<std::string> errors;    // every problem, each naming its route or variable
  std::vector<std::string> warnings;  // loose secret file permissions, ...
  bool ok() const { return errors.empty(); }
};

// What the calling process needs. The scheduler and the admin command check the structure of
// secret fields without reading them, so they can run with no secrets in their environment; the
// worker and run-once resolve them all.
enum class Needs { kStructure, kSecrets };

// Routes from a JSON array of flat objects (the format of SYNC_ROUTES_JSON / SYNC_ROUTES_FILE),
// with `defaults` supplying outlook_email and the Gmail client id/secret where a route has none.
void parse_routes_json(const std::string& text, const Settings& defaults, Needs needs,
                       Config& config);

// Reads the environment, after merging AWS_SECRETS_MANAGER_SECRET_IDS into it.
Config load_config(Needs needs);

// AWS_SECRETS_MANAGER_SECRET_IDS merged into what cli::env sees, once per process (later calls
// return the first call's problems). Processes call it before reading any other variable.
const std::vector<std::string>& merge_secrets_manager_once();

// Both sides of a URL check: https, or http to a loopback host only.
bool acceptable_token_url(std::string_view url);

}  // namespace mailsync::config
