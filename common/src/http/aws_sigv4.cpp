#include "mailsync/http/aws_sigv4.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "mailsync/util/sha256.hpp"
#include "mailsync/util/strings.hpp"

namespace mailsync::http {

namespace {

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
           &length) == nullptr)
    throw std::runtime_error("HMAC-SHA256 failed");
  return {reinterpret_cast<const char*>(out), length};
}

// Canonical header value: surrounding spaces dropped, runs of spaces inside made one.
std::string trimmed(const std::string& value) {
  std::string out;
  for (const char c : value) {
    if (c == ' ' || c == '\t') {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace

std::string sigv4_authorization(const SigV4Request& request) {
  std::vector<std::pair<std::string, std::string>> headers;
  for (const auto& [name, value] : request.headers)
    headers.emplace_back(util::ascii_lower(name), trimmed(value));
  std::sort(headers.begin(), headers.end());
  std::string canonical_headers, signed_headers;
  for (const auto& [name, value] : headers) {
    canonical_headers.append(name).append(1, ':').append(value).append(1, '\n');
    if (!signed_headers.empty()) signed_headers += ';';
    signed_headers += name;
  }
  const std::string canonical_request = request.method + '\n' + request.path + '\n' +
                                        request.canonical_query + '\n' + canonical_headers + '\n' +
                                        signed_headers + '\n' + util::Sha256::hex_of(request.body);
  const std::string date = request.amz_date.substr(0, 8);
  const std::string scope = date + '/' + request.region + '/' + request.service + "/aws4_request";
  const std::string string_to_sign = "AWS4-HMAC-SHA256\n" + request.amz_date + '\n' + scope + '\n' +
                                     util::Sha256::hex_of(canonical_request);
  std::string key = hmac_sha256("AWS4" + request.secret_access_key, date);
  key = hmac_sha256(key, request.region);
  key = hmac_sha256(key, request.service);
  key = hmac_sha256(key, "aws4_request");
  return "AWS4-HMAC-SHA256 Credential=" + request.access_key_id + '/' + scope +
         ", SignedHeaders=" + signed_headers +
         ", Signature=" + util::to_hex(hmac_sha256(key, string_to_sign));
}

std::string amz_date_now() {
  return util::utc_text(std::chrono::system_clock::now(), "%Y%m%dT%H%M%SZ");
}

}  // namespace mailsync::http
