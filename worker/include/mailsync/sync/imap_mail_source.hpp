#pragma once

#include <memory>
#include <string>

#include "mailsync/oauth/token_provider.hpp"
#include "mailsync/sync/imap_pool.hpp"
#include "mailsync/sync/mail_source.hpp"

namespace mailsync::sync {

// MailSource over IMAP: a Gmail INBOX, opened with EXAMINE, bodies with BODY.PEEK[] (the
// source is never changed). Connections come from `pool` (a pooled one the server closed
// meanwhile is replaced once).
class ImapMailSource final : public MailSource {
 public:
  ImapMailSource(ImapPool& pool, std::string account, oauth::Credential credential,
                 oauth::TokenProvider& tokens);
  ~ImapMailSource() override;

  imap::MailboxInfo open_inbox() override;
  bool has_gmail_extensions() const override;
  std::vector<uint32_t> uids_above(uint32_t uid) override;
  std::vector<uint32_t> uids_since(TimePoint day) override;
  std::vector<uint32_t> all_uids() override;
  std::map<uint32_t, uint64_t> sizes(const std::vector<uint32_t>& uids) override;
  std::vector<FetchedMessage> fetch(const std::vector<uint32_t>& uids) override;
  void close(bool reusable) override;

 private:
  class BatchSink;
  void fetch_into(const std::vector<uint32_t>& uids, BatchSink& sink);

  ImapPool& pool_;
  std::string account_;
  oauth::Credential credential_;
  oauth::TokenProvider& tokens_;
  std::unique_ptr<imap::Client> client_;
};

}  // namespace mailsync::sync
