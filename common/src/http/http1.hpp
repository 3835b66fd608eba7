#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "mailsync/http/http_client.hpp"
#include "mailsync/net/tls_stream.hpp"

// HTTP/1.1 of our own for the AWS JSON APIs (DynamoDB, Secrets Manager): one keep-alive connection,
// the request written with one send, the answer read into one buffer. The mirror sends one
// conditional PutItem per copied message; through libcurl's easy interface each cost ~120 µs of
// CPU (perf, bench/sync: 40 % of mailsync's CPU), most of it libcurl's own polling and header
// handling. Used only where libcurl adds nothing: no proxy variable set, https (verified by
// net::TlsStream with the shared trust store) or http to a loopback address.
namespace mailsync::http::detail {

struct Endpoint {
  bool tls = false;
  std::string host;
  uint16_t port = 0;
  std::string path;         // "/" when the URL has none
  std::string host_header;  // "host" or "host:port" when the port is not the scheme's
  std::string origin;       // "https://host:port", what an error names
};

// The endpoint when this client can take the URL, nullopt when libcurl should: another scheme,
// user info, a query or fragment, plain http to a host that is not loopback, or a proxy variable
// (http_proxy, https_proxy, HTTPS_PROXY, all_proxy, ALL_PROXY) set.
std::optional<Endpoint> direct_endpoint(const std::string& url);

class Http1Connection {
 public:
  Http1Connection(Endpoint endpoint, HttpOptions options);
  ~Http1Connection();

  // Sends `request` (head and body, complete) and reads the answer, within the total timeout.
  // A reused connection the server closed meanwhile is opened again and the request sent once
  // more, as libcurl does, when nothing of an answer had arrived. Throws HttpError.
  HttpResponse exchange(const std::string& request);

  const Endpoint& endpoint() const { return endpoint_; }

 private:
  HttpResponse read_response(std::chrono::steady_clock::time_point deadline);
  void connect(std::chrono::steady_clock::time_point deadline);

  Endpoint endpoint_;
  HttpOptions options_;
  std::unique_ptr<net::Stream> stream_;
  std::string buffer_;   // bytes read and not yet consumed
  size_t answered_ = 0;  // bytes of the current answer read: none means it may be sent again
};

}  // namespace mailsync::http::detail
