#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "mailsync/config/secret.hpp"
#include "mailsync/dynamo/aws_credentials.hpp"
#include "mailsync/http/http_client.hpp"

// A small DynamoDB client over its JSON API (DynamoDB_20120810), signed with SigV4 by libcurl.
// Not thread-safe: one per thread.
namespace mailsync::dynamo {

struct DynamoOptions {
  std::string region;
  std::string table;
  std::string
      endpoint;  // empty: https://dynamodb.<region>.amazonaws.com; DYNAMODB_ENDPOINT for local use
  // Long-lived keys (AWS_ACCESS_KEY_ID ...), or a source of temporary ones (web identity, container
  // credentials) in `credentials`, which wins when set.
  std::string access_key_id;
  config::Secret secret_access_key;
  std::optional<config::Secret> session_token;
  std::shared_ptr<CredentialSource> credentials;
  http::HttpOptions http{.connect_timeout = std::chrono::seconds(3),
                         .total_timeout = std::chrono::seconds(10)};
  int attempts = 4;  // throttling, 5xx and network errors
  std::chrono::milliseconds first_backoff{100};
  std::function<void(std::chrono::milliseconds)> sleep;  // default: sleep_for
};

// AWS's own words made safe to store and show (last_error, `mailsync status`, /readyz): the first
// paragraph only — a signature mismatch goes on with the canonical request, whose headers hold
// the session token — at most 300 characters, through util::safe_text.
std::string scrub_aws_message(std::string_view message);

class DynamoError : public std::runtime_error {
 public:
  enum class Kind {
    kUnavailable,      // network, 5xx: the gate is closed
    kThrottled,        // ProvisionedThroughputExceeded, Throttling, RequestLimitExceeded
    kAuth,             // UnrecognizedClient, AccessDenied, InvalidSignature, ExpiredToken,
                       // MissingAuthenticationToken
    kNotFound,         // ResourceNotFound: no such table
    kConditionFailed,  // ConditionalCheckFailed
    kInvalid,          // ValidationException and any other 4xx
  };
  DynamoError(Kind kind, std::string aws_type, const std::string& message)
      : std::runtime_error(message), kind_(kind), aws_type_(std::move(aws_type)) {}
  Kind kind() const { return kind_; }
  const std::string& aws_type() const { return aws_type_; }

 private:
  Kind kind_;
  std::string aws_type_;
};

// {"S": "..."} / {"N": "..."}: DynamoDB's attribute values.
// NOLINTBEGIN(readability-identifier-naming): named after DynamoDB's own type letters
inline nlohmann::json S(const std::string& value) {
  return {{"S", value}};
}
inline nlohmann::json N(int64_t value) {
  return {{"N", std::to_string(value)}};
}
// NOLINTEND(readability-identifier-naming)

class DynamoClient {
 public:
  explicit DynamoClient(DynamoOptions options);  // throws std::invalid_argument on missing settings
  ~DynamoClient();

  const std::string& table() const { return options_.table; }
  const DynamoOptions& options() const { return options_; }

  // Any operation: the request's TableName is filled in when absent. Retries what is retryable,
  // throws DynamoError for the rest.
  nlohmann::json call(const std::string& operation, nlohmann::json request);

  // The gate: DescribeTable, and the table must be ACTIVE. Throws DynamoError.
  void check_table();

  // PutItem with attribute_not_exists(SK): false when the item already existed.
  bool put_if_absent(const nlohmann::json& item);
  void put(const nlohmann::json& item);
  std::optional<nlohmann::json> get(const std::string& pk, const std::string& sk);
  // PutItem only if `condition` holds for the item there (ExpressionAttributeValues `values`);
  // false when it did not.
  bool put_if(const nlohmann::json& item, const std::string& condition,
              const nlohmann::json& values);
  // DeleteItem of a UID# item only while its status is PENDING and its claimed_by begins with
  // `claimed_by_prefix`; false when it was not.
  bool remove_pending(const std::string& pk, const std::string& sk,
                      const std::string& claimed_by_prefix);
  // Query PK = pk AND begins_with(SK, sk_prefix), all pages.
  std::vector<nlohmann::json> query(const std::string& pk, const std::string& sk_prefix);
  // BatchWriteItem of puts, kBatchWriteItems at a time, unprocessed items retried.
  void batch_put(const std::vector<nlohmann::json>& items);
  static constexpr size_t kBatchWriteItems = 25;  // DynamoDB's limit for one BatchWriteItem

  // CreateTable (PK, SK strings, on demand) and UpdateTimeToLive on `ttl`. Returns what happened
  // to TTL: "enabled", or why not (dynalite has no UpdateTimeToLive).
  std::string create_table();

 private:
  DynamoOptions options_;
  std::string url_;
  std::unique_ptr<http::HttpClient> http_;
};

// The options from the environment's settings (AWS_REGION, DYNAMODB_TABLE, DYNAMODB_ENDPOINT,
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN); errors name what is missing.
struct DynamoSettings {
  std::optional<DynamoOptions> options;
  std::vector<std::string> errors;
};
DynamoSettings dynamo_options_from_env(const std::string& ca_file);

}  // namespace mailsync::dynamo
