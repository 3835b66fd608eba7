#pragma once

#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mailsync/imap/client.hpp"

namespace mailsync::sync {

// Logged-in IMAP connections kept between jobs of one worker, per account: the shared Outlook
// mailbox (every route appends there) and each route's Gmail account (Gmail allows about 15
// connections per account). Re-login per job would cost round trips and invite throttling.
//
// Bounded, so that a worker with thousands of routes does not keep one idle connection (an fd,
// a TLS session, a 256 KiB read buffer) per route: at most `max_idle` idle connections in all,
// `max_idle_per_account` per account, none older than `max_idle_age` (Outlook.com drops idle
// connections without a BYE; Gmail's routes come round only every 5 minutes). Past a cap the
// connection idle longest is closed.
class ImapPool {
 public:
  using Connect = std::function<std::unique_ptr<imap::Client>()>;
  using Clock = std::chrono::steady_clock;
  struct Limits {
    size_t max_idle = 32;
    size_t max_idle_per_account = 4;
    std::chrono::milliseconds max_idle_age{60'000};
    std::function<Clock::time_point()> now = [] { return Clock::now(); };
  };
  // MAILSYNC_IMAP_POOL_MAX_IDLE (32) and MAILSYNC_IMAP_POOL_IDLE_SECONDS (60); errors name the
  // variable.
  static Limits limits_from_env(std::vector<std::string>& errors);

  explicit ImapPool(Connect connect) : ImapPool(std::move(connect), Limits{}) {}
  ImapPool(Connect connect, Limits limits);
  // An idle connection of `account`, or a new, not yet authenticated one.
  std::unique_ptr<imap::Client> acquire(const std::string& account);
  // Healthy connections only.
  void release(const std::string& account, std::unique_ptr<imap::Client> client);
  size_t idle_count() const;

 private:
  struct Idle {
    std::string account;
    Clock::time_point since;
    std::unique_ptr<imap::Client> client;
  };
  // Moves connections past their age into `closing` (closed by the caller, outside the lock).
  void expire(Clock::time_point now, std::list<Idle>& closing);

  Connect connect_;
  Limits limits_;
  mutable std::mutex mutex_;
  std::list<Idle> idle_;  // oldest first
};

}  // namespace mailsync::sync
