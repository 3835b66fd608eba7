#include "mailsync/util/lanes.hpp"

#include <algorithm>
#include <utility>

namespace mailsync::util {

Lanes::~Lanes() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  start_.notify_all();
  for (auto& thread : threads_) thread.join();
}

void Lanes::run(size_t lanes, size_t tasks, const std::function<void(size_t, size_t)>& fn) {
  if (tasks == 0) return;
  lanes = std::max<size_t>(1, std::min(lanes, tasks));
  {
    std::unique_lock lock(mutex_);
    while (threads_.size() + 1 < lanes) {
      const size_t lane = threads_.size() + 1;
      threads_.emplace_back([this, lane] { serve(lane); });
    }
    fn_ = &fn;
    lanes_ = lanes;
    tasks_ = tasks;
    busy_ = lanes - 1;
    failure_ = nullptr;
    ++generation_;
  }
  start_.notify_all();
  work(0);
  std::unique_lock lock(mutex_);
  finished_.wait(lock, [&] { return busy_ == 0; });
  fn_ = nullptr;
  if (failure_) std::rethrow_exception(std::exchange(failure_, nullptr));
}

void Lanes::serve(size_t lane) {
  unsigned long seen = 0;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      start_.wait(lock, [&] { return stopping_ || (generation_ != seen && lane < lanes_); });
      if (stopping_) return;
      seen = generation_;
    }
    work(lane);
    std::lock_guard lock(mutex_);
    if (--busy_ == 0) finished_.notify_one();
  }
}

void Lanes::work(size_t lane) {
  try {
    for (size_t task = lane; task < tasks_; task += lanes_) (*fn_)(task, lane);
  } catch (...) {
    std::lock_guard lock(mutex_);
    if (!failure_) failure_ = std::current_exception();
  }
}

}  // namespace mailsync::util
