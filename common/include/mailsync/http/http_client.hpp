#pragma once

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace mailsync::http {

struct HttpOptions {
  std::string ca_file;  // extra CA bundle (MAILSYNC_TLS_CA_FILE); the system store is always used
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds total_timeout{30'000};
  // AWS-signed POSTs (DynamoDB, Secrets Manager) over mailsync's own HTTP/1.1 and SigV4 where
  // libcurl adds nothing (src/http/http1.hpp says when); false: always libcurl.
  bool own_http1 = true;
};

struct HttpResponse {
  long status = 0;
  std::string body;
  std::string redirect_url;  // Location of a 3xx (redirects are not followed)
};

// The request did not produce an HTTP response: DNS, connect, TLS, timeout. The message names the
// host, never the request body (which carries secrets). Network errors are retryable; TLS
// verification failures are not.
class HttpError : public std::runtime_error {
 public:
  HttpError(const std::string& message, bool retryable)
      : std::runtime_error(message), retryable_(retryable) {}
  bool retryable() const { return retryable_; }

 private:
  bool retryable_;
};

using FormFields = std::vector<std::pair<std::string, std::string>>;

// AWS Signature Version 4 for the DynamoDB and Secrets Manager clients: computed by
// http::sigv4_authorization on the own HTTP/1.1 path, by libcurl (CURLOPT_AWS_SIGV4) otherwise.
struct AwsSigV4 {
  std::string scope;  // "aws:amz:REGION:SERVICE"
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty unless temporary credentials
};

// application/x-www-form-urlencoded body (RFC 1866 8.2.1 / WHATWG): unreserved bytes as they are,
// everything else %XX.
std::string form_encode(const FormFields& fields);

// A libcurl easy handle with keep-alive (and, for AWS-signed POSTs, a keep-alive connection of its
// own: HttpOptions::own_http1); not thread-safe, use one per thread. Certificates and
// host names are verified; only http and https are allowed; redirects are not followed.
class HttpClient {
 public:
  explicit HttpClient(HttpOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  HttpResponse post_form(const std::string& url, const FormFields& fields);
  HttpResponse post(const std::string& url, const std::string& content_type,
                    const std::string& body, const std::vector<std::string>& headers = {},
                    const AwsSigV4* sigv4 = nullptr);
  HttpResponse get(const std::string& url, const std::vector<std::string>& headers = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mailsync::http
