#include "mailsync/net/wake_listener.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

namespace mailsync::net {

void wake_listener(const std::string& address, uint16_t port) {
  const bool v6 = address.find(':') != std::string::npos;
  const int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  if (v6) {
    sockaddr_in6 to{};
    to.sin6_family = AF_INET6;
    to.sin6_port = htons(port);
    if (inet_pton(AF_INET6, address == "::" ? "::1" : address.c_str(), &to.sin6_addr) == 1)
      (void)::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to);  // the attempt is the point
  } else {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    if (inet_pton(AF_INET, address == "0.0.0.0" ? "127.0.0.1" : address.c_str(), &to.sin_addr) == 1)
      (void)::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to);  // the attempt is the point
  }
  ::close(fd);
}

}  // namespace mailsync::net
