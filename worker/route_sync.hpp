#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mailsync/config/config.hpp"
#include "mailsync/dynamo/dynamo_client.hpp"
#include "mailsync/imap/client.hpp"
#include "mailsync/oauth/token_provider.hpp"
#include "mailsync/queue/job.hpp"
#include "mailsync/sync/sync_store.hpp"

// route_sync: one Gmail INBOX into one Outlook folder, exactly once, byte-exact (DESIGN.md
// sections 6 and 7). Used by the worker's job handler and by `mailsync run-once`.
namespace mailsync::worker {

// Logged-in Outlook connections kept between jobs of one worker (one shared mailbox for every
// route, so re-login per job would be wasted round trips and throttling risk).
class OutlookPool {
 public:
  using Connect = std::function<std::unique_ptr<imap::Client>()>;
  explicit OutlookPool(Connect connect) : connect_(std::move(connect)) {}
  std::unique_ptr<imap::Client> acquire();             // an idle connection, or a new one
  void release(std::unique_ptr<imap::Client> client);  // back to the pool (only healthy ones)
  int connects() const { return connects_; }

 private:
  Connect connect_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<imap::Client>> idle_;
  std::atomic<int> connects_{0};
};

struct SyncOptions {
  size_t batch_messages = 200;    // per FETCH / claim / APPEND batch
  size_t batch_bytes = 16 << 20;  // body bytes held at once (a larger message goes alone)
  bool dry_run = false;           // list what would be copied; no claims, no APPEND
  std::chrono::seconds dynamo_ttl{std::chrono::hours(24 * 180)};
  std::function<std::chrono::system_clock::time_point()> now = [] {
    return std::chrono::system_clock::now();
  };
};

// What a run did, for the job's attempt history, run-once's report and the demo.
struct SyncReport {
  queue::JobResult result;
  std::vector<std::string> would_copy;  // dry run: one line per message
  uint32_t watermark = 0;
};

class RouteSync {
 public:
  RouteSync(const config::Settings& settings, const config::Route& route,
            oauth::TokenProvider& tokens, sync::SyncStore& store, dynamo::DynamoClient& dynamo,
            OutlookPool& outlook, SyncOptions options = {});

  SyncReport run(int64_t job_id, const std::atomic<bool>& cancel);

 private:
  struct Impl;
  const config::Settings& settings_;
  const config::Route& route_;
  oauth::TokenProvider& tokens_;
  sync::SyncStore& store_;
  dynamo::DynamoClient& dynamo_;
  OutlookPool& outlook_;
  SyncOptions options_;
};

// IMAP options for an endpoint of the settings (implicit TLS, MAILSYNC_TLS_CA_FILE).
imap::ClientOptions imap_options(const config::Settings& settings,
                                 const config::Endpoint& endpoint);
oauth::Credential gmail_credential(const config::Settings& settings, const config::Route& route);
oauth::Credential outlook_credential(const config::Settings& settings);

}  // namespace mailsync::worker
