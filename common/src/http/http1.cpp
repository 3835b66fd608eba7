#include "http1.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>

#include "mailsync/util/strings.hpp"

namespace mailsync::http::detail {

namespace {

using Clock = std::chrono::steady_clock;

// Token endpoints, STS and DynamoDB answer in kilobytes (as in http_client.cpp).
constexpr size_t kMaxBody = 8 << 20;
constexpr size_t kMaxHead = 64 << 10;

bool proxy_configured(bool tls) {
  for (const char* name : {tls ? "https_proxy" : "http_proxy", tls ? "HTTPS_PROXY" : "http_proxy",
                           "all_proxy", "ALL_PROXY"}) {
    const char* value = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read, never set
    if (value != nullptr && *value != '\0') return true;
  }
  return false;
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" ||
         (net::is_ip_literal(host) && host.rfind("127.", 0) == 0);
}

std::chrono::milliseconds remaining(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return std::max(left, std::chrono::milliseconds(1));
}

// An answer that breaks HTTP/1.1's framing: the connection cannot be used again.
struct Malformed {
  std::string what;
};

}  // namespace

std::optional<Endpoint> direct_endpoint(const std::string& url) {
  Endpoint endpoint;
  std::string_view rest(url);
  if (rest.rfind("https://", 0) == 0) {
    endpoint.tls = true;
    rest.remove_prefix(8);
  } else if (rest.rfind("http://", 0) == 0) {
    rest.remove_prefix(7);
  } else {
    return std::nullopt;
  }
  if (rest.find_first_of("?#") != std::string_view::npos) return std::nullopt;
  const size_t slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  endpoint.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (authority.empty() || authority.find('@') != std::string_view::npos) return std::nullopt;
  std::string_view host = authority, port;
  if (authority.front() == '[') {  // [IPv6]:port
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return std::nullopt;
      port = authority.substr(close + 2);
    }
  } else if (const size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  const uint16_t default_port = endpoint.tls ? 443 : 80;
  endpoint.port = default_port;
  if (!port.empty()) {
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) {
          return std::isdigit(static_cast<unsigned char>(c));
        }))
      return std::nullopt;
    const long number = std::stol(std::string(port));
    if (number < 1 || number > 65535) return std::nullopt;
    endpoint.port = static_cast<uint16_t>(number);
  }
  endpoint.host = util::ascii_lower(host);
  if (endpoint.host.empty() || (!endpoint.tls && !is_loopback(endpoint.host)) ||
      proxy_configured(endpoint.tls))
    return std::nullopt;
  endpoint.host_header =
      std::string(authority.front() == '[' ? authority.substr(0, authority.find(']') + 1) : host);
  endpoint.host_header = util::ascii_lower(endpoint.host_header);
  if (endpoint.port != default_port) endpoint.host_header += ':' + std::to_string(endpoint.port);
  endpoint.origin = (endpoint.tls ? "https://" : "http://") + endpoint.host_header;
  return endpoint;
}

Http1Connection::Http1Connection(Endpoint endpoint, HttpOptions options)
    : endpoint_(std::move(endpoint)), options_(std::move(options)) {}

Http1Connection::~Http1Connection() = default;

void Http1Connection::connect(Clock::time_point deadline) {
  const auto timeout = std::min(options_.connect_timeout, remaining(deadline));
  buffer_.clear();
  if (endpoint_.tls) {
    stream_ = net::TlsStream::connect(endpoint_.host, endpoint_.port,
                                      {.ca_file = options_.ca_file,
                                       .connect_timeout = timeout,
                                       .io_timeout = remaining(deadline)});
  } else {
    stream_ = net::PlainStream::connect_loopback(endpoint_.host, endpoint_.port, timeout,
                                                 remaining(deadline));
  }
}

HttpResponse Http1Connection::exchange(const std::string& request) {
  const auto deadline = Clock::now() + options_.total_timeout;
  for (int attempt = 1;; ++attempt) {
    const bool reused = stream_ != nullptr;
    bool connected = reused;
    answered_ = 0;
    try {
      if (!reused) connect(deadline);
      connected = true;
      stream_->set_io_timeout(remaining(deadline));
      stream_->write_all(request);
      return read_response(deadline);
    } catch (const net::TransportError& e) {
      stream_.reset();
      const bool stale = reused && attempt == 1 && answered_ == 0 &&
                         (e.kind() == net::TransportErrorKind::kClosed ||
                          e.kind() == net::TransportErrorKind::kIo);
      buffer_.clear();
      if (stale) continue;
      const bool timed_out = connected && e.kind() == net::TransportErrorKind::kTimeout;
      throw HttpError("HTTP request to " + endpoint_.origin + " failed: " +
                          (timed_out ? "no answer within " +
                                           std::to_string(options_.total_timeout.count()) + " ms"
                                     : std::string(e.what())),
                      e.retryable());
    } catch (const Malformed& e) {
      stream_.reset();
      buffer_.clear();
      throw HttpError("HTTP response from " + endpoint_.origin + " " + e.what, false);
    }
  }
}

