#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
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

// Logged-in IMAP connections kept between jobs of one worker, per account: the shared Outlook
// mailbox (every route appends there) and each route's Gmail account (one idle connection per
// account; Gmail allows about 15). Re-login per job would cost round trips and invite throttling.
class ImapPool {
 public:
  using Connect = std::function<std::unique_ptr<imap::Client>()>;
  explicit ImapPool(Connect connect) : connect_(std::move(connect)) {}
  // An idle connection of `account`, or a new, not yet authenticated one.
  std::unique_ptr<imap::Client> acquire(const std::string& account);
  void release(const std::string& account,
               std::unique_ptr<imap::Client> client);  // healthy ones only
  int connects() const { return connects_; }

 private:
  Connect connect_;
  std::mutex mutex_;
  std::map<std::string, std::vector<std::unique_ptr<imap::Client>>> idle_;
  std::atomic<int> connects_{0};
};
using OutlookPool = ImapPool;

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
  // `gmail` may be null: then a new Gmail connection per run (run-once).
  RouteSync(const config::Settings& settings, const config::Route& route,
            oauth::TokenProvider& tokens, sync::SyncStore& store, dynamo::DynamoClient& dynamo,
            ImapPool& outlook, SyncOptions options = {}, ImapPool* gmail = nullptr);

  SyncReport run(int64_t job_id, const std::atomic<bool>& cancel);

 private:
  struct Impl;
  const config::Settings& settings_;
  const config::Route& route_;
  oauth::TokenProvider& tokens_;
  sync::SyncStore& store_;
  dynamo::DynamoClient& dynamo_;
  ImapPool& outlook_;
  SyncOptions options_;
  ImapPool* gmail_pool_;
};

// IMAP options for an endpoint of the settings (implicit TLS, MAILSYNC_TLS_CA_FILE).
imap::ClientOptions imap_options(const config::Settings& settings,
                                 const config::Endpoint& endpoint);
oauth::Credential gmail_credential(const config::Settings& settings, const config::Route& route);
oauth::Credential outlook_credential(const config::Settings& settings);

}  // namespace mailsync::worker
