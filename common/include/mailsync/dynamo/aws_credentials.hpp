#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "mailsync/config/secret.hpp"

#include "mailsync/http/http_client.hpp"

// AWS credentials that are not long-lived keys in the environment: a role assumed with a web
// identity token (EKS IRSA: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE) or the container
// credentials endpoint (ECS, Fargate, EKS Pod Identity: AWS_CONTAINER_CREDENTIALS_FULL_URI or
// _RELATIVE_URI). Fetched when first needed, cached, refreshed 5 minutes before they expire.
namespace mailsync::dynamo {

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
  std::optional<std::chrono::system_clock::time_point> expiration;
};

// Pure parsers of the two answers: the credentials, or why not (one line, no secret in it).
std::variant<AwsCredentials, std::string> parse_sts_web_identity_response(long status,
                                                                          const std::string& body);
std::variant<AwsCredentials, std::string> parse_container_credentials_response(
    long status, const std::string& body);
// "2026-11-21T17:00:00Z" (fractions of a second allowed).
std::optional<std::chrono::system_clock::time_point> parse_aws_time(const std::string& text);

// Thread-safe: one source is shared by every DynamoDB client of a process.
class CredentialSource {
 public:
  virtual ~CredentialSource() = default;
  // Current credentials; throws DynamoError (kAuth when refused, kUnavailable when the endpoint
  // cannot be reached) — the gate is closed then.
  virtual AwsCredentials get() = 0;
  // "web identity role arn:aws:iam::1:role/x" — for messages, never a secret.
  virtual std::string describe() const = 0;
};

struct WebIdentitySettings {
  std::string role_arn;
  std::string token_file;
  std::string session_name = "mailsync";
  std::string sts_url;  // https://sts.<region>.amazonaws.com/ or AWS_ENDPOINT_URL_STS
};

struct ContainerSettings {
  std::string url;
  std::string authorization;       // AWS_CONTAINER_AUTHORIZATION_TOKEN
  std::string authorization_file;  // AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read on each fetch)
};

struct SourceOptions {
  http::HttpOptions http;
  std::function<std::chrono::system_clock::time_point()> now;  // default: system_clock::now
};

std::shared_ptr<CredentialSource> web_identity_source(WebIdentitySettings settings,
                                                      SourceOptions options = {});
std::shared_ptr<CredentialSource> container_source(ContainerSettings settings,
                                                   SourceOptions options = {});

// The AWS SDKs' default chain, read from the environment: keys (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), a web identity (AWS_ROLE_ARN +
// AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ENDPOINT_URL_STS) or the container endpoint. DynamoDB and
// Secrets Manager sign with the same chain. Problems are appended to `errors`, naming variables.
struct CredentialChain {
  std::string access_key_id;
  config::Secret secret_access_key;
  std::optional<config::Secret> session_token;
  std::shared_ptr<CredentialSource> source;  // temporary credentials; wins when set

  // SigV4 settings for `scope` ("aws:amz:REGION:SERVICE") with the current credentials; throws
  // DynamoError (kAuth, kUnavailable) when a source cannot give them.
  http::AwsSigV4 signing(const std::string& scope) const;
};
CredentialChain credential_chain_from_env(const std::string& region, const http::HttpOptions& http,
                                          std::vector<std::string>& errors);

}  // namespace mailsync::dynamo
