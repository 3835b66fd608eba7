#pragma once

#include <string>
#include <vector>

// Routes configuration (DESIGN.md section 4). This is the minimal loader the queue needs: it reads
// the addresses, folder and `enabled` of each route. The full loader (secrets, options,
// validation of every field) replaces load_routes() behind the same signature.
namespace mailsync::config {

struct Route {
  std::string gmail_email;
  std::string outlook_email;
  std::string target_folder;
  bool enabled = true;

  // ROUTE#<gmail_email>#DEST#<outlook_email>#FOLDER#<folder>: the Postgres and DynamoDB key.
  std::string key() const;
};

struct RoutesLoad {
  std::vector<Route> routes;
  std::vector<std::string> errors;  // every problem found, each naming the route and field
  std::string source;  // "SYNC_ROUTES_JSON", "SYNC_ROUTES_FILE=...", "GMAIL_EMAIL", ...
  bool ok() const { return errors.empty(); }
};

// Parses a JSON array of route objects; `default_outlook_email` fills a missing outlook_email.
RoutesLoad parse_routes_json(const std::string& text, const std::string& default_outlook_email);

// From SYNC_ROUTES_JSON, else SYNC_ROUTES_FILE, else the single-route variables (GMAIL_EMAIL,
// OUTLOOK_TARGET_FOLDER, OUTLOOK_EMAIL). No route configured at all is an error.
RoutesLoad load_routes();

}  // namespace mailsync::config
