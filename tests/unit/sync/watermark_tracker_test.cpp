// Invariant 4: the watermark never moves past a UID that is neither DONE nor recorded in failures.

#include "mailsync/sync/watermark_tracker.hpp"

#include <gtest/gtest.h>

namespace mailsync::sync {
namespace {

TEST(WatermarkTracker, MovesOverTheHandledPrefixOfTheCandidates) {
  WatermarkTracker tracker(4, {5, 6, 7}, {});
  EXPECT_EQ(tracker.mark(), 4u);
  tracker.handled(5);
  tracker.handled(6);
  EXPECT_EQ(tracker.mark(), 6u);
  tracker.handled(7);
  EXPECT_EQ(tracker.mark(), 7u);
}

TEST(WatermarkTracker, OnceEveryCandidateIsHandledTheMarkReachesTheFloor) {
  // A window start: UIDNEXT - 1 is 100, the window's candidates are 50 and 60.
  WatermarkTracker tracker(100, {50, 60}, {});
  EXPECT_EQ(tracker.mark(), 49u);
  tracker.handled(50);
  EXPECT_EQ(tracker.mark(), 50u);
  tracker.handled(60);
  EXPECT_EQ(tracker.mark(), 100u);
}

TEST(WatermarkTracker, AFailureRecordedBelowASuccessMayBePassed) {
  WatermarkTracker tracker(4, {5, 6}, {5});
  tracker.handled(6);
  EXPECT_EQ(tracker.mark(), 6u);
}

TEST(WatermarkTracker, AnUnhandledUidBelowASuccessHoldsTheMark) {
  // UID 5 is PENDING in another run (or its APPEND broke): 6 is DONE, the mark stays at 4.
  WatermarkTracker tracker(4, {5, 6}, {});
  tracker.handled(6);
  EXPECT_EQ(tracker.mark(), 4u);
  tracker.handled(5);
  EXPECT_EQ(tracker.mark(), 6u);
}

TEST(WatermarkTracker, ASkippedMessageCountsAsHandled) {
  WatermarkTracker tracker(0, {1, 2}, {});
  tracker.handled(1);  // copied before (dedupe)
  tracker.handled(2);
  EXPECT_EQ(tracker.mark(), 2u);
}

TEST(WatermarkTracker, TheFloorIsLoweredBelowTheFirstCandidate) {
  // A window start: the floor is UIDNEXT-1 (100), but candidate 30 is not handled yet.
  WatermarkTracker tracker(100, {30, 90}, {});
  EXPECT_EQ(tracker.floor(), 29u);
  EXPECT_EQ(tracker.mark(), 29u);
}

TEST(WatermarkTracker, WithoutCandidatesTheMarkIsTheFloor) {
  WatermarkTracker tracker(100, {}, {});
  EXPECT_EQ(tracker.mark(), 100u);
}

TEST(WatermarkTracker, NeverMovesBack) {
  WatermarkTracker tracker(0, {1, 2, 3}, {});
  tracker.handled(1);
  tracker.handled(2);
  EXPECT_EQ(tracker.mark(), 2u);
  EXPECT_EQ(tracker.mark(), 2u);
}

}  // namespace
}  // namespace mailsync::sync
