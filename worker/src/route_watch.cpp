#include "mailsync/sync/route_watch.hpp"

#include <spdlog/spdlog.h>

#include <thread>

#include "mailsync/cli.hpp"
#include "mailsync/imap/errors.hpp"
#include "mailsync/log.hpp"
#include "mailsync/metrics.hpp"
#include "mailsync/postgres/errors.hpp"
#include "mailsync/util/strings.hpp"
#include "time_format.hpp"

namespace mailsync::sync {

namespace {

using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

// Waits `how_long` unless cancelled; false when cancelled.
bool pause(const queue::JobContext& context, milliseconds how_long) {
  const auto until = Steady::now() + how_long;
  while (Steady::now() < until) {
    if (context.cancelled()) return false;
    std::this_thread::sleep_for(std::min(milliseconds(100), how_long));
  }
  return !context.cancelled();
}

}  // namespace

WatchOptions WatchOptions::from_env(std::vector<std::string>& problems) {
  WatchOptions options;
  const cli::IntSetting reidle = cli::env_positive_int("MAILSYNC_WATCH_REIDLE_SECONDS", 25L * 60);
  if (!reidle.error.empty()) problems.push_back(reidle.error);
  if (reidle.value >= 29L * 60)
    problems.emplace_back(
        "MAILSYNC_WATCH_REIDLE_SECONDS must be under 1740 (RFC 2177: re-issue IDLE within 29 "
        "minutes)");
  options.reidle = std::chrono::seconds(reidle.value);
  const cli::IntSetting answer = cli::env_positive_int("MAILSYNC_WATCH_ANSWER_TIMEOUT_SECONDS", 15);
  if (!answer.error.empty()) problems.push_back(answer.error);
  options.answer_timeout = std::chrono::seconds(answer.value);
  return options;
}

WatchStore::WatchStore(std::function<std::unique_ptr<SyncStore>()> connect)
    : connect_(std::move(connect)) {}

WatchStore::WatchStore(SyncStore& store) : store_(&store) {}

template <typename F>
auto WatchStore::locked(F&& body) {
  std::lock_guard lock(mutex_);
  if (store_ == nullptr) store_ = (owned_ = connect_()).get();
  try {
    return body(*store_);
  } catch (const postgres::DatabaseUnavailable&) {
    if (connect_) {  // made again on the next call
      owned_.reset();
      store_ = nullptr;
    }
    throw;
  }
}

void WatchStore::set_watch_state(const std::string& route, const std::string& state,
                                 const std::string& detail) {
  locked([&](SyncStore& store) { store.set_watch_state(route, state, detail); });
}

SyncStore::SyncRequest WatchStore::request_sync(const std::string& route, int priority) {
  return locked([&](SyncStore& store) { return store.request_sync(route, priority); });
}

queue::JobResult run_route_watch(const config::Route& route, WatchStore& store,
                                 const ClientFactory& connect, const queue::JobContext& context,
                                 const WatchOptions& options) {
  const std::string key = route.key();
  auto& active = metrics::get().watches_active;
  active.Increment();
  struct Done {
    prometheus::Gauge& gauge;
    ~Done() { gauge.Decrement(); }
  } done{active};

  milliseconds backoff = options.first_backoff;
  bool pending = true;  // mail may have come while no watch ran: one sync at the start
  while (!context.cancelled()) {
    try {
      std::unique_ptr<imap::Client> client = connect();
      if (!client->has("IDLE")) client->refresh_capabilities();
      if (!client->has("IDLE")) {
        const std::string why =
            "the Gmail server lists no IDLE capability: the route is polled on the schedule";
        store.set_watch_state(key, "unsupported", why);
        spdlog::warn("route_watch {}: {}", route.gmail_email, why);
        client->logout();
        return queue::JobResult::succeeded();
      }
      uint32_t exists = client->examine("INBOX").exists;  // read-only, as the sync (invariant 1)
      store.set_watch_state(key, "watching", "");
      spdlog::info("route_watch {}: holding IDLE on INBOX ({} messages)", route.gmail_email,
                   exists);
      backoff = options.first_backoff;
      while (!context.cancelled()) {
        if (pending) {
          const SyncStore::SyncRequest asked = store.request_sync(key, options.priority);
          if (asked == SyncStore::SyncRequest::kNotRunnable) {
            store.set_watch_state(key, "stopped",
                                  "the route is paused, disabled or needs a person");
            client->logout();
            return queue::JobResult::succeeded();
          }
          pending = asked == SyncStore::SyncRequest::kRunning;
          if (asked == SyncStore::SyncRequest::kEnqueued) metrics::get().watch_pushes.Increment();
        }
        client->idle(
            pending ? options.running_recheck : options.reidle,
            [&](const imap::Response& response) {
              if (const auto* count = std::get_if<imap::CountData>(&response)) {
                if (count->kind == imap::CountData::Kind::kExpunge && exists > 0) --exists;
                if (count->kind == imap::CountData::Kind::kExists) {
                  const bool more = count->number > exists;
                  exists = count->number;
                  if (more) {
                    pending = true;
                    return false;  // DONE now, enqueue, IDLE again
                  }
                }
              }
              return true;
            },
            [&] { return !context.cancelled(); });
      }
      client->logout();
    } catch (const std::exception& e) {
      if (context.cancelled()) break;
      // A BYE (Gmail after ~30 minutes), a dropped or silent connection, a refused login: say so,
      // wait, connect again. Whatever arrived meanwhile is synced on reconnecting.
      pending = true;
      const std::string what = util::safe_text(e.what());
      store.set_watch_state(key, "backoff",
                            "reconnecting at " +
                                iso8601(std::chrono::system_clock::now() + backoff) +
                                " after: " + what);
      spdlog::warn("route_watch {}: {}; reconnecting in {} ms", route.gmail_email, what,
                   backoff.count());
      if (!pause(context, backoff)) break;
      backoff = std::min(backoff * 2, options.max_backoff);
    }
  }
  return queue::JobResult::cancelled("route_watch stopped");
}

}  // namespace mailsync::sync
