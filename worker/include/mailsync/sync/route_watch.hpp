#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mailsync/config/config.hpp"
#include "mailsync/imap/client.hpp"
#include "mailsync/queue/worker_pool.hpp"
#include "mailsync/sync/sync_store.hpp"

// Near-real-time delivery (route option `push`): a route_watch job holds IDLE (RFC 2177) on the
// route's Gmail INBOX and, when mail arrives (EXISTS grows), enqueues the route's route_sync at
// high priority. The job runs until it is cancelled (shutdown, lost lease: another worker takes
// it), and the scheduler keeps one per push route; the 5-minute schedule stays as the safety net.
namespace mailsync::sync {

struct WatchOptions {
  // DONE and IDLE again at least this often: RFC 2177 asks for under 29 minutes, Gmail drops an
  // idle connection at about 30, Outlook without a BYE. The DONE's answer, bounded by the
  // connection's command timeout, is also the liveness check: a server gone silent (a NAT that
  // forgot the connection) is found within reidle + that timeout, and the watch reconnects.
  std::chrono::milliseconds reidle{std::chrono::minutes(25)};
  std::chrono::milliseconds answer_timeout{std::chrono::seconds(15)};
  // A watch that cannot connect or log in waits this long, doubling, up to max_backoff.
  std::chrono::milliseconds first_backoff{std::chrono::seconds(1)};
  std::chrono::milliseconds max_backoff{std::chrono::minutes(5)};
  // While the route's route_sync is running, it may have searched before the mail arrived: ask
  // again this often until it has ended.
  std::chrono::milliseconds running_recheck{std::chrono::milliseconds(500)};
  int priority = -10;  // route_sync on new mail runs before scheduled ones (0)

  // MAILSYNC_WATCH_REIDLE_SECONDS, MAILSYNC_WATCH_ANSWER_TIMEOUT_SECONDS; problems appended.
  static WatchOptions from_env(std::vector<std::string>& problems);
};

// A new connection to the route's Gmail server, logged in (XOAUTH2); throws what connecting or
// logging in throws.
using ClientFactory = std::function<std::unique_ptr<imap::Client>()>;

// The database as a watch needs it: two rare writes. Every watch of a process shares one
// connection (a mutex around it), so that a hundred watched routes cost PostgreSQL one backend,
// not a hundred; a connection the database dropped is made again on the next call.
class WatchStore {
 public:
  explicit WatchStore(std::function<std::unique_ptr<SyncStore>()> connect);
  explicit WatchStore(SyncStore& store);  // an existing store (tests)
  void set_watch_state(const std::string& route, const std::string& state,
                       const std::string& detail);
  SyncStore::SyncRequest request_sync(const std::string& route, int priority);

 private:
  template <typename F>
  auto locked(F&& body);
  std::function<std::unique_ptr<SyncStore>()> connect_;
  std::unique_ptr<SyncStore> owned_;
  SyncStore* store_ = nullptr;
  std::mutex mutex_;
};

// One attempt of a route_watch job. Returns when the job's cancel flag is set (the pool gives the
// job back or another worker has it), when the route cannot be synced any more (paused, disabled,
// auth_required: the scheduler makes a new watch once it can), or when the server has no IDLE
// (routes.watch_state 'unsupported': the route is polled, `status` says why). Connection and login
// failures are retried inside with backoff, the state in routes.watch_state.
queue::JobResult run_route_watch(const config::Route& route, WatchStore& store,
                                 const ClientFactory& connect, const queue::JobContext& context,
                                 const WatchOptions& options);

}  // namespace mailsync::sync
