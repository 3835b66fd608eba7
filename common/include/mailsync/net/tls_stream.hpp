#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

struct addrinfo;

// The transport under the IMAP client: TCP with connect and I/O timeouts, TLS through OpenSSL with
// the certificate chain and host name verified by default. Only this layer touches sockets and
// OpenSSL's TLS API.
namespace mailsync::net {

struct TlsOptions {
  std::string ca_file;  // extra CA bundle (MAILSYNC_TLS_CA_FILE), trusted besides the system store
  bool verify = true;   // chain + host name; turning it off is for explicit, loopback-only use
  std::chrono::milliseconds connect_timeout{15'000};  // TCP connect + TLS handshake
  std::chrono::milliseconds io_timeout{120'000};      // any single read or write
};

enum class TransportErrorKind { kResolve, kConnect, kTls, kCertificate, kTimeout, kClosed, kIo };

// Retryable except kCertificate (a wrong or untrusted certificate does not fix itself).
class TransportError : public std::runtime_error {
 public:
  TransportError(TransportErrorKind kind, const std::string& message)
      : std::runtime_error(message), kind_(kind) {}
  TransportErrorKind kind() const { return kind_; }
  bool retryable() const { return kind_ != TransportErrorKind::kCertificate; }

 private:
  TransportErrorKind kind_;
};

// Whether `host` is an IPv4 or IPv6 address rather than a name (nothing to resolve).
bool is_ip_literal(const std::string& host);

// The first address of `host` in numeric form ("192.0.2.7", "2001:db8::1"), within `timeout`
// (kTimeout otherwise, kResolve when the name does not resolve). For clients that resolve names
// without a bound of their own (libpq): they are handed the address.
std::string resolve_address(const std::string& host, std::chrono::milliseconds timeout);

// A connected TCP socket (non-blocking underneath, blocking with timeouts on top).
class Socket {
 public:
  // getaddrinfo's signature: tests pass a slow one.
  using Resolver = int (*)(const char*, const char*, const ::addrinfo*, ::addrinfo**);

  // Resolves `host` and tries every address in turn, all within `timeout` (kTimeout when it runs
  // out, name resolution included: getaddrinfo has no timeout of its own, so it runs on a thread
  // that is left to finish by itself, its answer discarded, when the time is up).
  static Socket connect(const std::string& host, uint16_t port, std::chrono::milliseconds timeout,
                        bool loopback_only = false, Resolver resolver = nullptr);

  Socket(Socket&& other) noexcept;
  Socket& operator=(Socket&& other) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket();

  int fd() const { return fd_; }
  const std::string& peer() const { return peer_; }  // "host:port" for messages

 private:
  Socket(int fd, std::string peer) : fd_(fd), peer_(std::move(peer)) {}
  int fd_ = -1;
  std::string peer_;
};

// What the IMAP client reads and writes through.
class Stream {
 public:
  virtual ~Stream() = default;
  // Reads at least one byte, at most `capacity`; waits up to the I/O timeout. Throws kClosed when
  // the peer closed the connection, kTimeout when nothing arrived in time.
  virtual size_t read_some(char* buffer, size_t capacity) = 0;
  virtual void write_all(std::string_view bytes) = 0;
  virtual void set_io_timeout(std::chrono::milliseconds timeout) = 0;
  virtual std::chrono::milliseconds io_timeout() const = 0;
  virtual const std::string& peer() const = 0;
};

// Unencrypted TCP, for loopback test servers only: refused for any other address.
class PlainStream final : public Stream {
 public:
  // Throws TransportError when `host` does not resolve to loopback addresses only.
  static std::unique_ptr<PlainStream> connect_loopback(const std::string& host, uint16_t port,
                                                       std::chrono::milliseconds connect_timeout,
                                                       std::chrono::milliseconds io_timeout);
  size_t read_some(char* buffer, size_t capacity) override;
  void write_all(std::string_view bytes) override;
  void set_io_timeout(std::chrono::milliseconds timeout) override { io_timeout_ = timeout; }
  std::chrono::milliseconds io_timeout() const override { return io_timeout_; }
  const std::string& peer() const override { return socket_.peer(); }
  // The plaintext start of a STARTTLS connection (any host: TLS follows before anything else).
  static std::unique_ptr<PlainStream> for_starttls(Socket socket,
                                                   std::chrono::milliseconds io_timeout) {
    return std::unique_ptr<PlainStream>(new PlainStream(std::move(socket), io_timeout));
  }
  // Hands the connection over for STARTTLS.
  Socket release() && { return std::move(socket_); }

 private:
  PlainStream(Socket socket, std::chrono::milliseconds io_timeout)
      : socket_(std::move(socket)), io_timeout_(io_timeout) {}
  Socket socket_;
  std::chrono::milliseconds io_timeout_;
};

class TlsStream final : public Stream {
 public:
  // Implicit TLS (IMAPS, port 993).
  static std::unique_ptr<TlsStream> connect(const std::string& host, uint16_t port,
                                            const TlsOptions& options);
  // TLS over an established connection (STARTTLS, RFC 3501 6.2.1); `host` is verified.
  static std::unique_ptr<TlsStream> upgrade(Socket socket, const std::string& host,
                                            const TlsOptions& options);

  ~TlsStream() override;
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  size_t read_some(char* buffer, size_t capacity) override;
  void write_all(std::string_view bytes) override;
  void set_io_timeout(std::chrono::milliseconds timeout) override { options_.io_timeout = timeout; }
  std::chrono::milliseconds io_timeout() const override { return options_.io_timeout; }
  const std::string& peer() const override { return socket_.peer(); }

  std::string_view protocol() const;  // "TLSv1.3"

 private:
  struct Ssl;
  TlsStream(Socket socket, TlsOptions options);
  void handshake(const std::string& host);
  void wait_for(int ssl_error, std::chrono::milliseconds timeout, const char* what);

  Socket socket_;
  TlsOptions options_;
  std::unique_ptr<Ssl> ssl_;
};

}  // namespace mailsync::net
