#include "mailsync/net/loopback_listener.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "mailsync/net/tls_stream.hpp"
#include "mailsync/util/strings.hpp"

namespace mailsync::net {

LoopbackHttpListener::LoopbackHttpListener(uint16_t port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0)
    throw TransportError(TransportErrorKind::kIo,
                         std::string("socket: ") + util::errno_text(errno));
  const int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(listen_fd_, 4) != 0) {
    const std::string error = util::errno_text(errno);
    ::close(listen_fd_);
    throw TransportError(TransportErrorKind::kConnect,
                         "cannot listen on 127.0.0.1:" + std::to_string(port) + ": " + error);
  }
  socklen_t length = sizeof address;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
  port_ = ntohs(address.sin_port);
}

LoopbackHttpListener::~LoopbackHttpListener() {
  if (client_fd_ >= 0) ::close(client_fd_);
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

std::optional<std::string> LoopbackHttpListener::next_request(std::chrono::milliseconds timeout) {
  if (client_fd_ >= 0) {
    ::close(client_fd_);
    client_fd_ = -1;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto left = [&] {
    return static_cast<int>(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                 std::chrono::steady_clock::now())
               .count()));
  };
  for (;;) {
    pollfd entry{listen_fd_, POLLIN, 0};
    if (::poll(&entry, 1, left()) <= 0) return std::nullopt;
    client_fd_ = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client_fd_ < 0) continue;
    std::string request;
    char buffer[2048];
    while (request.find("\r\n\r\n") == std::string::npos && request.size() < 16384) {
      pollfd client{client_fd_, POLLIN, 0};
      if (::poll(&client, 1, std::min(left(), 5000)) <= 0) break;
      const ssize_t n = ::recv(client_fd_, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      request.append(buffer, static_cast<size_t>(n));
    }
    // "GET /?code=... HTTP/1.1"
    const size_t first_space = request.find(' ');
    const size_t second_space = request.find(' ', first_space + 1);
    if (request.starts_with("GET ") && second_space != std::string::npos)
      return request.substr(first_space + 1, second_space - first_space - 1);
    respond(400, "Bad request");
  }
}

void LoopbackHttpListener::respond(int status, std::string_view html) {
  if (client_fd_ < 0) return;
  const std::string reason = status == 200 ? "OK" : status == 404 ? "Not Found" : "Bad Request";
  const std::string response = "HTTP/1.1 " + std::to_string(status) + " " + reason +
                               "\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: " +
                               std::to_string(html.size()) + "\r\nConnection: close\r\n\r\n" +
                               std::string(html);
  [[maybe_unused]] const ssize_t n =
      ::send(client_fd_, response.data(), response.size(), MSG_NOSIGNAL);
  ::close(client_fd_);
  client_fd_ = -1;
}

}  // namespace mailsync::net
