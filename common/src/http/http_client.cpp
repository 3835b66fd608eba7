#include "mailsync/http/http_client.hpp"

#include <curl/curl.h>
#include <openssl/ssl.h>

#include <cstring>
#include <mutex>

#include "http1.hpp"
#include "mailsync/http/aws_sigv4.hpp"
#include "mailsync/net/tls_stream.hpp"
#include "mailsync/net/trust_store.hpp"
#include "mailsync/util/strings.hpp"

namespace mailsync::http {

namespace {

void global_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// Token endpoints, STS and DynamoDB answer in kilobytes; a body past this is refused, never held.
constexpr size_t kMaxBody = 8 << 20;

size_t collect_body(char* data, size_t size, size_t count, void* user) {
  auto* body = static_cast<std::string*>(user);
  if (body->size() + size * count > kMaxBody) return 0;  // libcurl: CURLE_WRITE_ERROR
  body->append(data, size * count);
  return size * count;
}

// "https://host:port/path?query" -> "https://host:port": what an error may name.
std::string origin_of(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return "(invalid URL)";
  const size_t path = url.find_first_of("/?#", scheme + 3);
  std::string origin = url.substr(0, path);
  if (const size_t at = origin.find('@', scheme + 3); at != std::string::npos)
    origin.erase(scheme + 3, at + 1 - (scheme + 3));  // drop user:password@
  return origin;
}

bool is_retryable(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;  // certificate problems, bad URL, unsupported protocol: retrying cannot help
  }
}

// Whether libcurl does TLS with OpenSSL (the libssl this process links), so that its contexts can
// be handed the process's shared trust store instead of parsing the CA bundle per connection.
bool curl_uses_openssl() {
  static const bool openssl = [] {
    const curl_version_info_data* info = curl_version_info(CURLVERSION_NOW);
    return info != nullptr && info->ssl_version != nullptr &&
           std::strncmp(info->ssl_version, "OpenSSL/", 8) == 0;
  }();
  return openssl;
}

}  // namespace

std::string form_encode(const FormFields& fields) {
  std::string out;
  for (const auto& [name, value] : fields) {
    if (!out.empty()) out += '&';
    out += util::percent_encode(name);
    out += '=';
    out += util::percent_encode(value);
  }
  return out;
}

struct HttpClient::Impl {
  HttpOptions options;
  CURL* handle = nullptr;
  char error_buffer[CURL_ERROR_SIZE] = {};
  std::string trust_error;  // why the trust store could not be installed, for the error
  std::unique_ptr<detail::Http1Connection> own;  // AWS-signed POSTs (options.own_http1)
  std::string own_url;                           // the URL `own` was opened for

  // The request for the own HTTP/1.1 path, signed with SigV4 as libcurl signs it: every header
  // sent but User-Agent and Content-Length (tests/unit/http_own_test.cpp compares the two).
  HttpResponse post_own(const std::string& url, const detail::Endpoint& endpoint,
                        const std::string& content_type, const std::string& body,
                        const std::vector<std::string>& headers, const AwsSigV4& sigv4) {
    if (!own || own_url != url) {
      own = std::make_unique<detail::Http1Connection>(endpoint, options);
      own_url = url;
    }
    // scope "aws:amz:REGION:SERVICE"
    const size_t service_at = sigv4.scope.rfind(':');
    const size_t region_at = sigv4.scope.rfind(':', service_at - 1);
    SigV4Request signing{.method = "POST",
                         .path = endpoint.path,
                         .headers = {{"Host", endpoint.host_header},
                                     {"Content-Type", content_type},
                                     {"Accept", "application/json"}},
                         .body = body,
                         .amz_date = amz_date_now(),
                         .region = sigv4.scope.substr(region_at + 1, service_at - region_at - 1),
                         .service = sigv4.scope.substr(service_at + 1),
                         .access_key_id = sigv4.access_key_id,
                         .secret_access_key = sigv4.secret_access_key};
    for (const auto& header : headers) {
      const size_t colon = header.find(':');
      if (colon != std::string::npos)
        signing.headers.emplace_back(header.substr(0, colon),
                                     std::string(util::trim(header.substr(colon + 1))));
    }
    signing.headers.emplace_back("X-Amz-Date", signing.amz_date);
    if (!sigv4.session_token.empty())
      signing.headers.emplace_back("X-Amz-Security-Token", sigv4.session_token);
    std::string request = "POST " + endpoint.path + " HTTP/1.1\r\nUser-Agent: mailsync\r\n";
    for (const auto& [name, value] : signing.headers) {
      // A line break in a header (a session token from a broken credentials source) would start
      // a header of its own; libcurl refuses it too. The message names the header, not the value.
      if ((name + value).find_first_of("\r\n") != std::string::npos)
        throw HttpError("HTTP request to " + endpoint.origin + " not sent: its " + name +
                            " header holds a line break",
                        false);
      request.append(name).append(": ").append(value).append("\r\n");
    }
    request += "Authorization: " + sigv4_authorization(signing) +
               "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    request += body;
    return own->exchange(request);
  }

  // CURLOPT_SSL_CTX_FUNCTION: libcurl's context gets the shared store (net::shared_trust_store).
  static CURLcode install_trust_store(CURL*, void* ssl_context, void* user) {
    auto* self = static_cast<Impl*>(user);
    try {
      SSL_CTX_set_cert_store(static_cast<SSL_CTX*>(ssl_context),
                             net::shared_trust_store(self->options.ca_file));
      return CURLE_OK;
    } catch (const net::TransportError& e) {
      self->trust_error = e.what();
      return CURLE_SSL_CACERT_BADFILE;
    }
  }

