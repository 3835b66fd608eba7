#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "mailsync/imap/client.hpp"
#include "mailsync/sync/fetched_message.hpp"
#include "mailsync/sync/sync_store.hpp"

// The Gmail side of a route: its INBOX, read-only (invariant 1: EXAMINE and BODY.PEEK only).
// Errors are the IMAP client's (imap::ImapError, net::TransportError, ...), oauth's, or SyncStop.
// After open_inbox(), used by one thread at a time.
namespace mailsync::sync {

class MailSource {
 public:
  virtual ~MailSource() = default;
  // Connects and logs in (or takes a pooled connection), then EXAMINE INBOX.
  virtual imap::MailboxInfo open_inbox() = 0;
  virtual bool has_gmail_extensions() const = 0;  // X-GM-EXT-1: X-GM-MSGID for dedupe

  // UID SEARCH, ascending.
  virtual std::vector<uint32_t> uids_above(uint32_t uid) = 0;
  virtual std::vector<uint32_t> uids_since(TimePoint day) = 0;
  virtual std::vector<uint32_t> all_uids() = 0;
  // RFC822.SIZE of the UIDs still present (one expunged since the search is absent).
  virtual std::map<uint32_t, uint64_t> sizes(const std::vector<uint32_t>& uids) = 0;
  // Bodies with INTERNALDATE (and X-GM-MSGID where offered), ascending by UID, each UID once. A
  // message the server will not serve comes back with `unserved` set, never as empty bytes; a UID
  // expunged meanwhile is absent.
  virtual std::vector<FetchedMessage> fetch(const std::vector<uint32_t>& uids) = 0;

  // The run is over: a connection that is `reusable` goes back to the pool, else it is closed.
  virtual void close(bool reusable) = 0;
};

}  // namespace mailsync::sync
