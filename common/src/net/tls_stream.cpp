#include "mailsync/net/tls_stream.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "mailsync/net/trust_store.hpp"
#include "mailsync/util/strings.hpp"

namespace mailsync::net {

namespace {

using Clock = std::chrono::steady_clock;

// OpenSSL writes through write(2): a peer that closed would raise SIGPIPE and kill the process.
void ignore_sigpipe_once() {
  static std::once_flag once;
  std::call_once(once, [] { std::signal(SIGPIPE, SIG_IGN); });
}

std::string openssl_errors() {
  std::string out;
  char buffer[256];
  while (const unsigned long code = ERR_get_error()) {
    ERR_error_string_n(code, buffer, sizeof buffer);
    if (!out.empty()) out += "; ";
    out += buffer;
  }
  return out.empty() ? "no detail from OpenSSL" : out;
}

// One client context per (verify, CA file) for the process, configured once and then only read
// (OpenSSL allows SSL_new from many threads): a context per connection cost a trust-store parse
// and OpenSSL 3.0's algorithm fetches each time. Returns a new reference.
SSL_CTX* shared_client_context(const TlsOptions& options) {
  static std::mutex mutex;
  static auto* contexts = new std::map<std::pair<bool, std::string>, SSL_CTX*>;  // never destroyed
  const std::pair<bool, std::string> key{options.verify, options.verify ? options.ca_file : ""};
  std::lock_guard lock(mutex);
  auto found = contexts->find(key);
  if (found == contexts->end()) {  // a failure is not remembered: the next connection tries again
    ERR_clear_error();
    std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> context(SSL_CTX_new(TLS_client_method()),
                                                              &SSL_CTX_free);
    if (context == nullptr)
      throw TransportError(TransportErrorKind::kTls, "TLS setup: " + openssl_errors());
    SSL_CTX_set_min_proto_version(context.get(), TLS1_2_VERSION);
    SSL_CTX_set_mode(context.get(),
                     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_verify(context.get(), options.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
    if (options.verify) SSL_CTX_set_cert_store(context.get(), shared_trust_store(options.ca_file));
    found = contexts->emplace(key, context.release()).first;
  }
  SSL_CTX_up_ref(found->second);
  return found->second;
}

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

// Waits for `events` on `fd`; false on timeout.
bool poll_fd(int fd, short events, int timeout_ms) {
  pollfd entry{fd, events, 0};
  for (;;) {
    const int ready = ::poll(&entry, 1, timeout_ms);
    if (ready > 0) return true;
    if (ready == 0) return false;
    if (errno != EINTR)
      throw TransportError(TransportErrorKind::kIo,
                           std::string("poll: ") + util::errno_text(errno));
  }
}

using AddressList = std::unique_ptr<addrinfo, decltype(&freeaddrinfo)>;

// One name resolution, shared by the caller and the thread that runs it: whichever lets go last
// frees it, so a caller that gave up leaves nothing dangling.
struct Resolution {
  std::mutex mutex;
  std::condition_variable finished;
  bool done = false;
  int rc = 0;
  addrinfo* result = nullptr;
  ~Resolution() {
    if (result != nullptr) freeaddrinfo(result);
  }
};

AddressList resolve_within(const std::string& host, const std::string& port,
                           Clock::time_point deadline, std::chrono::milliseconds timeout,
                           Socket::Resolver resolver) {
  if (resolver == nullptr) resolver = &::getaddrinfo;
  const auto run = [resolver](const std::string& name, const std::string& service,
                              Resolution& into) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* out = nullptr;
    const int rc = resolver(name.c_str(), service.c_str(), &hints, &out);
    const std::lock_guard lock(into.mutex);
    into.rc = rc;
    into.result = out;
    into.done = true;
    into.finished.notify_all();
  };
  auto state = std::make_shared<Resolution>();
  if (resolver == &::getaddrinfo && is_ip_literal(host)) {
    run(host, port, *state);  // no lookup, nothing to wait for
  } else {
    try {
      std::thread([run, host, port, state] { run(host, port, *state); }).detach();
    } catch (const std::system_error& e) {
      throw TransportError(
          TransportErrorKind::kResolve,
          "cannot resolve " + host + ": no thread for the lookup (" + e.what() + ")");
    }
  }
  std::unique_lock lock(state->mutex);
  if (!state->finished.wait_until(lock, deadline, [&] { return state->done; }))
    throw TransportError(TransportErrorKind::kTimeout, "cannot resolve " + host + " within " +
                                                           std::to_string(timeout.count()) +
                                                           " ms (the connect timeout)");
  if (state->rc != 0)
    throw TransportError(TransportErrorKind::kResolve,
                         "cannot resolve " + host + ": " + gai_strerror(state->rc));
  return {std::exchange(state->result, nullptr), &freeaddrinfo};
}

}  // namespace

bool is_ip_literal(const std::string& host) {
  in6_addr address6;
  in_addr address4;
  return inet_pton(AF_INET, host.c_str(), &address4) == 1 ||
         inet_pton(AF_INET6, host.c_str(), &address6) == 1;
}

std::string resolve_address(const std::string& host, std::chrono::milliseconds timeout) {
  const AddressList addresses = resolve_within(host, "0", Clock::now() + timeout, timeout, nullptr);
  char name[NI_MAXHOST] = "";
  if (addresses == nullptr || ::getnameinfo(addresses->ai_addr, addresses->ai_addrlen, name,
                                            sizeof name, nullptr, 0, NI_NUMERICHOST) != 0)
    throw TransportError(TransportErrorKind::kResolve, "cannot resolve " + host + ": no address");
  return name;
}

// ---- Socket ----------------------------------------------------------------------------------

Socket Socket::connect(const std::string& host, uint16_t port, std::chrono::milliseconds timeout,
                       bool loopback_only, Resolver resolver) {
  ignore_sigpipe_once();
  const std::string peer = host + ":" + std::to_string(port);
  const auto deadline = Clock::now() + timeout;
  const AddressList addresses =
      resolve_within(host, std::to_string(port), deadline, timeout, resolver);
  std::string failures;
  bool timed_out = false;
  if (loopback_only) {
    for (const addrinfo* a = addresses.get(); a != nullptr; a = a->ai_next) {
      const bool loopback =
          a->ai_family == AF_INET
              ? (ntohl(reinterpret_cast<const sockaddr_in*>(a->ai_addr)->sin_addr.s_addr) >> 24) ==
                    127
              : a->ai_family == AF_INET6 &&
                    IN6_IS_ADDR_LOOPBACK(
                        &reinterpret_cast<const sockaddr_in6*>(a->ai_addr)->sin6_addr);
      if (!loopback)
        throw TransportError(
            TransportErrorKind::kConnect,
            "refusing an unencrypted connection to " + peer + ": not a loopback address");
    }
  }
  for (const addrinfo* a = addresses.get(); a != nullptr; a = a->ai_next) {
    const int fd =
        ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    Socket candidate(fd, peer);
    int error = 0;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      error = errno;
      if (error == EINPROGRESS) {
        if (!poll_fd(fd, POLLOUT, remaining_ms(deadline))) {
          timed_out = true;
          error = ETIMEDOUT;
        } else {
          socklen_t length = sizeof error;
          ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
        }
      }
    }
    if (error == 0) {
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // pipelined small commands
      return candidate;
    }
    char name[INET6_ADDRSTRLEN] = "?";
    const void* raw =
        a->ai_family == AF_INET
            ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(a->ai_addr)->sin_addr)
            : static_cast<const void*>(
                  &reinterpret_cast<const sockaddr_in6*>(a->ai_addr)->sin6_addr);
    ::inet_ntop(a->ai_family, raw, name, sizeof name);
    if (!failures.empty()) failures += ", ";
    failures += std::string(name) + ": " + util::errno_text(error);
    if (remaining_ms(deadline) == 0) break;
  }
  throw TransportError(timed_out ? TransportErrorKind::kTimeout : TransportErrorKind::kConnect,
                       "cannot connect to " + peer + " (" + failures + ")");
}

