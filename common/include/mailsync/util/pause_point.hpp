#pragma once

#include <string_view>

// Named points where a test can freeze the whole process, deterministically, as a stalled VM or a
// SIGSTOP would: with MAILSYNC_TEST_PAUSE_AT=NAME:N in the environment, the N-th time the process
// passes pause_point("NAME") it stops itself (SIGSTOP) until a SIGCONT; NAME:N,M,... stops at
// each of those passes. Read once; without the variable a pause point costs one relaxed load. For
// tests only (the fencing tests freeze a worker just before an APPEND); nothing in production
// sets it.
namespace mailsync::util {

void pause_point(std::string_view name);

}  // namespace mailsync::util
