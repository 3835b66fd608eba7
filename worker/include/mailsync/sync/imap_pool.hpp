#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mailsync/imap/client.hpp"

namespace mailsync::sync {

// Logged-in IMAP connections kept between jobs of one worker, per account: the shared Outlook
// mailbox (every route appends there) and each route's Gmail account (Gmail allows about 15
// connections per account). Re-login per job would cost round trips and invite throttling.
class ImapPool {
 public:
  using Connect = std::function<std::unique_ptr<imap::Client>()>;
  static constexpr size_t kIdlePerAccount = 4;

  explicit ImapPool(Connect connect) : connect_(std::move(connect)) {}
  // An idle connection of `account`, or a new, not yet authenticated one.
  std::unique_ptr<imap::Client> acquire(const std::string& account);
  // Healthy connections only.
  void release(const std::string& account, std::unique_ptr<imap::Client> client);

 private:
  Connect connect_;
  std::mutex mutex_;
  std::map<std::string, std::vector<std::unique_ptr<imap::Client>>> idle_;
};

}  // namespace mailsync::sync
