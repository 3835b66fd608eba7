#pragma once

// Crash recovery without trusting the destination's bytes. Outlook.com may serve a message back
// as MIME regenerated from its store, with another RFC822.SIZE, so a SHA-256 of what it serves
// proves nothing. What it keeps as it was given is the Message-ID header and the INTERNALDATE the
// APPEND named. A PENDING claim's copy, if it arrived, is among what arrived in the folder since
// the UIDNEXT recorded before its batch's APPENDs (sync_store.hpp, PendingClaim::dest_uidnext):
// matched here, a pure function, one to one.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mailsync/sync/sync_store.hpp"

namespace mailsync::sync {

// A message found in the destination folder at or above the recorded UIDNEXT.
struct Arrival {
  uint32_t uid = 0;
  std::optional<std::string> message_id;  // from BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]
  std::optional<TimePoint> internaldate;
};

// What a claim knows about the copy it may have made.
struct ExpectedCopy {
  std::optional<std::string> message_id;
  std::optional<TimePoint> internaldate;  // the date the APPEND named (none: the server chose)
};

struct ArrivalMatch {
  enum class Kind {
    kFound,   // `uid` is its copy
    kAbsent,  // nothing that arrived is its copy: append it again
    kUnsure,  // neither a Message-ID nor a date to go by: only the bytes can tell
  };
  Kind kind = Kind::kAbsent;
  uint32_t uid = 0;
};

// `claims` in the order their APPENDs were sent (ascending source UID), `arrivals` in ascending
// destination UID. Each claim takes the first arrival not taken yet with the same Message-ID (both
// absent counts as the same) and, where the claim has a date, the same INTERNALDATE to the second.
// In order, so byte-identical twins of one batch each find their own copy.
std::vector<ArrivalMatch> match_arrivals(const std::vector<ExpectedCopy>& claims,
                                         const std::vector<Arrival>& arrivals);

}  // namespace mailsync::sync
