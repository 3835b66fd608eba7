#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace mailsync::sync {

// A message of a batch as the source served it, held whole until it is appended (batches are
// bounded in bytes): the raw bytes, their SHA-256 and the Message-ID read from them on the way.
struct FetchedMessage {
  uint32_t uid = 0;
  std::string bytes;
  std::string sha256_hex;
  std::optional<std::string> message_id;
  std::optional<std::string> internaldate;  // as the source said it: "17-Jul-1996 02:44:25 -0700"
  std::optional<uint64_t> gm_msgid;         // X-GM-MSGID, where the source has X-GM-EXT-1
  // Set when the source would not serve this message (Gmail: "NO Some messages could not be
  // FETCHed (Failure)" for it, or BODY[] NIL): the server's words; `bytes` is then empty and
  // nothing is copied. The run records it as the message's failure and goes on with the rest.
  std::optional<std::string> unserved;
};

}  // namespace mailsync::sync
