#include "mailsync/util/memory.hpp"

#include <malloc.h>

#include <cstdlib>

namespace mailsync::util {

void cap_malloc_arenas() {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): at start, before any thread
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) mallopt(M_ARENA_MAX, 2);
}

}  // namespace mailsync::util
