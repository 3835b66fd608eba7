#pragma once

#include <map>
#include <memory>
#include <string>

#include "mailsync/oauth/token_provider.hpp"
#include "mailsync/sync/imap_pool.hpp"
#include "mailsync/sync/mail_destination.hpp"

namespace mailsync::sync {

// MailDestination over IMAP: a folder of the Outlook mailbox, connected on first use (a run with
// nothing to copy never connects).
class ImapMailDestination final : public MailDestination {
 public:
  ImapMailDestination(ImapPool& pool, std::string account, oauth::Credential credential,
                      oauth::TokenProvider& tokens);

  Folder ensure_folder(const std::string& folder, bool create) override;
  std::vector<imap::AppendOutcome> append(const std::string& folder,
                                          std::span<const imap::AppendMessage> messages,
                                          const std::function<bool()>& may_send) override;
  std::optional<Mark> folder_mark(const std::string& folder) override;
  std::vector<std::optional<uint32_t>> find_arrivals(
      const std::string& folder, const std::vector<PendingClaim>& claims) override;
  void close(bool reusable) override;

 private:
  imap::Client& client();
  std::optional<uint32_t> find_by_bytes(imap::Client& dest, const PendingClaim& claim);

  ImapPool& pool_;
  std::string account_;
  oauth::Credential credential_;
  oauth::TokenProvider& tokens_;
  std::unique_ptr<imap::Client> client_;
  // Per folder, the UID after the highest one APPENDUID named in this run: a lower bound of the
  // folder's UIDNEXT (UIDs only grow), so the next batch's mark needs no EXAMINE round trip.
  std::map<std::string, Mark> next_after_append_;
};

}  // namespace mailsync::sync
