// `mailsync auth gmail|microsoft`: obtains a refresh token with the authorization-code flow
// (PKCE S256, state, loopback redirect) and prints it as JSON, or stores it in a file.

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands/commands.hpp"
#include "commands/support.hpp"
#include "mailsync/aws/secrets_manager.hpp"
#include "mailsync/cli.hpp"
#include "mailsync/config/secret.hpp"
#include "mailsync/exit_codes.hpp"
#include "mailsync/net/loopback_listener.hpp"
#include "mailsync/oauth/authorization.hpp"
#include "mailsync/util/strings.hpp"

extern char** environ;

namespace mailsync::admin {

namespace {

// What a desktop browser needs from our environment, and nothing else: the helper's environment
// holds client secrets and refresh tokens (GMAIL_CLIENT_SECRET, MS_REFRESH_TOKEN, AWS keys), and a
// browser passes its environment on to every helper and plugin it starts.
bool browser_needs(std::string_view entry) {
  static constexpr std::array<std::string_view, 14> kNames = {
      "PATH",     "HOME",  "USER",    "LOGNAME",         "SHELL",      "LANG",
      "LANGUAGE", "TZ",    "DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY", "DBUS_SESSION_BUS_ADDRESS",
      "BROWSER",  "TMPDIR"};
  const std::string_view name = entry.substr(0, entry.find('='));
  for (const std::string_view allowed : kNames)
    if (name == allowed) return true;
  return name.starts_with("LC_") || name.starts_with("XDG_");
}

// Opens the URL with the desktop's browser, if there is one; silent when there is none.
void try_open_browser(const std::string& url) {
  std::vector<char*> environment;
  for (char** entry = environ; *entry != nullptr; ++entry)
    if (browser_needs(*entry)) environment.push_back(*entry);
  environment.push_back(nullptr);
  pid_t pid = 0;
  const char* argv[] = {"xdg-open", url.c_str(), nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  if (posix_spawnp(&pid, "xdg-open", &actions, nullptr, const_cast<char**>(argv),
                   environment.data()) == 0) {
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
  posix_spawn_file_actions_destroy(&actions);
}

// `--client-secret -`: one line from standard input, not echoed when it is a terminal.
std::string read_secret_line() {
  const bool terminal = ::isatty(0) != 0;
  termios saved{};
  if (terminal && ::tcgetattr(0, &saved) == 0) {
    std::cerr << "Client secret: " << std::flush;
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(0, TCSANOW, &quiet);
  }
  std::string line;
  std::getline(std::cin, line);
  if (terminal) {
    ::tcsetattr(0, TCSANOW, &saved);
    std::cerr << "\n";
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

std::string shell_quote(const std::string& value) {
  std::string out = "'";
  for (const char c : value) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

constexpr const char* kDonePage =
    "<!doctype html><title>mailsync</title><p>mailsync has its authorization. You can close this "
    "window.</p>";

}  // namespace

int run_auth(std::span<const std::string> args) {
  po::options_description options(
      "Usage: mailsync auth gmail|microsoft [options]\n"
      "Signs in through the browser (authorization code with PKCE) and prints a refresh token as\n"
      "JSON, with an env_export line. Without a browser here: open the printed URL elsewhere and\n"
      "forward the port (ssh -L PORT:127.0.0.1:PORT this-host).\n"
      "Endpoints: GOOGLE_AUTH_URL, GOOGLE_TOKEN_URL, MS_AUTH_URL, MS_TOKEN_URL, "
      "MS_TENANT.\n\nOptions");
  // clang-format off
  options.add_options()
      ("help,h", "show this help")
      ("provider", po::value<std::string>(), "gmail or microsoft")
      ("client-id", po::value<std::string>(), "OAuth client id (default GMAIL_CLIENT_ID / MS_CLIENT_ID)")
      ("client-secret", po::value<std::string>(),
       "env:NAME, file:PATH or - (read from standard input); never the value itself, which "
       "every user could read in ps (default GMAIL_CLIENT_SECRET / MS_CLIENT_SECRET)")
      ("login-hint", po::value<std::string>(), "the account to sign in as")
      ("port", po::value<int>()->default_value(0), "loopback port for the redirect (0: any free port)")
      ("no-browser", "only print the URL")
      ("write-file", po::value<std::string>(), "store the refresh token in this file (0600) instead of printing it")
      ("write-secret-id", po::value<std::string>(),
       "store the refresh token in this AWS Secrets Manager secret (ID or ARN; a JSON object whose "
       "other keys are kept) instead of printing it; with --write-secret-key")
      ("write-secret-key", po::value<std::string>(), "the key of the secret's JSON object to set")
      ("timeout-seconds", po::value<int>()->default_value(300), "how long to wait for the sign-in");
  // clang-format on
  po::positional_options_description positional;
  positional.add("provider", 1);
  po::variables_map vm;
  if (auto exit = parse_options("auth", options, args, vm, &positional)) return *exit;

  const std::string which = vm.count("provider") ? vm["provider"].as<std::string>() : "";
  if (which != "gmail" && which != "microsoft") {
    std::cerr << "mailsync auth: say which: mailsync auth gmail | mailsync auth microsoft\n";
    return exit_code::kUsage;
  }
  const bool google = which == "gmail";
  const std::string variable = google ? "GMAIL_REFRESH_TOKEN" : "MS_REFRESH_TOKEN";
  std::optional<config::SecretStoreRef> write_secret;
  if (vm.count("write-secret-id") || vm.count("write-secret-key")) {
    const std::string id =
        vm.count("write-secret-id") ? vm["write-secret-id"].as<std::string>() : "";
    const std::string key =
        vm.count("write-secret-key") ? vm["write-secret-key"].as<std::string>() : "";
    if (id.empty() || key.empty() || vm.count("write-file")) {
      std::cerr << "mailsync auth: --write-secret-id and --write-secret-key go together (e.g. "
                   "--write-secret-id mailsync/prod --write-secret-key "
                << variable << "), without --write-file\n";
      return exit_code::kUsage;
    }
    // Before the sign-in: a secret that cannot be read or written is said now, not after it.
    try {
      aws::secrets_manager_from_env()->fetch(id);
    } catch (const std::exception& e) {
      std::cerr << "mailsync auth: " << e.what() << "\n";
      return exit_code::kUsage;
    }
    write_secret = config::SecretStoreRef{id, key};
  }
  const std::string tenant = cli::env("MS_TENANT").value_or("consumers");
  const std::string authorize_url =
      google
          ? cli::env("GOOGLE_AUTH_URL").value_or("https://accounts.google.com/o/oauth2/v2/auth")
          : cli::env("MS_AUTH_URL")
                .value_or("https://login.microsoftonline.com/" + tenant + "/oauth2/v2.0/authorize");
  const std::string token_url =
      google ? cli::env("GOOGLE_TOKEN_URL").value_or("https://oauth2.googleapis.com/token")
             : cli::env("MS_TOKEN_URL")
                   .value_or("https://login.microsoftonline.com/" + tenant + "/oauth2/v2.0/token");
  const std::string client_id =
      vm.count("client-id") ? vm["client-id"].as<std::string>()
                            : cli::env(google ? "GMAIL_CLIENT_ID" : "MS_CLIENT_ID").value_or("");
  if (client_id.empty()) {
    std::cerr << "mailsync auth: no client id: give --client-id or set "
              << (google ? "GMAIL_CLIENT_ID" : "MS_CLIENT_ID") << "\n";
    return exit_code::kUsage;
  }
  std::optional<std::string> client_secret;
  std::string secret_spec =
      vm.count("client-secret")
          ? vm["client-secret"].as<std::string>()
          : cli::env(google ? "GMAIL_CLIENT_SECRET" : "MS_CLIENT_SECRET").value_or("");
  if (vm.count("client-secret")) {
    if (secret_spec == "-") {
      client_secret = read_secret_line();
      secret_spec.clear();  // the value itself, not a reference to resolve
      if (client_secret->empty()) {
        std::cerr << "mailsync auth: --client-secret -: standard input held no secret\n";
        return exit_code::kUsage;
      }
    } else if (!secret_spec.starts_with("env:") && !secret_spec.starts_with("file:") &&
               !secret_spec.starts_with("aws-sm:")) {
      // Refused, not just warned about: by now it has been in /proc/PID/cmdline and perhaps the
      // shell's history, so say where to rotate it too.
      std::cerr << "mailsync auth: --client-secret takes env:NAME, file:PATH, aws-sm:ID#KEY or - "
                   "(standard "
                   "input), not the secret itself: a command line is readable by every user of "
                   "this machine (ps). Rotate that secret if this machine is shared, and give it "
                   "as, e.g., --client-secret env:"
                << (google ? "GMAIL_CLIENT_SECRET" : "MS_CLIENT_SECRET") << "\n";
      return exit_code::kUsage;
    }
  }
  if (!secret_spec.empty()) {
    const config::SecretResolution resolved = config::resolve_secret(secret_spec, "client secret");
    if (!resolved.secret) {
      std::cerr << "mailsync auth: " << resolved.error << "\n";
      return exit_code::kUsage;
    }
    if (!resolved.warning.empty())
      std::cerr << "mailsync auth: warning: " << resolved.warning << "\n";
    client_secret = resolved.secret->reveal();
  }

  try {
    net::LoopbackHttpListener listener(static_cast<uint16_t>(vm["port"].as<int>()));
    // Google accepts any port on 127.0.0.1 for desktop clients; Microsoft registers "localhost".
    const std::string redirect_uri =
        std::string(google ? "http://127.0.0.1:" : "http://localhost:") +
        std::to_string(listener.port()) + "/";
    const oauth::Pkce pkce = oauth::make_pkce();
    const std::string state = oauth::make_state();
    oauth::AuthorizationRequest request{
        google ? oauth::Provider::kGoogle : oauth::Provider::kMicrosoft,
        authorize_url,
        client_id,
        redirect_uri,
        state,
        pkce.challenge,
        std::nullopt};
    if (vm.count("login-hint")) request.login_hint = vm["login-hint"].as<std::string>();
    const std::string url = oauth::authorization_url(request);
    std::cerr << "Open this URL in a browser, sign in and allow access:\n\n"
              << url << "\n\nWaiting for the redirect to " << redirect_uri << " ...\n"
              << std::flush;
    if (!vm.count("no-browser")) try_open_browser(url);

    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(vm["timeout-seconds"].as<int>());
    std::map<std::string, std::string> query;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      const auto target = left.count() > 0 ? listener.next_request(left) : std::nullopt;
      if (!target) {
        std::cerr << "mailsync auth: no sign-in arrived within " << vm["timeout-seconds"].as<int>()
                  << " s\n";
        return exit_code::kFailure;
      }
      const size_t question = target->find('?');
      if (target->substr(0, question) != "/") {  // favicon and the like
        listener.respond(404, "Not found");
        continue;
      }
      query = util::parse_query(question == std::string::npos ? "" : target->substr(question + 1));
      if (query["state"] != state) {
        listener.respond(400,
                         "The state does not match this sign-in; start again with mailsync auth.");
        std::cerr << "mailsync auth: the redirect's state does not match this request (a stale or "
                     "forged redirect)\n";
        return exit_code::kFailure;
      }
      break;
    }
    if (query.contains("error")) {
      listener.respond(400, "Sign-in failed: " + query["error"]);
      std::cerr << "mailsync auth: sign-in failed: " << query["error"]
                << (query["error_description"].empty() ? ""
                                                       : " (" + query["error_description"] + ")")
                << "\n";
      return exit_code::kFailure;
    }
    if (query["code"].empty()) {
      listener.respond(400, "No authorization code in the redirect.");
      std::cerr << "mailsync auth: the redirect carries no authorization code\n";
      return exit_code::kFailure;
    }

    const oauth::TokenResponse response =
        oauth::exchange_code({request.provider, token_url, client_id, client_secret, query["code"],
                              redirect_uri, pkce.verifier},
                             {.ca_file = cli::env("MAILSYNC_TLS_CA_FILE").value_or("")});
    if (const auto* error = std::get_if<oauth::TokenError>(&response)) {
      listener.respond(400, "The code exchange failed: " + error->error);
      std::cerr << "mailsync auth: the token endpoint refused the code: " << error->error
                << (error->description.empty() ? "" : " (" + error->description + ")") << "\n";
      return exit_code::kFailure;
    }
    const auto& grant = std::get<oauth::TokenGrant>(response);
    if (!grant.refresh_token) {
      listener.respond(400, "No refresh token was issued.");
      std::cerr << "mailsync auth: no refresh token was issued"
                << (google ? " (revoke the app's access at "
                             "https://myaccount.google.com/permissions and retry)"
                           : "")
                << "\n";
      return exit_code::kFailure;
    }
    listener.respond(200, kDonePage);

    nlohmann::json out = {{"provider", which}, {"scope", grant.scope}};
    if (write_secret) {
      // Read-modify-write of the secret's object, the other keys kept (aws/secrets_manager.hpp).
      config::secret_store()->write(write_secret->id, write_secret->key, *grant.refresh_token,
                                    std::nullopt);
      const std::string reference = "aws-sm:" + write_secret->id + "#" + write_secret->key;
      out["secret"] = reference;
      out["env_export"] = "export " + variable + "=" + shell_quote(reference);
    } else if (vm.count("write-file")) {
      const std::string path = vm["write-file"].as<std::string>();
      config::write_secret_file(path, *grant.refresh_token);
      out["file"] = path;
      out["env_export"] = "export " + variable + "=" + shell_quote("file:" + path);
    } else {
      out["refresh_token"] = *grant.refresh_token;
      out["env_export"] = "export " + variable + "=" + shell_quote(*grant.refresh_token);
    }
    std::cout << out.dump(2) << "\n";
    return exit_code::kOk;
  } catch (const std::exception& e) {
    std::cerr << "mailsync auth: " << e.what() << "\n";
    return exit_code::kFailure;
  }
}

}  // namespace mailsync::admin
