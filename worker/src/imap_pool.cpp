#include "mailsync/sync/imap_pool.hpp"

#include <algorithm>

#include "mailsync/cli.hpp"

namespace mailsync::sync {

ImapPool::Limits ImapPool::limits_from_env(std::vector<std::string>& errors) {
  Limits limits;
  const cli::IntSetting max_idle =
      cli::env_positive_int("MAILSYNC_IMAP_POOL_MAX_IDLE", static_cast<long>(limits.max_idle));
  const cli::IntSetting seconds = cli::env_positive_int(
      "MAILSYNC_IMAP_POOL_IDLE_SECONDS",
      std::chrono::duration_cast<std::chrono::seconds>(limits.max_idle_age).count());
  for (const auto* setting : {&max_idle, &seconds})
    if (!setting->error.empty()) errors.push_back(setting->error);
  limits.max_idle = static_cast<size_t>(max_idle.value);
  limits.max_idle_age = std::chrono::seconds(seconds.value);
  return limits;
}

ImapPool::ImapPool(Connect connect, Limits limits)
    : connect_(std::move(connect)), limits_(std::move(limits)) {}

void ImapPool::expire(Clock::time_point now, std::list<Idle>& closing) {
  auto first_fresh = std::find_if(idle_.begin(), idle_.end(), [&](const Idle& entry) {
    return now - entry.since < limits_.max_idle_age;
  });
  closing.splice(closing.end(), idle_, idle_.begin(), first_fresh);
}

std::unique_ptr<imap::Client> ImapPool::acquire(const std::string& account) {
  std::list<Idle> closing;  // destroyed after the lock is released: closing may touch the network
  {
    std::lock_guard lock(mutex_);
    expire(limits_.now(), closing);
    // The most recently used connection of the account: the likeliest to be alive.
    for (auto it = idle_.rbegin(); it != idle_.rend(); ++it) {
      if (it->account != account) continue;
      auto client = std::move(it->client);
      idle_.erase(std::next(it).base());
      return client;
    }
  }
  closing.clear();
  return connect_();
}

void ImapPool::release(const std::string& account, std::unique_ptr<imap::Client> client) {
  if (!client) return;
  std::list<Idle> closing;
  std::lock_guard lock(mutex_);
  const auto now = limits_.now();
  expire(now, closing);
  const auto same = std::count_if(idle_.begin(), idle_.end(),
                                  [&](const Idle& entry) { return entry.account == account; });
  if (static_cast<size_t>(same) >= limits_.max_idle_per_account) {
    closing.push_back({account, now, std::move(client)});
    return;
  }
  idle_.push_back({account, now, std::move(client)});
  while (idle_.size() > limits_.max_idle) closing.splice(closing.end(), idle_, idle_.begin());
}

size_t ImapPool::idle_count() const {
  std::lock_guard lock(mutex_);
  return idle_.size();
}

}  // namespace mailsync::sync
