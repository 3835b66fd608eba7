// A userspace WAN delay for the benchmarks (this machine has no netem): TCP on 127.0.0.1, each
// byte read on one side is written to the other side ONE_WAY_MS later, in both directions, so a
// request and its answer cross 2 x ONE_WAY_MS like a network path of that round-trip time.
// Bandwidth is not limited and nothing is reordered or lost; pipelined traffic keeps flowing
// (every chunk carries its own due time), which is what separates a pipelined client from one
// that waits for each answer.
//
//   delay_proxy LISTEN_PORT:TARGET_PORT:ONE_WAY_MS [...]      e.g. 40001:993:25 40002:5432:0.5
//
// Prints "ready" once every listener is up. One thread, epoll, nanosecond timeouts
// (epoll_pwait2): it costs little CPU beside the servers it delays. At most 16 MiB waits per
// direction; beyond that the proxy stops reading that side (TCP flow control does the rest).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kReadSize = 256 << 10;
constexpr size_t kMaxQueued = 16 << 20;

struct Chunk {
  Clock::time_point due;
  std::string bytes;
  size_t written = 0;
};

struct Direction {
  int from = -1, to = -1;
  std::deque<Chunk> queue;
  size_t queued = 0;
  bool eof = false;      // `from` said it has no more to send
  bool shut_to = false;  // and `to` was told so, after the queue drained
};

struct Connection {
  Clock::duration delay;
  Direction up, down;  // client -> server, server -> client
  bool broken = false;
};

struct Listener {
  int fd;
  uint16_t target;
  Clock::duration delay;
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "delay_proxy: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

void nonblocking(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

void no_delay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

sockaddr_in loopback(uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  return address;
}

class Proxy {
 public:
  Proxy() : epoll_(::epoll_create1(0)) {
    if (epoll_ < 0) die("epoll_create1");
  }

  void listen(uint16_t port, uint16_t target, Clock::duration delay) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address = loopback(port);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(fd, 128) != 0)
      die("listen on 127.0.0.1:" + std::to_string(port));
    listeners_[fd] = Listener{fd, target, delay};
    watch(fd, EPOLLIN);
  }

