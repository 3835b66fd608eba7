// choose_start: every case of DESIGN section 7 and of a table carried over from the Lambda.

#include "mailsync/sync/start_point.hpp"

#include <gtest/gtest.h>

#include <cctype>

namespace mailsync::sync {
namespace {

using Search = StartPoint::Search;
using std::chrono::hours;

const TimePoint kNow = TimePoint(hours(24 * 365 * 56));

StartInputs inbox(uint32_t uidvalidity, uint32_t uidnext) {
  StartInputs in;
  in.uidvalidity = uidvalidity;
  in.uidnext = uidnext;
  in.now = kNow;
  return in;
}

struct Case {
  const char* name;
  std::optional<Watermark> stored;
  std::optional<Watermark> carried_over;
  config::InitialSync initial_sync;
  Search search;
  uint32_t above_uid;
  bool dedupe;
  bool retry_failures;
  uint32_t floor;
  bool from_carried_over;
  bool uidvalidity_changed;
};

// The INBOX: UIDVALIDITY 7, UIDNEXT 101.
const Case kCases[] = {
    {"same UIDVALIDITY: above the watermark, due failures too", Watermark{7, 40}, std::nullopt,
     config::InitialSync::kWindow, Search::kAbove, 40, false, true, 40, false, false},
    {"UIDVALIDITY changed: the window, deduplicated", Watermark{6, 40}, std::nullopt,
     config::InitialSync::kWindow, Search::kSince, 0, true, false, 100, false, true},
    {"new route, initial_sync window", std::nullopt, std::nullopt, config::InitialSync::kWindow,
     Search::kSince, 0, true, false, 100, false, false},
    {"new route, initial_sync all: from the first UID", std::nullopt, std::nullopt,
     config::InitialSync::kAll, Search::kAll, 0, false, false, 0, false, false},
    {"new route, initial_sync none: only what arrives later", std::nullopt, std::nullopt,
     config::InitialSync::kNone, Search::kNothing, 0, false, false, 100, false, false},
    {"Lambda table, same UIDVALIDITY: above its WATERMARK", std::nullopt, Watermark{7, 60},
     config::InitialSync::kAll, Search::kAbove, 60, false, true, 60, true, false},
    {"Lambda table, other UIDVALIDITY: the window, deduplicated", std::nullopt, Watermark{5, 60},
     config::InitialSync::kNone, Search::kSince, 0, true, false, 100, true, true},
    {"Postgres wins over the Lambda's WATERMARK", Watermark{7, 80}, Watermark{7, 60},
     config::InitialSync::kWindow, Search::kAbove, 80, false, true, 80, false, false},
};

class ChooseStart : public ::testing::TestWithParam<Case> {};

TEST_P(ChooseStart, FollowsTheDesignTable) {
  const Case& c = GetParam();
  StartInputs in = inbox(7, 101);
  in.stored = c.stored;
  in.carried_over = c.carried_over;
  in.initial_sync = c.initial_sync;
  const StartPoint start = choose_start(in);
  EXPECT_EQ(start.search, c.search);
  if (c.search == Search::kAbove) {
    EXPECT_EQ(start.above_uid, c.above_uid);
  }
  EXPECT_EQ(start.dedupe, c.dedupe);
  EXPECT_EQ(start.retry_failures, c.retry_failures);
  EXPECT_EQ(start.floor, c.floor);
  EXPECT_EQ(start.from_carried_over, c.from_carried_over);
  EXPECT_EQ(start.uidvalidity_changed, c.uidvalidity_changed);
}

INSTANTIATE_TEST_SUITE_P(Cases, ChooseStart, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& param) {
                           std::string name;
                           for (const char* p = param.param.name; *p; ++p)
                             if (std::isalnum(static_cast<unsigned char>(*p))) name += *p;
                           return name;
                         });

TEST(ChooseStartWindow, StartsFallbackWindowHoursBeforeNow) {
  StartInputs in = inbox(7, 101);
  in.fallback_window_hours = 48;
  EXPECT_EQ(choose_start(in).since, kNow - hours(48));
}

TEST(ChooseStartWindow, AnInboxWithoutUidnextHasFloorZero) {
  EXPECT_EQ(choose_start(inbox(7, 0)).floor, 0u);
}

TEST(ChooseStartWindow, TheWatermarkInEffectIsTheCarriedOverOneWhenPostgresHasNone) {
  StartInputs in = inbox(7, 101);
  in.carried_over = Watermark{7, 60};
  const StartPoint start = choose_start(in);
  ASSERT_TRUE(start.watermark);
  EXPECT_EQ(start.watermark->last_uid, 60u);
}

}  // namespace
}  // namespace mailsync::sync
