#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mailsync::net {

// A one-request-at-a-time HTTP listener on 127.0.0.1, for the OAuth redirect of `mailsync auth`
// (RFC 8252 section 7.3). Reads at most 16 KiB of a request; only the request target is used.
class LoopbackHttpListener {
 public:
  explicit LoopbackHttpListener(uint16_t port = 0);  // 0: any free port
  ~LoopbackHttpListener();
  LoopbackHttpListener(const LoopbackHttpListener&) = delete;
  LoopbackHttpListener& operator=(const LoopbackHttpListener&) = delete;

  uint16_t port() const { return port_; }

  // Waits for the next request and returns its target ("/?code=...&state=..."), or nullopt when
  // `timeout` passes. The connection stays open for respond().
  std::optional<std::string> next_request(std::chrono::milliseconds timeout);
  void respond(int status, std::string_view html);

 private:
  int listen_fd_ = -1;
  int client_fd_ = -1;
  uint16_t port_ = 0;
};

}  // namespace mailsync::net
