#include "support/cut_proxy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

namespace mailsync::testing {

CutProxy::CutProxy(uint16_t target_port, uint64_t cut_after_bytes, Mode mode)
    : target_port_(target_port), cut_after_(cut_after_bytes), mode_(mode) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(listen_fd_, 8) != 0)
    throw std::runtime_error("cut proxy: cannot listen");
  socklen_t length = sizeof address;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
  port_ = ntohs(address.sin_port);
  acceptor_ = std::thread([this] { serve(); });
}

CutProxy::~CutProxy() {
  stop_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);
  ::close(listen_fd_);
  acceptor_.join();
  for (auto& pump : pumps_) pump.join();
}

void CutProxy::serve() {
  for (;;) {
    pollfd entry{listen_fd_, POLLIN, 0};
    if (::poll(&entry, 1, 100) <= 0) {
      if (stop_) return;
      continue;
    }
    const int client = ::accept(listen_fd_, nullptr, nullptr);
    if (client < 0) return;
    const int server = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in target{};
    target.sin_family = AF_INET;
    target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    target.sin_port = htons(target_port_);
    if (::connect(server, reinterpret_cast<sockaddr*>(&target), sizeof target) != 0) {
      ::close(client);
      ::close(server);
      continue;
    }
    auto silent = std::make_shared<std::atomic<bool>>(false);
    {
      std::lock_guard lock(silent_mutex_);
      silent_.push_back(silent);
    }
    pumps_.emplace_back([this, client, server, silent] {
      char buffer[16384];
      pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
      while (!stop_) {
        if (::poll(fds, 2, 100) <= 0) continue;
        bool closed = false;
        for (int i = 0; i < 2 && !closed; ++i) {
          if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
          const ssize_t n = ::recv(fds[i].fd, buffer, sizeof buffer, 0);
          if (n <= 0) {
            closed = true;
            break;
          }
          if (i == 0 && (forwarded_ += static_cast<uint64_t>(n)) > cut_after_) {
            cut_ = true;  // the server "goes away" in the middle of what the client is sending
            if (mode_ == Mode::kClose) {
              closed = true;
              break;
            }
          }
          if (!cut_ && !*silent)
            ::send(fds[1 - i].fd, buffer, static_cast<size_t>(n), MSG_NOSIGNAL);
        }
        if (closed) break;
      }
      ::close(client);
      ::close(server);
    });
  }
}

void CutProxy::silence_open_connections() {
  std::lock_guard lock(silent_mutex_);
  for (auto& flag : silent_) *flag = true;
}

}  // namespace mailsync::testing
