#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mailsync/http/http_client.hpp"
#include "mailsync/imap/client.hpp"

// The local stack as tests use it: IMAP connection options, access tokens from the emulator,
// its admin endpoints, unique names.
namespace mailsync::testing {

enum class Server { kGmail, kOutlook };

imap::ClientOptions imap_options(Server server);
// The server's Dovecot itself, past the provider proxy under the "providers" profile: what it
// really stored, and the path for tests of Dovecot-only features (MULTIAPPEND).
imap::ClientOptions dovecot_options(Server server);

// The stack's profile (deploy/local/up.sh): "dovecot" or "providers", where the servers behave
// like Gmail and Outlook.com through deploy/local/provider_proxy.py.
bool providers_profile();
// Rules of the provider proxy for one user (its docstring lists them); replaced as a whole, and
// cleared when the guard goes. Tests that need them skip under the "dovecot" profile.
class ProviderRules {
 public:
  ProviderRules(std::string user, const nlohmann::json& rules);
  ~ProviderRules();
  ProviderRules(const ProviderRules&) = delete;
  ProviderRules& operator=(const ProviderRules&) = delete;
  void replace(const nlohmann::json& rules);

 private:
  std::string user_;
};
// What the proxy saw of a user: logins, connections, peak_connections, commands{NAME: n},
// refused_connections, rules_fired.
nlohmann::json provider_stats(const std::string& user);
std::string imap_user(Server server);  // alice@gmail.test / me@outlook.test

// POST a refresh-token grant to the server's provider; the HTTP response as it came.
http::HttpResponse refresh_grant(Server server, const std::string& refresh_token);
// A fresh access token for the stack's default user of `server`.
std::string access_token(Server server);
// A refresh token of its own for `user`, minted by the emulator, so tests can revoke it.
std::string mint_refresh_token(Server server, const std::string& user);
// POST JSON to the emulator's admin API (/admin/revoke, ...).
std::string emulator_admin(const std::string& path, const std::string& json_body);

// A client logged in with XOAUTH2 as the server's default user.
std::unique_ptr<imap::Client> logged_in_client(Server server);

// One of the stack's spare Gmail mailboxes (sync01..sync60@gmail.test), claimed for this test
// process alone (a lock file in the stack directory), with its INBOX emptied.
std::string claim_gmail_user();
// One of the stack's spare Outlook mailboxes (out01..out60@outlook.test), claimed for this test
// process alone: for provider rules that act on a whole mailbox.
std::string claim_outlook_user();
// A client logged in with XOAUTH2 as `user` of `server`, with a token minted for it.
std::unique_ptr<imap::Client> logged_in_client(Server server, const std::string& user);
// APPENDs a message to a mailbox of the "gmail" server with the stack's password (seeding).
void append_to_gmail(const std::string& user, const std::string& bytes,
                     const std::string& internaldate, const std::string& folder = "INBOX");

// Runs IMAP commands (no literals) as `user` of the "gmail" server, logged in with the stack's
// password, each to its tagged OK (else the test fails): what a person does in Gmail's web UI
// (archive, move back) and mailsync itself never sends to a source (MOVE, STORE).
void gmail_commands(const std::string& user, const std::vector<std::string>& commands);

// "prefix-<pid>-<counter>-<random>": distinct across tests and runs.
std::string unique_name(const std::string& prefix);

}  // namespace mailsync::testing
