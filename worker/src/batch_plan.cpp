#include "mailsync/sync/batch_plan.hpp"

namespace mailsync::sync {

std::vector<PlannedBatch> cut_batches(const std::vector<uint32_t>& uids,
                                      const std::map<uint32_t, uint64_t>& sizes,
                                      const BatchLimits& limits) {
  auto size_of = [&](uint32_t uid) {
    const auto found = sizes.find(uid);
    return found == sizes.end() ? uint64_t{0} : found->second;
  };
  std::vector<PlannedBatch> plan;
  for (size_t i = 0; i < uids.size();) {
    PlannedBatch batch;
    while (i < uids.size() && batch.uids.size() < std::max<size_t>(limits.messages, 1) &&
           (batch.uids.empty() || batch.bytes + size_of(uids[i]) <= limits.bytes)) {
      batch.bytes += size_of(uids[i]);
      batch.uids.push_back(uids[i++]);
    }
    plan.push_back(std::move(batch));
  }
  return plan;
}

bool may_overlap(const PlannedBatch& current, const PlannedBatch& next, const BatchLimits& limits) {
  return current.bytes <= limits.bytes && next.bytes <= limits.bytes;
}

}  // namespace mailsync::sync
