#include "mailsync/util/pause_point.hpp"

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <string>

namespace mailsync::util {

namespace {

struct Armed {
  std::string name;
  int at = 0;
  std::atomic<int> passed{0};
};

Armed* armed() {
  static Armed* const point = []() -> Armed* {
    // NOLINTNEXTLINE(concurrency-mt-unsafe): read once, nothing writes the environment
    const char* value = std::getenv("MAILSYNC_TEST_PAUSE_AT");
    if (value == nullptr) return nullptr;
    const std::string text(value);
    const size_t colon = text.rfind(':');
    auto* p = new Armed;  // lives as long as the process
    p->name = text.substr(0, colon);
    p->at = colon == std::string::npos
                ? 1
                : static_cast<int>(std::strtol(text.c_str() + colon + 1, nullptr, 10));
    return p;
  }();
  return point;
}

}  // namespace

void pause_point(std::string_view name) {
  Armed* point = armed();
  if (point == nullptr || point->name != name) return;
  if (point->passed.fetch_add(1) + 1 == point->at) std::raise(SIGSTOP);
}

}  // namespace mailsync::util
