#include "mailsync/sync/progress_meter.hpp"

#include <algorithm>
#include <cstdio>

namespace mailsync::sync {

ProgressMeter::ProgressMeter(int64_t total_messages, int64_t total_bytes, Steady started)
    : total_messages_(total_messages),
      total_bytes_(total_bytes),
      started_(started),
      last_write_(started),
      last_log_(started) {}

void ProgressMeter::add(int64_t messages, int64_t bytes) {
  done_messages_ += messages;
  done_bytes_ += bytes;
}

ProgressMeter::Due ProgressMeter::due(Steady now) {
  Due due;
  if (written_ && now - last_write_ < kWriteEvery) return due;
  due.write = true;
  written_ = true;
  last_write_ = now;
  samples_.push_back({now, done_messages_});
  // One sample at least kRateWindow old is kept, so that the window spans the whole minute.
  while (samples_.size() > 1 && now - samples_[1].at >= kRateWindow) samples_.pop_front();
  if (now - last_log_ >= kLogEvery) {
    due.log = true;
    last_log_ = now;
  }
  return due;
}

Progress ProgressMeter::at(int64_t job_id, Steady now) const {
  const double seconds = std::max(std::chrono::duration<double>(now - started_).count(), 1e-3);
  Sample from{started_, 0};
  if (!samples_.empty() && now - samples_.front().at >= kRateWindow) from = samples_.front();
  const double window = std::max(std::chrono::duration<double>(now - from.at).count(), 1e-3);
  const double rate = static_cast<double>(done_messages_ - from.messages) / window;
  std::optional<int64_t> left;
  if (rate > 0 && now - started_ >= kMinEta)
    left = static_cast<int64_t>(static_cast<double>(total_messages_ - done_messages_) / rate);
  return {job_id, seconds, done_messages_, total_messages_, done_bytes_, total_bytes_, rate, left};
}

std::string ProgressMeter::line(const Progress& p) {
  char text[200];
  std::snprintf(text, sizeof text,
                "progress: %lld of %lld messages, %.1f of %.1f MB, %.0f msgs/s, ",
                static_cast<long long>(p.messages_done), static_cast<long long>(p.messages_total),
                static_cast<double>(p.bytes_done) / 1e6, static_cast<double>(p.bytes_total) / 1e6,
                p.rate_per_s);
  return text + (p.eta_seconds ? "about " + std::to_string(*p.eta_seconds) + " s left"
                               : std::string("time left not known yet"));
}

}  // namespace mailsync::sync
