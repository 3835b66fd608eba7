#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "mailsync/config/config.hpp"
#include "mailsync/sync/sync_store.hpp"

// Where a run starts reading the source (DESIGN.md section 7): a pure function of the stored
// watermark, the one carried over from the Lambda version's DynamoDB table, the INBOX as EXAMINE
// reported it, the route's options and the time.
namespace mailsync::sync {

struct StartInputs {
  std::optional<Watermark> stored;  // Postgres (the truth)
  std::optional<Watermark>
      carried_over;          // DynamoDB's WATERMARK item; read only when `stored` is empty
  uint32_t uidvalidity = 0;  // the INBOX's, from EXAMINE
  uint32_t uidnext = 0;      // 0 when the server did not say
  config::InitialSync initial_sync = config::InitialSync::kWindow;
  int fallback_window_hours = 24;
  TimePoint now;
};

struct StartPoint {
  enum class Search {
    kAbove,    // UID SEARCH UID above_uid+1:* (same UIDVALIDITY as the watermark)
    kSince,    // UID SEARCH SINCE `since` (a window: UIDVALIDITY changed, or a new route)
    kAll,      // UID SEARCH ALL (initial_sync all)
    kNothing,  // initial_sync none: only what arrives later
  } search = Search::kNothing;
  uint32_t above_uid = 0;
  TimePoint since;
  bool dedupe = false;          // candidates may have been copied before: check uid_claims first
  bool retry_failures = false;  // transient failures due by now are candidates too
  // The watermark may move to at least this once every candidate is handled (before the
  // candidates are known; WatermarkTracker lowers it below the first candidate).
  uint32_t floor = 0;
  std::optional<Watermark> watermark;  // the one in effect (stored, else carried over)
  bool from_carried_over = false;
  bool uidvalidity_changed = false;
};

StartPoint choose_start(const StartInputs& in);

}  // namespace mailsync::sync
