#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mailsync::testing {

// A TCP proxy on 127.0.0.1 that forwards to a target and, once the client has sent
// `cut_after_bytes`, closes both sides (kClose: a server dropping the connection mid-command) or
// goes silent, keeping both open and forwarding nothing more either way (kSilence: a half-open
// connection, a stalled server), for the connections through it only, without disturbing tests
// that share the real server.
class CutProxy {
 public:
  enum class Mode { kClose, kSilence };
  CutProxy(uint16_t target_port, uint64_t cut_after_bytes, Mode mode = Mode::kClose);
  ~CutProxy();
  uint16_t port() const { return port_; }
  bool cut() const { return cut_.load(); }
  // From now on, as if the byte count had been reached.
  void cut_now() { cut_ = true; }
  // The connections open now go silent for good (forward nothing either way, stay open); later
  // ones work: a NAT that forgot a long-lived connection.
  void silence_open_connections();

 private:
  void serve();
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  uint16_t target_port_;
  uint64_t cut_after_;
  Mode mode_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> cut_{false};
  std::atomic<uint64_t> forwarded_{0};
  std::thread acceptor_;
  std::vector<std::thread> pumps_;
  std::mutex silent_mutex_;
  std::vector<std::shared_ptr<std::atomic<bool>>> silent_;
};

}  // namespace mailsync::testing
