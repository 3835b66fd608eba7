#include "mailsync/sync/arrival_match.hpp"

#include <chrono>

namespace mailsync::sync {

namespace {

bool same_second(TimePoint a, TimePoint b) {
  using std::chrono::floor;
  using std::chrono::seconds;
  return floor<seconds>(a) == floor<seconds>(b);
}

bool matches(const ExpectedCopy& claim, const Arrival& arrival) {
  if (claim.message_id != arrival.message_id) return false;
  if (!claim.internaldate) return true;
  return arrival.internaldate && same_second(*claim.internaldate, *arrival.internaldate);
}

}  // namespace

std::vector<ArrivalMatch> match_arrivals(const std::vector<ExpectedCopy>& claims,
                                         const std::vector<Arrival>& arrivals) {
  std::vector<ArrivalMatch> out(claims.size());
  std::vector<bool> taken(arrivals.size(), false);
  for (size_t c = 0; c < claims.size(); ++c) {
    if (!claims[c].message_id && !claims[c].internaldate) {
      out[c].kind = ArrivalMatch::Kind::kUnsure;
      continue;
    }
    for (size_t a = 0; a < arrivals.size(); ++a) {
      if (taken[a] || !matches(claims[c], arrivals[a])) continue;
      taken[a] = true;
      out[c] = {ArrivalMatch::Kind::kFound, arrivals[a].uid};
      break;
    }
  }
  return out;
}

}  // namespace mailsync::sync
