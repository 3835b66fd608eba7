#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "mailsync/config/secret.hpp"
#include "mailsync/dynamo/aws_credentials.hpp"
#include "mailsync/http/http_client.hpp"

// AWS Secrets Manager over its JSON API (secretsmanager.*, SigV4 by libcurl, the credential chain
// DynamoDB uses): secrets that hold a JSON object of strings, the form the Lambda version kept its
// routes and tokens in. Errors name the secret and the key, never a value.
namespace mailsync::aws {

class SecretsManagerError : public std::runtime_error {
 public:
  enum class Kind {
    kNotFound,     // ResourceNotFoundException, or the key is not in the object
    kAuth,         // AccessDenied, UnrecognizedClient, InvalidSignature, ExpiredToken, Decryption
    kUnavailable,  // network, 5xx, throttling after the retries
    kInvalid,      // InvalidParameter, InvalidRequest, not a JSON object, ...
  };
  SecretsManagerError(Kind kind, std::string aws_type, const std::string& message)
      : std::runtime_error(message), kind_(kind), aws_type_(std::move(aws_type)) {}
  Kind kind() const { return kind_; }
  const std::string& aws_type() const { return aws_type_; }

 private:
  Kind kind_;
  std::string aws_type_;
};

struct SecretsManagerOptions {
  std::string region;
  // Empty: https://secretsmanager.<region>.amazonaws.com/; AWS_ENDPOINT_URL_SECRETSMANAGER.
  std::string endpoint;
  dynamo::CredentialChain credentials;
  http::HttpOptions http{.connect_timeout = std::chrono::seconds(3),
                         .total_timeout = std::chrono::seconds(10)};
  int attempts = 4;  // throttling, 5xx and network errors
  std::chrono::milliseconds first_backoff{100};
  std::function<void(std::chrono::milliseconds)> sleep;  // default: sleep_for
};

// The version AWSCURRENT points at, and its object.
struct SecretVersion {
  std::string version_id;
  nlohmann::json object;
};

// Thread-safe. read() fetches a secret once per process and keeps it; write() always works on the
// version current at that moment.
//
// Writes are a compare and swap on AWSCURRENT, because PutSecretValue itself has no condition:
// GetSecretValue (version V), PutSecretValue of the changed object with the label
// MAILSYNC_PENDING only (AWSCURRENT stays), then UpdateSecretVersionStage moving AWSCURRENT to it
// with RemoveFromVersionId V — which fails when another writer moved AWSCURRENT since V ("if the
// version ID does not match, then the operation fails": API_UpdateSecretVersionStage). Then the
// round starts again from the new current version, so another writer's change to another key is
// never lost, and with `expected` a key another process rotated first is kept (kKeptOther).
class SecretsManagerStore : public config::SecretStore {
 public:
  explicit SecretsManagerStore(SecretsManagerOptions options);

  std::string read(const std::string& id, const std::string& key) override;
  config::SecretWrite write(const std::string& id, const std::string& key, std::string_view value,
                            std::optional<std::string_view> expected) override;
  std::string describe() const override;

  // GetSecretValue of AWSCURRENT, its object checked (a JSON object); kept for read().
  SecretVersion fetch(const std::string& id);
  // The object's keys as environment text: strings as they are, numbers and booleans as JSON
  // text; anything else is an error naming the key.
  static std::map<std::string, std::string> flatten(const std::string& id,
                                                    const nlohmann::json& object);
  int conflicts() const { return conflicts_; }  // CAS rounds lost to another writer

  // Any operation; retries what is retryable, throws SecretsManagerError for the rest.
  nlohmann::json call(const std::string& operation, const nlohmann::json& request);

 private:
  SecretsManagerOptions options_;
  std::string url_;
  std::mutex mutex_;
  std::map<std::string, SecretVersion> cache_;
  std::atomic<int> conflicts_{0};
};

// From the environment: AWS_REGION, the credential chain, AWS_ENDPOINT_URL_SECRETSMANAGER,
// MAILSYNC_TLS_CA_FILE. Throws std::runtime_error listing what is missing.
std::shared_ptr<SecretsManagerStore> secrets_manager_from_env();

// AWS_SECRETS_MANAGER_SECRET_IDS (IDs or ARNs separated by commas or spaces): every key of every
// secret becomes an environment variable for cli::env unless the process environment sets it (an
// explicit variable wins; between secrets, the first listed wins, as os.environ.setdefault did in
// the Lambda version). A value merged this way remembers its origin, so a refresh token from there
// is written back there when it rotates. Installs the store it used as config::secret_store().
// Returns the problems, each naming the secret and key (empty when all is well or unset).
std::vector<std::string> merge_secrets_manager_environment();

}  // namespace mailsync::aws
