#include "mailsync/sync/batch_plan.hpp"

#include <gtest/gtest.h>

namespace mailsync::sync {
namespace {

std::vector<std::vector<uint32_t>> uids_of(const std::vector<PlannedBatch>& plan) {
  std::vector<std::vector<uint32_t>> out;
  for (const auto& batch : plan) out.push_back(batch.uids);
  return out;
}

TEST(CutBatches, CutsAtTheMessageBound) {
  const std::map<uint32_t, uint64_t> sizes{{1, 10}, {2, 10}, {3, 10}, {4, 10}, {5, 10}};
  const auto plan = cut_batches({1, 2, 3, 4, 5}, sizes, {2, 1000});
  EXPECT_EQ(uids_of(plan), (std::vector<std::vector<uint32_t>>{{1, 2}, {3, 4}, {5}}));
  EXPECT_EQ(plan[0].bytes, 20u);
}

TEST(CutBatches, CutsAtTheByteBound) {
  const std::map<uint32_t, uint64_t> sizes{{1, 40}, {2, 40}, {3, 40}, {4, 10}};
  EXPECT_EQ(uids_of(cut_batches({1, 2, 3, 4}, sizes, {200, 100})),
            (std::vector<std::vector<uint32_t>>{{1, 2}, {3, 4}}));
}

TEST(CutBatches, AMessageAboveTheByteBoundGoesAlone) {
  const std::map<uint32_t, uint64_t> sizes{{1, 10}, {2, 500}, {3, 10}};
  const auto plan = cut_batches({1, 2, 3}, sizes, {200, 100});
  EXPECT_EQ(uids_of(plan), (std::vector<std::vector<uint32_t>>{{1}, {2}, {3}}));
  EXPECT_EQ(plan[1].bytes, 500u);
}

TEST(CutBatches, NothingToCopyIsNoBatch) {
  EXPECT_TRUE(cut_batches({}, {}, {200, 100}).empty());
}

TEST(CutBatches, AUidWithoutASizeCountsAsEmpty) {
  const auto plan = cut_batches({1, 2}, {{1, 60}}, {200, 100});
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].bytes, 60u);
}

TEST(CutBatches, AZeroMessageBoundStillMakesProgress) {
  EXPECT_EQ(cut_batches({1, 2}, {}, {0, 100}).size(), 2u);
}

TEST(MayOverlap, TwoNormalBatchesOverlapALargeOneNever) {
  const BatchLimits limits{200, 100};
  const PlannedBatch normal{{1}, 90};
  const PlannedBatch large{{2}, 500};
  EXPECT_TRUE(may_overlap(normal, normal, limits));
  EXPECT_FALSE(may_overlap(normal, large, limits));
  EXPECT_FALSE(may_overlap(large, normal, limits));
}

}  // namespace
}  // namespace mailsync::sync