  HttpResponse perform(const std::string& url, curl_slist* headers) {
    HttpResponse response;
    error_buffer[0] = '\0';
    trust_error.clear();
    curl_easy_setopt(handle, CURLOPT_URL, url.c_str());
    curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(handle, CURLOPT_WRITEDATA, &response.body);
    const CURLcode code = curl_easy_perform(handle);
    curl_easy_setopt(handle, CURLOPT_HTTPHEADER, nullptr);
    if (code == CURLE_WRITE_ERROR && response.body.size() + CURL_MAX_WRITE_SIZE > kMaxBody)
      throw HttpError("HTTP response from " + origin_of(url) + " is larger than " +
                          std::to_string(kMaxBody >> 20) + " MiB; refused",
                      false);
    if (code != CURLE_OK) {
      const std::string detail = !trust_error.empty()      ? trust_error
                                 : error_buffer[0] != '\0' ? error_buffer
                                                           : curl_easy_strerror(code);
      throw HttpError("HTTP request to " + origin_of(url) + " failed: " + detail,
                      is_retryable(code));
    }
    curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &response.status);
    char* location = nullptr;
    if (curl_easy_getinfo(handle, CURLINFO_REDIRECT_URL, &location) == CURLE_OK &&
        location != nullptr)
      response.redirect_url = location;
    return response;
  }
};

HttpClient::HttpClient(HttpOptions options) : impl_(std::make_unique<Impl>()) {
  global_init_once();
  impl_->options = std::move(options);
  impl_->handle = curl_easy_init();
  if (impl_->handle == nullptr) throw HttpError("libcurl: curl_easy_init failed", false);
  CURL* h = impl_->handle;
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, impl_->error_buffer);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM for DNS timeouts
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  if (curl_uses_openssl()) {
    // No bundle of libcurl's own (it would parse it per connection: with a CA path set, 7.88 does
    // not cache it); the process's shared store, system certificates and CA file, instead.
    curl_easy_setopt(h, CURLOPT_CAINFO, nullptr);
    curl_easy_setopt(h, CURLOPT_CAPATH, nullptr);
    curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, &Impl::install_trust_store);
    curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, impl_.get());
  } else if (!impl_->options.ca_file.empty()) {
    // CURLOPT_CAINFO replaces the default bundle; keep the system store through CAPATH.
    curl_easy_setopt(h, CURLOPT_CAINFO, impl_->options.ca_file.c_str());
    curl_easy_setopt(h, CURLOPT_CAPATH, "/etc/ssl/certs");
  }
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(impl_->options.connect_timeout.count()));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(impl_->options.total_timeout.count()));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &collect_body);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "mailsync");
}

HttpClient::~HttpClient() {
  if (impl_ && impl_->handle != nullptr) curl_easy_cleanup(impl_->handle);
}

HttpResponse HttpClient::post(const std::string& url, const std::string& content_type,
                              const std::string& body, const std::vector<std::string>& headers,
                              const AwsSigV4* sigv4) {
  if (sigv4 != nullptr && impl_->options.own_http1) {
    if (const auto endpoint = detail::direct_endpoint(url))
      return impl_->post_own(url, *endpoint, content_type, body, headers, *sigv4);
  }
  struct HeaderList {
    curl_slist* list = nullptr;
    ~HeaderList() { curl_slist_free_all(list); }
  } header_list;
  header_list.list = curl_slist_append(header_list.list, ("Content-Type: " + content_type).c_str());
  header_list.list = curl_slist_append(header_list.list, "Accept: application/json");
  for (const auto& header : headers)
    header_list.list = curl_slist_append(header_list.list, header.c_str());
  CURL* h = impl_->handle;
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  // Not copied by libcurl: `body` outlives perform(); GET switches the method back.
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
  std::string credentials;
  if (sigv4 != nullptr) {
    if (!sigv4->session_token.empty())
      header_list.list = curl_slist_append(
          header_list.list, ("X-Amz-Security-Token: " + sigv4->session_token).c_str());
    credentials = sigv4->access_key_id + ":" + sigv4->secret_access_key;
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4->scope.c_str());
    curl_easy_setopt(h, CURLOPT_USERPWD, credentials.c_str());
  }
  struct ResetSigning {
    CURL* handle;
    bool active;
    ~ResetSigning() {
      if (!active) return;
      curl_easy_setopt(handle, CURLOPT_AWS_SIGV4, nullptr);
      curl_easy_setopt(handle, CURLOPT_USERPWD, nullptr);
    }
  } reset{h, sigv4 != nullptr};
  return impl_->perform(url, header_list.list);
}

HttpResponse HttpClient::post_form(const std::string& url, const FormFields& fields) {
  return post(url, "application/x-www-form-urlencoded", form_encode(fields));
}

HttpResponse HttpClient::get(const std::string& url, const std::vector<std::string>& headers) {
  struct HeaderList {
    curl_slist* list = nullptr;
    ~HeaderList() { curl_slist_free_all(list); }
  } header_list;
  for (const auto& header : headers)
    header_list.list = curl_slist_append(header_list.list, header.c_str());
  curl_easy_setopt(impl_->handle, CURLOPT_HTTPGET, 1L);
  return impl_->perform(url, header_list.list);
}

}  // namespace mailsync::http
