#include "mailsync/sync/imap_pool.hpp"

namespace mailsync::sync {

std::unique_ptr<imap::Client> ImapPool::acquire(const std::string& account) {
  {
    std::lock_guard lock(mutex_);
    auto& idle = idle_[account];
    if (!idle.empty()) {
      auto client = std::move(idle.back());
      idle.pop_back();
      return client;
    }
  }
  return connect_();
}

void ImapPool::release(const std::string& account, std::unique_ptr<imap::Client> client) {
  if (!client) return;
  std::lock_guard lock(mutex_);
  auto& idle = idle_[account];
  if (idle.size() < kIdlePerAccount) idle.push_back(std::move(client));
}

}  // namespace mailsync::sync
