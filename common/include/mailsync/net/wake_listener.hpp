#pragma once

#include <cstdint>
#include <string>

namespace mailsync::net {

// Connects to a listener of this process and closes at once, so that a server loop blocked in
// poll/accept on it wakes up (civetweb's listener polls with a 2 s timeout before it sees its stop
// flag; the metrics server uses this to stop in milliseconds). A wildcard address (0.0.0.0, ::)
// is reached through loopback. Best effort: errors are ignored.
void wake_listener(const std::string& address, uint16_t port);

}  // namespace mailsync::net
