// Queue and route administration: enqueue, status, jobs, dead, pause, resume, routes.

#include <ctime>
#include <iomanip>
#include <iostream>
#include <set>
#include <sstream>

#include "commands/commands.hpp"
#include "commands/support.hpp"
#include "mailsync/config/config.hpp"
#include "mailsync/exit_codes.hpp"

namespace mailsync::admin {

namespace {

// "+90s", "+15m", "+2h" from now, or "2026-11-21T15:00:00Z" (UTC).
std::optional<queue::TimePoint> parse_run_at(const std::string& text) {
  if (text.size() >= 3 && text[0] == '+') {
    char* end = nullptr;
    const long amount = std::strtol(text.c_str() + 1, &end, 10);
    if (amount < 0 || end == nullptr || end[0] == '\0' || end[1] != '\0') return std::nullopt;
    const long seconds = *end == 's'   ? amount
                         : *end == 'm' ? amount * 60
                         : *end == 'h' ? amount * 3600
                                       : -1;
    if (seconds < 0) return std::nullopt;
    return queue::Clock::now() + std::chrono::seconds(seconds);
  }
  std::tm tm{};
  std::istringstream in(text);
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  if (in.fail()) return std::nullopt;
  std::string rest;
  in >> rest;
  if (rest != "Z") return std::nullopt;
  return queue::Clock::from_time_t(timegm(&tm));
}

std::vector<int64_t> parse_ids(const std::vector<std::string>& words, std::string& error) {
  std::vector<int64_t> ids;
  for (const auto& word : words) {
    char* end = nullptr;
    const long long id = std::strtoll(word.c_str(), &end, 10);
    if (end == word.c_str() || *end != '\0' || id <= 0) {
      error = "'" + word + "' is not a job id";
      return {};
    }
    ids.push_back(id);
  }
  return ids;
}

// Jobs as JSON or as a table; dead jobs show when they died instead of when they run.
int print_jobs(const nlohmann::json& jobs, bool as_json, bool dead) {
  if (as_json) {
    std::cout << jobs.dump(2) << "\n";
    return exit_code::kOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& j : jobs)
    rows.push_back({cell(j["id"]), cell(j["kind"]), cell(j["state"]),
                    cell(j["attempt"]) + "/" + cell(j["max_attempts"]),
                    cell(dead ? j["finished_at"] : j["run_at"]), cell(j["route_key"]),
                    cell(j["last_error"])});
  print_table(
      {"ID", "KIND", "STATE", "ATTEMPT", dead ? "DIED AT" : "RUN AT", "ROUTE", "LAST ERROR"}, rows);
  return exit_code::kOk;
}

std::string join_ids(const std::vector<int64_t>& ids) {
  std::string out;
  for (const int64_t id : ids) out += (out.empty() ? "" : " ") + std::to_string(id);
  return out;
}

}  // namespace

int run_enqueue(std::span<const std::string> args) {
  po::options_description options(
      "Usage: mailsync enqueue --route KEY | --all [--priority P] [--run-at T]\n"
      "Queues route_sync jobs now (or at T) for one route or every enabled, unpaused route. A "
      "route\n"
      "that already has a queued or running route_sync is left as it is.\n\nOptions");
  options.add_options()("help,h", "show this help")("route", po::value<std::string>(),
                                                    "route key or Gmail address")(
      "all", "every enabled, unpaused route")("priority", po::value<int>()->default_value(0),
                                              "lower runs first")(
      "run-at", po::value<std::string>(), "when: +30s, +15m, +2h or 2026-11-21T15:00:00Z")(
      "max-attempts", po::value<int>()->default_value(25), "attempts before the job is dead")(
      "json", "print JSON");
  po::variables_map vm;
  if (auto exit = parse_options("enqueue", options, args, vm)) return *exit;
  if (vm.count("route") == vm.count("all")) {
    std::cerr << "mailsync enqueue: give exactly one of --route KEY and --all\n";
    return exit_code::kUsage;
  }
  queue::EnqueueFilter filter;
  filter.priority = vm["priority"].as<int>();
  filter.max_attempts = vm["max-attempts"].as<int>();
  if (filter.priority < -32768 || filter.priority > 32767 || filter.max_attempts < 1) {
    std::cerr << "mailsync enqueue: --priority must fit in -32768..32767 and --max-attempts be at "
                 "least 1\n";
    return exit_code::kUsage;
  }
  if (vm.count("run-at")) {
    filter.run_at = parse_run_at(vm["run-at"].as<std::string>());
    if (!filter.run_at) {
      std::cerr << "mailsync enqueue: --run-at '" << vm["run-at"].as<std::string>()
                << "' is not +Ns, +Nm, +Nh or YYYY-MM-DDTHH:MM:SSZ\n";
      return exit_code::kUsage;
    }
  }
  return with_route_store("enqueue", [&](queue::RouteStore& store) {
    if (vm.count("route")) {
      std::string error;
      filter.route_key = resolve_route(store, vm["route"].as<std::string>(), error);
      if (!filter.route_key) {
        std::cerr << "mailsync enqueue: " << error << "\n";
        return exit_code::kUsage;
      }
    }
    const std::vector<int64_t> ids = store.enqueue_route_syncs(filter);
    if (vm.count("json")) {
      std::cout << nlohmann::json{{"enqueued", ids}}.dump() << "\n";
    } else if (filter.route_key) {
      if (ids.empty())
        std::cout << *filter.route_key
                  << " already has a queued or running route_sync; nothing enqueued\n";
      else
        std::cout << "enqueued job " << ids.front() << " for " << *filter.route_key << "\n";
    } else {
      std::cout << "enqueued " << ids.size() << " route_sync jobs"
                << (ids.empty() ? "" : ": " + join_ids(ids)) << "\n";
    }
    return exit_code::kOk;
  });
}

namespace {

// The TOKEN column: "ok", "expires in 20 h", "expired 3 d ago", "auth_required since …", "-"
// (no run has used the route's tokens yet).
std::string token_cell(const nlohmann::json& r) {
  std::string state = r.value("token_state", "unknown");
  if (state == "auth_required") {
    std::string since = cell(r["auth_required_since"]);
    if (since.size() > 16) since = since.substr(0, 16).replace(10, 1, " ") + " UTC";
    return "auth_required since " + since;
  }
  if (state == "unknown") return "-";
  if (state == "ok" || !r["token_expires_in_seconds"].is_number()) return state;
  const long long left = r["token_expires_in_seconds"].get<long long>();
  const long long magnitude = left < 0 ? -left : left;
  const std::string amount = magnitude < 48LL * 3600 ? std::to_string(magnitude / 3600) + " h"
                                                     : std::to_string(magnitude / 86400) + " d";
  return left < 0 ? "expired " + amount + " ago" : "expires in " + amount;
}

// The PUSH column: "-" for a polled route, else what its watch last said.
std::string push_cell(const nlohmann::json& r) {
  if (!r.value("push", false)) return "-";
  std::string state = r["watch_state"].is_string() ? r["watch_state"].get<std::string>() : "";
  if (state.empty()) return "starting";
  if (state == "unsupported") return "polled: no IDLE";
  return state;
}

}  // namespace

int run_status(std::span<const std::string> args) {
  po::options_description options(
      "Usage: mailsync status [--json]\n"
      "Every route with its queued job, the progress of a running copy (messages, MB, rate, "
      "ETA), last outcome and last success, then the queue's counts.\n\nOptions");
  options.add_options()("help,h", "show this help")("json", "print JSON");
  po::variables_map vm;
  if (auto exit = parse_options("status", options, args, vm)) return *exit;
  return with_route_store("status", [&](queue::RouteStore& store) {
    const nlohmann::json routes = store.route_status();
    const nlohmann::json summary = store.queue_summary();
    if (vm.count("json")) {
      std::cout << nlohmann::json{{"routes", routes}, {"queue", summary}}.dump(2) << "\n";
      return exit_code::kOk;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : routes) {
      std::string state = !r.value("enabled", true)             ? "disabled"
                          : r.value("paused", false)            ? "paused"
                          : r.value("auth_state", "ok") != "ok" ? r.value("auth_state", "")
                                                                : "active";
      std::string queued = "-";
      if (!r["queued_job_id"].is_null())
        queued = "#" + cell(r["queued_job_id"]) + " " + cell(r["queued_job_state"]) + " (attempt " +
                 cell(r["queued_job_attempt"]) + ")";
      std::string progress = "-";
      if (r.contains("progress_messages_total") && !r["progress_messages_total"].is_null()) {
        char text[160];
        std::snprintf(text, sizeof text, "%lld/%lld msgs, %.0f/%.0f MB, %.0f/s, ETA ",
                      r["progress_messages_done"].get<long long>(),
                      r["progress_messages_total"].get<long long>(),
                      r["progress_bytes_done"].get<double>() / 1e6,
                      r["progress_bytes_total"].get<double>() / 1e6,
                      r["progress_rate_per_s"].get<double>());
        progress = text + (r["progress_eta_seconds"].is_null()
                               ? std::string("not known yet")
                               : std::to_string(r["progress_eta_seconds"].get<long long>()) + "s");
      }
      rows.push_back(
          {cell(r["gmail_email"]), cell(r["target_folder"]), state, token_cell(r), push_cell(r),
           queued, progress, cell(r["last_outcome"]), cell(r["last_success_at"]),
           cell(r["refused_messages"]) + " refused, " + cell(r["retrying_messages"]) + " retrying",
           cell(r["last_error"])});
    }
    if (rows.empty())
      std::cout << "no routes yet: the scheduler adds the configured routes on its first cycle\n";
    else
      print_table({"GMAIL", "FOLDER", "STATE", "TOKEN", "PUSH", "QUEUED", "PROGRESS",
                   "LAST OUTCOME", "LAST SUCCESS", "NOT COPIED", "LAST ERROR"},
                  rows, 48);
    std::cout << "\nqueue:";
    for (const char* state : {"available", "running", "dead", "cancelled"})
      std::cout << " " << state << " " << summary["by_state"].value(state, 0);
    std::cout << "; last hour: succeeded " << cell(summary["succeeded_last_hour"]) << ", failed "
              << cell(summary["failed_last_hour"]);
    std::cout << "; due now " << cell(summary["due_jobs"]) << ", oldest due "
              << cell(summary["oldest_due_age_seconds"]) << " s\n";
    return exit_code::kOk;
  });
}

int run_jobs(std::span<const std::string> args) {
  po::options_description options(
      "Usage: mailsync jobs [--state S] [--kind K] [--route KEY] [--limit N] [--json]\n"
      "Lists jobs, newest first.\n\nOptions");
  options.add_options()("help,h", "show this help")("state", po::value<std::string>(),
                                                    "available, running, dead or cancelled")(
      "kind", po::value<std::string>(), "route_sync, noop, ...")(
      "route", po::value<std::string>(), "route key")("limit", po::value<int>()->default_value(50),
                                                      "at most this many")("json", "print JSON");
  po::variables_map vm;
  if (auto exit = parse_options("jobs", options, args, vm)) return *exit;
  queue::JobsFilter filter;
  if (vm.count("state")) {
    filter.state = vm["state"].as<std::string>();
    static const std::set<std::string> states{"available", "running", "dead", "cancelled"};
    if (!states.contains(*filter.state)) {
      std::cerr
          << "mailsync jobs: --state '" << *filter.state
          << "' is not one of available, running, dead, cancelled (succeeded jobs are counted, not "
             "kept: see mailsync.jobs_per_minute)\n";
      return exit_code::kUsage;
    }
  }
  if (vm.count("kind")) filter.kind = vm["kind"].as<std::string>();
  if (vm.count("route")) filter.route_key = vm["route"].as<std::string>();
  filter.limit = vm["limit"].as<int>();
  return with_route_store("jobs", [&](queue::RouteStore& store) {
    return print_jobs(store.list_jobs(filter), vm.count("json") > 0, false);
  });
}

int run_dead(std::span<const std::string> args) {
  po::options_description options(
      "Usage: mailsync dead list|retry|discard [ID ...|--all] [--attempts N] [--json]\n"
      "list: dead jobs with their last error. retry: back to available with N more attempts.\n"
      "discard: delete them.\n\nOptions");
  options.add_options()("help,h", "show this help")("action", po::value<std::string>(),
                                                    "list, retry or discard")(
      "ids", po::value<std::vector<std::string>>()->multitoken(), "job ids")(
      "all", "every dead job")("attempts", po::value<int>()->default_value(5),
                               "retry: attempts to give back")("json", "print JSON");
  po::positional_options_description positional;
  positional.add("action", 1).add("ids", -1);
  po::variables_map vm;
  if (auto exit = parse_options("dead", options, args, vm, &positional)) return *exit;
  const std::string action = vm.count("action") ? vm["action"].as<std::string>() : "list";
  std::string error;
  const std::vector<int64_t> ids = parse_ids(
      vm.count("ids") ? vm["ids"].as<std::vector<std::string>>() : std::vector<std::string>{},
      error);
  if (!error.empty()) {
    std::cerr << "mailsync dead: " << error << "\n";
    return exit_code::kUsage;
  }
  if (action != "list" && ids.empty() == (vm.count("all") == 0)) {
    std::cerr << "mailsync dead " << action << ": give job ids or --all (not both)\n";
    return exit_code::kUsage;
  }
  if (action != "list" && action != "retry" && action != "discard") {
    std::cerr << "mailsync dead: unknown action '" << action << "' (list, retry or discard)\n";
    return exit_code::kUsage;
  }
  return with_route_store("dead", [&](queue::RouteStore& store) {
    if (action == "list") {
      queue::JobsFilter filter;
      filter.state = "dead";
      filter.limit = 1000;
      return print_jobs(store.list_jobs(filter), vm.count("json") > 0, true);
    }
    const std::vector<int64_t> done = action == "retry"
                                          ? store.retry_dead(ids, vm["attempts"].as<int>())
                                          : store.discard_dead(ids);
    if (vm.count("json")) {
      std::cout << nlohmann::json{{action == "retry" ? "retried" : "discarded", done}}.dump()
                << "\n";
    } else {
      std::cout << (action == "retry" ? "retried " : "discarded ") << done.size() << " dead jobs"
                << (done.empty() ? "" : ": " + join_ids(done)) << "\n";
    }
    if (!ids.empty() && done.size() < ids.size()) {
      std::cerr << "mailsync dead " << action << ": " << ids.size() - done.size()
                << " of the given ids are not dead jobs"
                << (action == "retry" ? " or their route already has a queued route_sync" : "")
                << "\n";
      return exit_code::kFailure;
    }
    return exit_code::kOk;
  });
}

namespace {

int set_paused(const char* command, std::span<const std::string> args, bool paused) {
  po::options_description options(
      std::string("Usage: mailsync ") + command + " ROUTE\n" +
      (paused ? "Stops enqueuing the route and cancels its queued (not running) job.\n"
              : "Enqueues the route again from the next cycle.\n") +
      "ROUTE is a route key or a Gmail address.\n\nOptions");
  options.add_options()("help,h", "show this help")("route", po::value<std::string>(), "route");
  po::positional_options_description positional;
  positional.add("route", 1);
  po::variables_map vm;
  if (auto exit = parse_options(command, options, args, vm, &positional)) return *exit;
  if (!vm.count("route")) {
    std::cerr << "mailsync " << command << ": which route? (mailsync " << command << " ROUTE)\n";
    return exit_code::kUsage;
  }
  return with_route_store(command, [&](queue::RouteStore& store) {
    std::string error;
    const auto key = resolve_route(store, vm["route"].as<std::string>(), error);
    if (!key) {
      std::cerr << "mailsync " << command << ": " << error << "\n";
      return exit_code::kUsage;
    }
    store.set_paused(*key, paused);
    std::cout << (paused ? "paused " : "resumed ") << *key << "\n";
    return exit_code::kOk;
  });
}

}  // namespace

int run_pause(std::span<const std::string> args) {
  return set_paused("pause", args, true);
}
int run_resume(std::span<const std::string> args) {
  return set_paused("resume", args, false);
}

int run_routes(std::span<const std::string> args) {
  po::options_description options(
      "Usage: mailsync routes [--json]\n"
      "The routes of the configuration (SYNC_ROUTES_JSON, SYNC_ROUTES_FILE or GMAIL_EMAIL), "
      "without\n"
      "secrets.\n\nOptions");
  options.add_options()("help,h", "show this help")("json", "print JSON");
  po::variables_map vm;
  if (auto exit = parse_options("routes", options, args, vm)) return *exit;
  const config::Config loaded = config::load_config(config::Needs::kStructure);
  for (const auto& warning : loaded.warnings)
    std::cerr << "mailsync routes: warning: " << warning << "\n";
  if (!loaded.ok()) {
    for (const auto& error : loaded.errors) std::cerr << "mailsync routes: " << error << "\n";
    return exit_code::kUsage;
  }
  // Secrets are not read here, let alone printed.
  if (vm.count("json")) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : loaded.routes)
      out.push_back({{"route_key", r.key()},
                     {"gmail_email", r.gmail_email},
                     {"outlook_email", r.outlook_email},
                     {"outlook_target_folder", r.target_folder},
                     {"enabled", r.enabled},
                     {"mark_seen", r.mark_seen},
                     {"create_folder", r.create_folder},
                     {"gmail_oauth_app_testing", r.gmail_oauth_app_testing},
                     {"push", r.push},
                     {"fallback_window_hours", r.fallback_window_hours},
                     {"initial_sync", config::to_string(r.initial_sync)},
                     {"gmail_client_id", r.gmail_client_id}});
    std::cout << out.dump(2) << "\n";
    return exit_code::kOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : loaded.routes)
    rows.push_back({r.gmail_email, r.outlook_email, r.target_folder, r.enabled ? "yes" : "no",
                    std::string(config::to_string(r.initial_sync)), r.key()});
  print_table({"GMAIL", "OUTLOOK", "FOLDER", "ENABLED", "INITIAL", "KEY"}, rows, 100);
  std::cout << "\nfrom " << loaded.routes_source << "\n";
  return exit_code::kOk;
}

}  // namespace mailsync::admin
