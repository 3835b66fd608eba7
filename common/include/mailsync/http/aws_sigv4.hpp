#pragma once

#include <string>
#include <utility>
#include <vector>

// AWS Signature Version 4
// (docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html), for the
// requests http::HttpClient sends without libcurl (DynamoDB, Secrets Manager).
namespace mailsync::http {

struct SigV4Request {
  std::string method;           // "POST"
  std::string path;             // "/", already URI-encoded
  std::string canonical_query;  // "" or "Action=ListUsers&Version=2010-05-08", already canonical
  // Every header to sign, the host among them: names in any case, values as sent.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string amz_date;  // "20150830T123600Z", the X-Amz-Date header's value
  std::string region;
  std::string service;
  std::string access_key_id;
  std::string secret_access_key;
};

// The Authorization header's value: "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
// Signature=...".
std::string sigv4_authorization(const SigV4Request& request);

// Now, in SigV4's form ("20150830T123600Z", UTC).
std::string amz_date_now();

}  // namespace mailsync::http
