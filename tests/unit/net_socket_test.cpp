// The TCP layer's bounds: name resolution counts against the connect timeout.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include <pqxx/except>

#include "mailsync/net/tls_stream.hpp"
#include "postgres/deadline.hpp"

namespace {

using mailsync::net::Socket;
using mailsync::net::TransportError;
using mailsync::net::TransportErrorKind;

class LoopbackListener {
 public:
  LoopbackListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), length) != 0 || ::listen(fd_, 4) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0)
      ADD_FAILURE() << "no loopback listener";
    port_ = ntohs(address.sin_port);
  }
  ~LoopbackListener() { ::close(fd_); }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// A resolver that answers, correctly, but only after two seconds: a DNS server that is slow or
// gone (glibc then retries for up to timeout × attempts × servers, 30 s by default, per lookup).
int slow_resolver(const char*, const char* service, const addrinfo* hints, addrinfo** out) {
  std::this_thread::sleep_for(std::chrono::seconds(2));
  return ::getaddrinfo("127.0.0.1", service, hints, out);
}

TEST(Socket, ASlowNameResolutionEndsWithinTheConnectTimeout) {
  const LoopbackListener listener;
  try {
    Socket::connect("imap.slow-dns.test", listener.port(), std::chrono::milliseconds(200), false,
                    &slow_resolver);
    FAIL() << "connected after the lookup outlived the 200 ms connect timeout";
  } catch (const TransportError& e) {
    EXPECT_EQ(e.kind(), TransportErrorKind::kTimeout);
    EXPECT_TRUE(e.retryable());
    EXPECT_STREQ(e.what(), "cannot resolve imap.slow-dns.test within 200 ms (the connect timeout)");
  }
}

TEST(Socket, ResolvesNamesAndLiteralsAndNamesAFailedLookup) {
  const LoopbackListener listener;
  EXPECT_GE(Socket::connect("localhost", listener.port(), std::chrono::seconds(5)).fd(), 0);
  EXPECT_GE(Socket::connect("127.0.0.1", listener.port(), std::chrono::seconds(5)).fd(), 0);
  try {
    Socket::connect("no-such-host.invalid", listener.port(), std::chrono::seconds(5));
    FAIL() << "resolved .invalid";
  } catch (const TransportError& e) {
    // kResolve here; kTimeout where the machine's DNS server does not answer at all.
    EXPECT_TRUE(e.kind() == TransportErrorKind::kResolve ||
                e.kind() == TransportErrorKind::kTimeout)
        << e.what();
    EXPECT_EQ(std::string(e.what()).rfind("cannot resolve no-such-host.invalid", 0), 0u)
        << e.what();
  }
}

TEST(DatabaseUrl, AHostNameIsResolvedWithinABoundAndHandedToLibpqAsHostaddr) {
  using mailsync::postgres::detail::connection_string;
  const std::string uri = connection_string("postgresql://u@localhost:5432/db", "w");
  EXPECT_TRUE(uri.find("hostaddr=127.0.0.1") != std::string::npos ||
              uri.find("hostaddr=%3A%3A1") != std::string::npos)
      << uri;
  const std::string keywords = connection_string("host=localhost dbname=db", "w");
  EXPECT_TRUE(keywords.find("hostaddr='127.0.0.1'") != std::string::npos ||
              keywords.find("hostaddr='::1'") != std::string::npos)
      << keywords;
  // Nothing to resolve: an address, a socket directory, several hosts, a hostaddr already given.
  for (const char* url :
       {"postgresql://u@127.0.0.1:5432/db", "host=/var/run/postgresql dbname=db",
        "postgresql://u@a.example,b.example/db", "host=db.example hostaddr=192.0.2.1"})
    EXPECT_EQ(std::string(connection_string(url, "w")).find("hostaddr", 20), std::string::npos)
        << url;
  EXPECT_THROW(connection_string("postgresql://u@no-such-host.invalid/db", "w"),
               pqxx::broken_connection);
}

}  // namespace