Socket::Socket(Socket&& other) noexcept : fd_(other.fd_), peer_(std::move(other.peer_)) {
  other.fd_ = -1;
}

Socket& Socket::operator=(Socket&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    peer_ = std::move(other.peer_);
    other.fd_ = -1;
  }
  return *this;
}

Socket::~Socket() {
  if (fd_ >= 0) ::close(fd_);
}

// ---- PlainStream -----------------------------------------------------------------------------

std::unique_ptr<PlainStream> PlainStream::connect_loopback(
    const std::string& host, uint16_t port, std::chrono::milliseconds connect_timeout,
    std::chrono::milliseconds io_timeout) {
  return std::unique_ptr<PlainStream>(
      new PlainStream(Socket::connect(host, port, connect_timeout, true), io_timeout));
}

size_t PlainStream::read_some(char* buffer, size_t capacity) {
  for (;;) {
    const ssize_t n = ::recv(socket_.fd(), buffer, capacity, 0);
    if (n > 0) return static_cast<size_t>(n);
    if (n == 0)
      throw TransportError(TransportErrorKind::kClosed,
                           "connection to " + peer() + " closed by the server");
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      throw TransportError(TransportErrorKind::kIo,
                           "read from " + peer() + " failed: " + util::errno_text(errno));
    if (!poll_fd(socket_.fd(), POLLIN, static_cast<int>(io_timeout_.count())))
      throw TransportError(TransportErrorKind::kTimeout,
                           "read with " + peer() + " timed out after " +
                               std::to_string(io_timeout_.count()) + " ms");
  }
}

