// Crash recovery's matching of PENDING claims to what arrived since the recorded UIDNEXT, without
// the destination's bytes (Outlook.com may regenerate them).

#include "mailsync/sync/arrival_match.hpp"

#include <gtest/gtest.h>

namespace mailsync::sync {
namespace {

using Kind = ArrivalMatch::Kind;
const TimePoint kNoon = TimePoint(std::chrono::seconds(1'767'268'800));

TEST(MatchArrivals, FindsACopyByMessageIdAndDateWhateverItsBytes) {
  const auto found = match_arrivals({{"<a@x>", kNoon}}, {{41, "<a@x>", kNoon}});
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].kind, Kind::kFound);
  EXPECT_EQ(found[0].uid, 41u);
}

TEST(MatchArrivals, AnotherMessageThatArrivedMeanwhileIsNotTheCopy) {
  const auto found = match_arrivals({{"<a@x>", kNoon}, {"<b@x>", kNoon}},
                                    {{41, "<other@x>", kNoon}, {42, "<a@x>", kNoon}});
  EXPECT_EQ(found[0].kind, Kind::kFound);
  EXPECT_EQ(found[0].uid, 42u);
  EXPECT_EQ(found[1].kind, Kind::kAbsent) << "b was never appended";
}

TEST(MatchArrivals, TheSameMessageIdWithAnotherDateIsNotTheCopy) {
  const auto found =
      match_arrivals({{"<a@x>", kNoon}}, {{41, "<a@x>", kNoon + std::chrono::hours(1)}});
  EXPECT_EQ(found[0].kind, Kind::kAbsent);
}

TEST(MatchArrivals, DatesAreComparedToTheSecond) {
  const auto found =
      match_arrivals({{"<a@x>", kNoon}}, {{41, "<a@x>", kNoon + std::chrono::milliseconds(400)}});
  EXPECT_EQ(found[0].kind, Kind::kFound);
}

TEST(MatchArrivals, TwinsEachFindTheirOwnCopyInOrder) {
  const auto one = match_arrivals({{"<t@x>", kNoon}, {"<t@x>", kNoon}}, {{7, "<t@x>", kNoon}});
  EXPECT_EQ(one[0].kind, Kind::kFound);
  EXPECT_EQ(one[0].uid, 7u);
  EXPECT_EQ(one[1].kind, Kind::kAbsent) << "one copy arrived, not two";
  const auto both = match_arrivals({{"<t@x>", kNoon}, {"<t@x>", kNoon}},
                                   {{7, "<t@x>", kNoon}, {8, "<t@x>", kNoon}});
  EXPECT_EQ(both[0].uid, 7u);
  EXPECT_EQ(both[1].uid, 8u);
}

TEST(MatchArrivals, WithoutAMessageIdTheDateDecidesAndAnArrivalWithOneIsNotTheCopy) {
  const auto found = match_arrivals({{std::nullopt, kNoon}},
                                    {{5, "<has-one@x>", kNoon}, {6, std::nullopt, kNoon}});
  EXPECT_EQ(found[0].kind, Kind::kFound);
  EXPECT_EQ(found[0].uid, 6u);
}

TEST(MatchArrivals, WithoutAnyDateAMessageIdIsEnough) {
  const auto found = match_arrivals({{"<a@x>", std::nullopt}}, {{9, "<a@x>", kNoon}});
  EXPECT_EQ(found[0].kind, Kind::kFound);
}

TEST(MatchArrivals, NeitherMessageIdNorDateIsLeftToTheBytes) {
  const auto found = match_arrivals({{std::nullopt, std::nullopt}}, {{9, std::nullopt, kNoon}});
  EXPECT_EQ(found[0].kind, Kind::kUnsure);
}

}  // namespace
}  // namespace mailsync::sync
