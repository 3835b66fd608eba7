#pragma once

namespace mailsync::util {

// glibc gives threads that allocate at once arenas of their own, up to 8 per core, each holding
// on to what it freed: with a run's 32 claim lanes, run-once's peak RSS was 44 MB, with two arenas
// 31 MB (3,000 messages, bench/sync's stack; time unchanged). Caps them at 2 unless
// MALLOC_ARENA_MAX says otherwise. Call at start, before threads.
void cap_malloc_arenas();

}  // namespace mailsync::util