void PlainStream::write_all(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(socket_.fd(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!poll_fd(socket_.fd(), POLLOUT, static_cast<int>(io_timeout_.count())))
        throw TransportError(TransportErrorKind::kTimeout, "write to " + peer() + " timed out");
      continue;
    }
    if (errno == EPIPE || errno == ECONNRESET)
      throw TransportError(TransportErrorKind::kClosed,
                           "connection to " + peer() + " closed by the server");
    throw TransportError(TransportErrorKind::kIo,
                         "write to " + peer() + " failed: " + util::errno_text(errno));
  }
}

// ---- TlsStream -------------------------------------------------------------------------------

struct TlsStream::Ssl {
  SSL_CTX* context = nullptr;
  SSL* ssl = nullptr;
  ~Ssl() {
    if (ssl != nullptr) SSL_free(ssl);
    if (context != nullptr) SSL_CTX_free(context);
  }
};

X509_STORE* shared_trust_store(const std::string& ca_file) {
  static std::mutex mutex;
  // Never destroyed: the stores live as long as the process, reachable for the leak checker.
  static auto* stores = new std::map<std::string, X509_STORE*>;
  std::lock_guard lock(mutex);  // held while parsing: concurrent first connections parse once
  auto found = stores->find(ca_file);
  if (found == stores->end()) {  // a failure is not remembered: a file put right is read next time
    ERR_clear_error();
    std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(),
                                                                  &X509_STORE_free);
    if (store == nullptr || X509_STORE_set_default_paths(store.get()) != 1 ||
        (!ca_file.empty() && X509_STORE_load_file(store.get(), ca_file.c_str()) != 1))
      throw TransportError(
          TransportErrorKind::kCertificate,
          (ca_file.empty() ? "cannot load the system CA store" : "cannot load CA file " + ca_file) +
              ": " + openssl_errors());
    found = stores->emplace(ca_file, store.release()).first;
  }
  X509_STORE_up_ref(found->second);
  return found->second;
}

TlsStream::TlsStream(Socket socket, TlsOptions options)
    : socket_(std::move(socket)), options_(std::move(options)), ssl_(std::make_unique<Ssl>()) {}

TlsStream::~TlsStream() {
  if (ssl_ && ssl_->ssl != nullptr) {
    ERR_clear_error();
    SSL_shutdown(ssl_->ssl);  // best effort close_notify; never waits for the peer's
  }
}

std::unique_ptr<TlsStream> TlsStream::connect(const std::string& host, uint16_t port,
                                              const TlsOptions& options) {
  return upgrade(Socket::connect(host, port, options.connect_timeout), host, options);
}

