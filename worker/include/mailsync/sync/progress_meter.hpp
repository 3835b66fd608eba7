#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>

#include "mailsync/sync/sync_store.hpp"

// Progress of a long run (a first import of a whole INBOX): messages and bytes done of the total,
// the rate and the time left. Time is a parameter (steady clock readings), so the rule of when to
// write and log is testable: the progress row after the first batch and then every 5 s, a log line
// every 10 s. The rate is that of the last minute or so (the run's own until it is that old): an
// import slows as the destination folder grows, and the run's average then promised too little
// time left (bench/sync/import.sh measured 49-81 % short).
namespace mailsync::sync {

class ProgressMeter {
 public:
  using Steady = std::chrono::steady_clock::time_point;
  static constexpr std::chrono::seconds kWriteEvery{5};
  static constexpr std::chrono::seconds kLogEvery{10};
  static constexpr std::chrono::seconds kRateWindow{60};
  // No time left is promised before the run has copied this long: a rate over the first batch or
  // two says little (bench/sync/import.sh saw 5 s promised for 25 s right after a restart).
  static constexpr std::chrono::seconds kMinEta{10};

  ProgressMeter(int64_t total_messages, int64_t total_bytes, Steady started);

  void add(int64_t messages, int64_t bytes);

  struct Due {
    bool write = false;  // the mailsync.route_progress row
    bool log = false;    // the "progress: ..." line
  };
  // What is due at `now`; marks it done, and a write remembers how much was done then (the start
  // of a later rate window).
  Due due(Steady now);

  Progress at(int64_t job_id, Steady now) const;
  // "progress: 200 of 5000 messages, 1.0 of 25.0 MB, 2000 msgs/s, about 2 s left"
  static std::string line(const Progress& progress);

 private:
  int64_t total_messages_;
  int64_t total_bytes_;
  int64_t done_messages_ = 0;
  int64_t done_bytes_ = 0;
  Steady started_;
  bool written_ = false;
  Steady last_write_;
  Steady last_log_;
  struct Sample {
    Steady at;
    int64_t messages;
  };
  std::deque<Sample> samples_;  // one per write, the oldest within kRateWindow of the newest first
};

}  // namespace mailsync::sync