HttpResponse Http1Connection::read_response(Clock::time_point deadline) {
  char chunk[16 << 10];
  auto fill = [&] {  // at least one more byte into buffer_
    stream_->set_io_timeout(remaining(deadline));
    const size_t got = stream_->read_some(chunk, sizeof chunk);
    answered_ += got;
    buffer_.append(chunk, got);
  };
  for (;;) {  // 1xx answers are skipped
    size_t head_end;
    while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (buffer_.size() > kMaxHead) throw Malformed{"has a head over 64 KiB; refused"};
      fill();
    }
    const std::string_view head(buffer_.data(), head_end);
    if (head.rfind("HTTP/1.", 0) != 0 || head.size() < 12 || head[8] != ' ' ||
        !std::isdigit(static_cast<unsigned char>(head[9])))
      throw Malformed{"is not HTTP/1.x: " + util::safe_text(head.substr(0, 40))};
    HttpResponse response;
    response.status = std::strtol(std::string(head.substr(9, 3)).c_str(), nullptr, 10);
    bool close = head[7] == '0', chunked = false;
    std::optional<size_t> length;
    size_t line_start = head.find("\r\n");
    while (line_start != std::string_view::npos && line_start < head.size()) {
      line_start += 2;
      const size_t line_end = std::min(head.find("\r\n", line_start), head.size());
      const std::string_view line = head.substr(line_start, line_end - line_start);
      line_start = line_end;
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      const std::string name = util::ascii_lower(util::trim(line.substr(0, colon)));
      const std::string value = util::ascii_lower(util::trim(line.substr(colon + 1)));
      if (name == "content-length") {
        char* end = nullptr;
        const unsigned long long number = std::strtoull(value.c_str(), &end, 10);
        if (value.empty() || *end != '\0') throw Malformed{"has a bad Content-Length"};
        if (number > kMaxBody)
          throw Malformed{"is larger than " + std::to_string(kMaxBody >> 20) + " MiB; refused"};
        length = static_cast<size_t>(number);
      } else if (name == "transfer-encoding") {
        chunked = value.find("chunked") != std::string::npos;
      } else if (name == "connection") {
        close = value.find("close") != std::string::npos ||
                (head[7] == '0' && value.find("keep-alive") == std::string::npos);
      } else if (name == "location") {
        response.redirect_url = std::string(util::trim(line.substr(colon + 1)));
      }
    }
    buffer_.erase(0, head_end + 4);
    if (response.status >= 100 && response.status < 200) continue;
    const bool no_body = response.status == 204 || response.status == 304;
    if (no_body) {
    } else if (chunked) {
      for (;;) {
        size_t line_end;
        while ((line_end = buffer_.find("\r\n")) == std::string::npos) {
          if (buffer_.size() > 1024) throw Malformed{"has a bad chunk size line"};
          fill();
        }
        char* end = nullptr;
        const unsigned long size = std::strtoul(buffer_.c_str(), &end, 16);
        if (end == buffer_.c_str()) throw Malformed{"has a bad chunk size line"};
        if (response.body.size() + size > kMaxBody)
          throw Malformed{"is larger than " + std::to_string(kMaxBody >> 20) + " MiB; refused"};
        buffer_.erase(0, line_end + 2);
        if (size == 0) {  // trailers, then an empty line
          size_t trailer_end;
          while ((trailer_end = buffer_.find("\r\n")) != 0) {
            if (trailer_end == std::string::npos) {
              if (buffer_.size() > kMaxHead) throw Malformed{"has trailers over 64 KiB"};
              fill();
            } else {
              buffer_.erase(0, trailer_end + 2);
            }
          }
          buffer_.erase(0, 2);
          break;
        }
        while (buffer_.size() < size + 2) fill();
        response.body.append(buffer_, 0, size);
        buffer_.erase(0, size + 2);
      }
    } else if (length) {
      while (buffer_.size() < *length) fill();
      response.body.assign(buffer_, 0, *length);
      buffer_.erase(0, *length);
    } else {  // the body runs to the end of the connection
      try {
        for (;;) {
          if (buffer_.size() > kMaxBody)
            throw Malformed{"is larger than " + std::to_string(kMaxBody >> 20) + " MiB; refused"};
          fill();
        }
      } catch (const net::TransportError& e) {
        if (e.kind() != net::TransportErrorKind::kClosed) throw;
      }
      response.body = std::move(buffer_);
      buffer_.clear();
      close = true;
    }
    // Nothing is pipelined: bytes beyond the answer mean the framing is not what it says.
    if (close || !buffer_.empty()) {
      stream_.reset();
      buffer_.clear();
    }
    return response;
  }
}

}  // namespace mailsync::http::detail