std::unique_ptr<TlsStream> TlsStream::upgrade(Socket socket, const std::string& host,
                                              const TlsOptions& options) {
  std::unique_ptr<TlsStream> stream(new TlsStream(std::move(socket), options));
  stream->handshake(host);
  return stream;
}

void TlsStream::handshake(const std::string& host) {
  ERR_clear_error();
  SSL_CTX* context = ssl_->context = shared_client_context(options_);
  SSL* ssl = ssl_->ssl = SSL_new(context);
  if (ssl == nullptr || SSL_set_fd(ssl, socket_.fd()) != 1)
    throw TransportError(TransportErrorKind::kTls, "TLS setup: " + openssl_errors());
  if (is_ip_literal(host)) {
    if (options_.verify) X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl, host.c_str());  // SNI (RFC 6066 section 3)
    if (options_.verify) SSL_set1_host(ssl, host.c_str());
  }

  const auto deadline = Clock::now() + options_.connect_timeout;
  for (;;) {
    ERR_clear_error();
    const int rc = SSL_connect(ssl);
    if (rc == 1) return;
    const int error = SSL_get_error(ssl, rc);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
      wait_for(error, std::chrono::milliseconds(remaining_ms(deadline)), "TLS handshake");
      continue;
    }
    if (const long verify = SSL_get_verify_result(ssl); verify != X509_V_OK)
      throw TransportError(TransportErrorKind::kCertificate,
                           "certificate of " + peer() +
                               " rejected: " + X509_verify_cert_error_string(verify) +
                               " (trust a private CA with MAILSYNC_TLS_CA_FILE)");
    if (error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
      throw TransportError(TransportErrorKind::kClosed,
                           "TLS handshake with " + peer() + ": connection closed by the server");
    throw TransportError(TransportErrorKind::kTls,
                         "TLS handshake with " + peer() + " failed: " + openssl_errors());
  }
}

void TlsStream::wait_for(int ssl_error, std::chrono::milliseconds timeout, const char* what) {
  const short events = ssl_error == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
  if (!poll_fd(socket_.fd(), events, static_cast<int>(timeout.count())))
    throw TransportError(TransportErrorKind::kTimeout, std::string(what) + " with " + peer() +
                                                           " timed out after " +
                                                           std::to_string(timeout.count()) + " ms");
}

size_t TlsStream::read_some(char* buffer, size_t capacity) {
  for (;;) {
    ERR_clear_error();
    size_t got = 0;
    const int rc = SSL_read_ex(ssl_->ssl, buffer, capacity, &got);
    if (rc == 1) return got;
    const int error = SSL_get_error(ssl_->ssl, rc);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
      wait_for(error, options_.io_timeout, "read");
      continue;
    }
    if (error == SSL_ERROR_ZERO_RETURN || (error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) ||
        (error == SSL_ERROR_SSL &&
         ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING))
      throw TransportError(TransportErrorKind::kClosed,
                           "connection to " + peer() + " closed by the server");
    throw TransportError(TransportErrorKind::kIo,
                         "read from " + peer() + " failed: " + openssl_errors());
  }
}

void TlsStream::write_all(std::string_view bytes) {
  while (!bytes.empty()) {
    ERR_clear_error();
    size_t written = 0;
    const int rc = SSL_write_ex(ssl_->ssl, bytes.data(), bytes.size(), &written);
    if (rc == 1) {
      bytes.remove_prefix(written);
      continue;
    }
    const int error = SSL_get_error(ssl_->ssl, rc);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
      wait_for(error, options_.io_timeout, "write");
      continue;
    }
    if (error == SSL_ERROR_SYSCALL && (errno == EPIPE || errno == ECONNRESET))
      throw TransportError(TransportErrorKind::kClosed,
                           "connection to " + peer() + " closed by the server");
    throw TransportError(TransportErrorKind::kIo,
                         "write to " + peer() + " failed: " + openssl_errors());
  }
}

std::string_view TlsStream::protocol() const {
  return SSL_get_version(ssl_->ssl);
}

}  // namespace mailsync::net
