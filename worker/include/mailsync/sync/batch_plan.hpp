#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

// How the candidates are cut into batches: bounded in messages and in body bytes, so a batch's
// bodies fit in memory; a message larger than the byte bound goes alone.
namespace mailsync::sync {

struct BatchLimits {
  size_t messages = 200;
  uint64_t bytes = 16 << 20;
};

struct PlannedBatch {
  std::vector<uint32_t> uids;  // ascending
  uint64_t bytes = 0;          // RFC822.SIZE summed
};

// `uids` ascending; a UID missing from `sizes` counts as 0 bytes.
std::vector<PlannedBatch> cut_batches(const std::vector<uint32_t>& uids,
                                      const std::map<uint32_t, uint64_t>& sizes,
                                      const BatchLimits& limits);

// Whether batch `next` may be fetched and claimed while `current` is appended: two batches of
// normal size at most are in memory, a batch above the byte bound (one large message) never
// overlaps another.
bool may_overlap(const PlannedBatch& current, const PlannedBatch& next, const BatchLimits& limits);

}  // namespace mailsync::sync
