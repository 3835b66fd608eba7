#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mailsync/sync/sync_store.hpp"

// The DynamoDB side of a route's state (DESIGN.md section 5): the gate (invariant 6), the UID#
// claims that keep a second writer on the same table out (invariant 2), their DONE state, FAIL#
// records and the WATERMARK item. Postgres stays the truth; this is written after it. Errors are
// MirrorUnavailable. claim() runs on the preparing thread while the run's main thread calls the
// others for the batch before: implementations keep the two apart.
namespace mailsync::sync {

struct MirrorClaim {
  uint32_t uid = 0;
  std::optional<std::string> message_id;
  std::string sha256_hex;
};

struct MirrorFailure {
  uint32_t uid = 0;
  std::string error;
  int retry_count = 0;
};

class StateMirror {
 public:
  virtual ~StateMirror() = default;
  // Throws MirrorUnavailable when the table cannot be reached (network, auth, throttling, no
  // table).
  virtual void check_gate() = 0;
  // The WATERMARK of a table carried over from the Lambda version.
  virtual std::optional<Watermark> carried_over_watermark() = 0;
  // Conditional UID# items (attribute_not_exists). Returns the UIDs another writer holds, with the
  // status it wrote ("DONE": it copied the message; anything else: it is copying it).
  virtual std::map<uint32_t, std::string> claim(uint32_t uidvalidity,
                                                const std::vector<MirrorClaim>& claims) = 0;
  // DONE for copied messages, FAIL# for failures.
  virtual void record(uint32_t uidvalidity, const std::vector<MirrorClaim>& done,
                      const std::vector<MirrorFailure>& failures) = 0;
  // Our PENDING claims that will not be appended.
  virtual void release(uint32_t uidvalidity, const std::vector<uint32_t>& uids) = 0;
  virtual void set_watermark(const Watermark& watermark) = 0;
};

}  // namespace mailsync::sync
