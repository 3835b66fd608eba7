#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "mailsync/imap/client.hpp"
#include "mailsync/sync/sync_store.hpp"

// The Outlook side of a route: one folder of the shared mailbox. Errors as MailSource's. A
// throwing append() means the connection broke mid-batch: what arrived is unknown.
namespace mailsync::sync {

class MailDestination {
 public:
  virtual ~MailDestination() = default;

  enum class Folder { kExists, kCreated, kMissing };
  // Creates `folder` when missing if `create`; else only looks (kMissing when absent).
  virtual Folder ensure_folder(const std::string& folder, bool create) = 0;

  // One outcome per message: its APPENDUID, or the server's refusal; one refusal does not stop
  // the others. `may_send` is asked before each message (or command) goes out; once it says no,
  // nothing more is sent and the result ends with the last message sent.
  virtual std::vector<imap::AppendOutcome> append(const std::string& folder,
                                                  std::span<const imap::AppendMessage> messages,
                                                  const std::function<bool()>& may_send) = 0;

  // The folder's UIDVALIDITY and UIDNEXT now (EXAMINE): recorded with a batch's claims before its
  // APPENDs. Unset when the server does not say.
  struct Mark {
    uint32_t uidvalidity = 0;
    uint32_t uidnext = 0;
  };
  virtual std::optional<Mark> folder_mark(const std::string& folder) = 0;

  // Crash recovery: for each claim a crashed run left PENDING, the destination UID of its copy
  // if the copy arrived, in the order of `claims`. Claims with a recorded mark are looked for
  // among what arrived since it, by Message-ID and INTERNALDATE, one FETCH per mark (the bytes
  // served back are not trusted: arrival_match.hpp); others by Message-ID (else size) confirmed
  // by SHA-256.
  virtual std::vector<std::optional<uint32_t>> find_arrivals(
      const std::string& folder, const std::vector<PendingClaim>& claims) = 0;

  virtual void close(bool reusable) = 0;
};

}  // namespace mailsync::sync