  [[noreturn]] void run() {
    std::vector<epoll_event> events(256);
    for (;;) {
      const auto wake = next_due();
      timespec timeout{};
      timespec* wait = nullptr;
      if (wake) {
        const auto left = std::max(Clock::duration::zero(), *wake - Clock::now());
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
        timeout.tv_sec = ns / 1000000000;
        timeout.tv_nsec = ns % 1000000000;
        wait = &timeout;
      }
      const int n =
          ::epoll_pwait2(epoll_, events.data(), static_cast<int>(events.size()), wait, nullptr);
      if (n < 0 && errno != EINTR) die("epoll_pwait2");
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (listeners_.contains(fd)) {
          accept_from(listeners_[fd]);
          continue;
        }
        const auto owner = owners_.find(fd);
        if (owner == owners_.end()) continue;
        Connection& c = *owner->second;
        if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
          read_into(c, fd == c.up.from ? c.up : c.down);
        }
      }
      flush_all();
    }
  }

 private:
  void watch(int fd, uint32_t events) {
    epoll_event event{};
    event.events = events;
    event.data.fd = fd;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event) != 0) die("epoll_ctl add");
    interest_[fd] = events;
  }

  void set_interest(int fd, uint32_t events) {
    if (interest_[fd] == events) return;
    epoll_event event{};
    event.events = events;
    event.data.fd = fd;
    ::epoll_ctl(epoll_, EPOLL_CTL_MOD, fd, &event);
    interest_[fd] = events;
  }

  void accept_from(const Listener& listener) {
    for (;;) {
      const int client = ::accept4(listener.fd, nullptr, nullptr, SOCK_NONBLOCK);
      if (client < 0) return;
      const int server = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in target = loopback(listener.target);
      // Loopback: a blocking connect returns at once; the delay applies to the bytes.
      if (::connect(server, reinterpret_cast<sockaddr*>(&target), sizeof target) != 0) {
        std::fprintf(stderr, "delay_proxy: connect to 127.0.0.1:%u: %s\n", listener.target,
                     std::strerror(errno));
        ::close(client);
        ::close(server);
        continue;
      }
      nonblocking(server);
      no_delay(client);
      no_delay(server);
      auto c = std::make_shared<Connection>();
      c->delay = listener.delay;
      c->up.from = c->down.to = client;
      c->up.to = c->down.from = server;
      owners_[client] = c;
      owners_[server] = c;
      connections_.push_back(c);
      watch(client, EPOLLIN);
      watch(server, EPOLLIN);
    }
  }

  void read_into(Connection& c, Direction& d) {
    if (d.eof || c.broken) return;
    static char buffer[kReadSize];
    while (d.queued < kMaxQueued) {
      const ssize_t got = ::read(d.from, buffer, sizeof buffer);
      if (got > 0) {
        d.queued += static_cast<size_t>(got);
        d.queue.push_back(
            Chunk{Clock::now() + c.delay, std::string(buffer, static_cast<size_t>(got))});
        continue;
      }
      if (got == 0)
        d.eof = true;
      else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        c.broken = true;
      return;
    }
  }

  // Writes what is due; returns whether `d.to` must wait for POLLOUT.
  bool flush(Connection& c, Direction& d, Clock::time_point now) {
    while (!d.queue.empty() && d.queue.front().due <= now && !c.broken) {
      Chunk& chunk = d.queue.front();
      const ssize_t put = ::send(d.to, chunk.bytes.data() + chunk.written,
                                 chunk.bytes.size() - chunk.written, MSG_NOSIGNAL);
      if (put < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
        c.broken = true;
        return false;
      }
      chunk.written += static_cast<size_t>(put);
      if (chunk.written < chunk.bytes.size()) return true;
      d.queued -= chunk.bytes.size();
      d.queue.pop_front();
    }
    if (d.eof && d.queue.empty() && !d.shut_to) {
      ::shutdown(d.to, SHUT_WR);
      d.shut_to = true;
    }
    return false;
  }

  void flush_all() {
    const auto now = Clock::now();
    for (size_t i = 0; i < connections_.size();) {
      Connection& c = *connections_[i];
      const bool up_blocked = flush(c, c.up, now);
      const bool down_blocked = flush(c, c.down, now);
      if (c.broken || (c.up.shut_to && c.down.shut_to)) {
        close(c);
        connections_[i] = connections_.back();
        connections_.pop_back();
        continue;
      }
      const int client = c.up.from, server = c.up.to;
      set_interest(client, (c.up.eof || c.up.queued >= kMaxQueued ? 0u : EPOLLIN) |
                               (down_blocked ? EPOLLOUT : 0u));
      set_interest(server, (c.down.eof || c.down.queued >= kMaxQueued ? 0u : EPOLLIN) |
                               (up_blocked ? EPOLLOUT : 0u));
      ++i;
    }
  }

  void close(Connection& c) {
    for (const int fd : {c.up.from, c.up.to}) {
      ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
      interest_.erase(fd);
      ::close(fd);
    }
    const int client = c.up.from, server = c.up.to;
    owners_.erase(client);  // may free c
    owners_.erase(server);
  }

  std::optional<Clock::time_point> next_due() const {
    std::optional<Clock::time_point> earliest;
    for (const auto& c : connections_)
      for (const Direction* d : {&c->up, &c->down})
        if (!d->queue.empty() && (!earliest || d->queue.front().due < *earliest))
          earliest = d->queue.front().due;
    return earliest;
  }

  int epoll_;
  std::map<int, Listener> listeners_;
  std::map<int, std::shared_ptr<Connection>> owners_;
  std::map<int, uint32_t> interest_;
  std::vector<std::shared_ptr<Connection>> connections_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: delay_proxy LISTEN_PORT:TARGET_PORT:ONE_WAY_MS [...]\n");
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  Proxy proxy;
  for (int i = 1; i < argc; ++i) {
    unsigned listen_port = 0, target_port = 0;
    double one_way_ms = 0;
    if (std::sscanf(argv[i], "%u:%u:%lf", &listen_port, &target_port, &one_way_ms) != 3 ||
        listen_port == 0 || listen_port > 65535 || target_port == 0 || target_port > 65535 ||
        one_way_ms < 0) {
      std::fprintf(stderr, "delay_proxy: bad mapping '%s' (LISTEN_PORT:TARGET_PORT:ONE_WAY_MS)\n",
                   argv[i]);
      return 2;
    }
    proxy.listen(static_cast<uint16_t>(listen_port), static_cast<uint16_t>(target_port),
                 std::chrono::duration_cast<Clock::duration>(
                     std::chrono::duration<double, std::milli>(one_way_ms)));
  }
  std::printf("ready\n");
  std::fflush(stdout);
  proxy.run();
}
