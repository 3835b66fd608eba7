#include "mailsync/util/pause_point.hpp"

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <set>
#include <string>

namespace mailsync::util {

namespace {

struct Armed {
  std::string name;
  std::set<int> at;  // the passes that stop
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
    if (colon == std::string::npos) {
      p->at.insert(1);
    } else {
      const char* next = text.c_str() + colon + 1;
      for (char* end = nullptr;; next = end + 1) {
        p->at.insert(static_cast<int>(std::strtol(next, &end, 10)));
        if (*end != ',') break;
      }
    }
    return p;
  }();
  return point;
}

}  // namespace

void pause_point(std::string_view name) {
  Armed* point = armed();
  if (point == nullptr || point->name != name) return;
  if (point->at.contains(point->passed.fetch_add(1) + 1)) std::raise(SIGSTOP);
}

}  // namespace mailsync::util
