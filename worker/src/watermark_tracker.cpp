#include "mailsync/sync/watermark_tracker.hpp"

#include <algorithm>

namespace mailsync::sync {

WatermarkTracker::WatermarkTracker(uint32_t floor, std::vector<uint32_t> candidates,
                                   std::set<uint32_t> failed_before)
    : target_(floor),
      floor_(floor),
      candidates_(std::move(candidates)),
      passable_(std::move(failed_before)) {
  // The mark may never stand on or above a candidate that is not handled yet.
  if (!candidates_.empty() && floor_ >= candidates_.front())
    floor_ = std::min(floor_, candidates_.front() - 1);
  mark_ = floor_;
}

void WatermarkTracker::handled(uint32_t uid) {
  passable_.insert(uid);
}

uint32_t WatermarkTracker::mark() {
  // `passable_` only grows, so the scan goes on from where the last call left it.
  while (next_ < candidates_.size() && passable_.contains(candidates_[next_]))
    mark_ = std::max(mark_, candidates_[next_++]);
  if (next_ == candidates_.size()) mark_ = std::max(mark_, target_);
  return mark_;
}

}  // namespace mailsync::sync
