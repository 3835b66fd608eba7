#include "mailsync/sync/start_point.hpp"

namespace mailsync::sync {

StartPoint choose_start(const StartInputs& in) {
  StartPoint start;
  start.watermark = in.stored ? in.stored : in.carried_over;
  start.from_carried_over = !in.stored && in.carried_over.has_value();
  const uint32_t last_existing = in.uidnext > 0 ? in.uidnext - 1 : 0;
  start.since = in.now - std::chrono::hours(in.fallback_window_hours);
  if (start.watermark && start.watermark->uidvalidity == in.uidvalidity) {
    start.search = StartPoint::Search::kAbove;
    start.above_uid = start.watermark->last_uid;
    start.retry_failures = true;
    start.floor = start.watermark->last_uid;
  } else if (start.watermark) {
    // UIDVALIDITY changed (RFC 3501 2.3.1.1: every UID may now mean another message): re-read the
    // window and skip what uid_claims says was copied.
    start.search = StartPoint::Search::kSince;
    start.dedupe = true;
    start.uidvalidity_changed = true;
    start.floor = last_existing;
  } else if (in.initial_sync == config::InitialSync::kAll) {
    start.search = StartPoint::Search::kAll;
  } else if (in.initial_sync == config::InitialSync::kWindow) {
    start.search = StartPoint::Search::kSince;
    start.dedupe = true;
    start.floor = last_existing;
  } else {
    start.search = StartPoint::Search::kNothing;  // "none": only what arrives from now on
    start.floor = last_existing;
  }
  return start;
}

}  // namespace mailsync::sync
