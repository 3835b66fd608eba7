#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace mailsync::testing {

// A TCP proxy on 127.0.0.1 that forwards to a target and, once the client has sent
// `cut_after_bytes`, closes both sides: a server dropping the connection mid-command, for one
// connection only, without disturbing tests that share the real server.
class CutProxy {
 public:
  CutProxy(uint16_t target_port, uint64_t cut_after_bytes);
  ~CutProxy();
  uint16_t port() const { return port_; }
  bool cut() const { return cut_.load(); }

 private:
  void serve();
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  uint16_t target_port_;
  uint64_t cut_after_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> cut_{false};
  std::atomic<uint64_t> forwarded_{0};
  std::thread acceptor_;
  std::vector<std::thread> pumps_;
};

}  // namespace mailsync::testing
