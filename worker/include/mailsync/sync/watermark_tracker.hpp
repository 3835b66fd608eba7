#pragma once

#include <cstddef>
#include <cstdint>
#include <set>
#include <vector>

// DESIGN invariant 4: the watermark never moves past a UID that is neither DONE nor recorded in
// `failures`. The tracker holds the run's candidates in order and moves the mark over the prefix
// of them that is handled (DONE, skipped as copied before, recorded as a failure, or gone from the
// source), never over one that is not (a PENDING claim of another run, a message not reached yet).
namespace mailsync::sync {

class WatermarkTracker {
 public:
  // `floor`: where the mark goes once every candidate is handled (the start point's floor:
  // UIDNEXT - 1 for a window start, the stored watermark for an incremental run); until then it
  // stays below the first candidate not handled. `candidates` ascending, unique. `failed_before`:
  // UIDs with a failure recorded before this run: the mark may pass them.
  WatermarkTracker(uint32_t floor, std::vector<uint32_t> candidates,
                   std::set<uint32_t> failed_before);

  void handled(uint32_t uid);
  // The watermark so far: the floor, or the last UID of the handled prefix of the candidates.
  uint32_t mark();
  uint32_t floor() const { return floor_; }

 private:
  uint32_t target_;  // the floor as given: reached once every candidate is handled
  uint32_t floor_;   // lowered below the first candidate
  std::vector<uint32_t> candidates_;
  std::set<uint32_t> passable_;  // handled or failed before
  uint32_t mark_;
  size_t next_ = 0;  // candidates_[0, next_) are passed
};

}  // namespace mailsync::sync
