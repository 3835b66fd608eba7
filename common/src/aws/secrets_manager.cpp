#include "mailsync/aws/secrets_manager.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <set>
#include <thread>

#include "mailsync/cli.hpp"
#include "mailsync/config/config.hpp"
#include "mailsync/dynamo/dynamo_client.hpp"
#include "mailsync/util/random.hpp"

namespace mailsync::aws {

namespace {

using Kind = SecretsManagerError::Kind;
using nlohmann::json;

constexpr int kWriteRounds = 5;
constexpr const char* kPendingStage = "MAILSYNC_PENDING";

Kind kind_of(const std::string& type, long status) {
  if (type == "ResourceNotFoundException") return Kind::kNotFound;
  if (type == "ThrottlingException" || type == "RequestLimitExceeded" || status == 429 ||
      status >= 500 || type == "InternalServiceError")
    return Kind::kUnavailable;
  if (type == "AccessDeniedException" || type == "UnrecognizedClientException" ||
      type == "InvalidSignatureException" || type == "IncompleteSignature" ||
      type == "ExpiredTokenException" || type == "MissingAuthenticationTokenException" ||
      type == "DecryptionFailure" || status == 403)
    return Kind::kAuth;
  return Kind::kInvalid;
}

std::string short_type(const std::string& type) {
  const size_t hash = type.rfind('#');
  return hash == std::string::npos ? type : type.substr(hash + 1);
}

}  // namespace

SecretsManagerStore::SecretsManagerStore(SecretsManagerOptions options)
    : options_(std::move(options)) {
  url_ = options_.endpoint.empty() ? "https://secretsmanager." + options_.region + ".amazonaws.com/"
                                   : options_.endpoint;
  if (!options_.sleep)
    options_.sleep = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
}

std::string SecretsManagerStore::describe() const {
  return "AWS Secrets Manager (" + (options_.endpoint.empty() ? options_.region : url_) + ")";
}

json SecretsManagerStore::call(const std::string& operation, const json& request) {
  const std::string body = request.dump();
  const std::string secret = request.value("SecretId", "");
  const std::vector<std::string> headers = {"X-Amz-Target: secretsmanager." + operation};
  std::chrono::milliseconds backoff = options_.first_backoff;
  for (int attempt = 1;; ++attempt) {
    Kind kind = Kind::kUnavailable;
    std::string type, message;
    try {
      const http::AwsSigV4 signing =
          options_.credentials.signing("aws:amz:" + options_.region + ":secretsmanager");
      http::HttpClient client(options_.http);
      const http::HttpResponse response =
          client.post(url_, "application/x-amz-json-1.1", body, headers, &signing);
      json answer = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
      if (response.status == 200 && answer.is_object()) return answer;
      type = answer.is_object() ? short_type(answer.value("__type", "")) : "";
      const std::string words = dynamo::scrub_aws_message(
          answer.is_object() ? answer.value("Message", answer.value("message", "")) : "");
      kind = kind_of(type, response.status);
      message = fmt::format("Secrets Manager {} of secret {}: {}{}{}", operation, secret,
                            type.empty() ? fmt::format("HTTP {}", response.status) : type,
                            words.empty() ? "" : ": ", words);
    } catch (const http::HttpError& e) {
      message = fmt::format("Secrets Manager {} of secret {}: {}", operation, secret, e.what());
    } catch (const dynamo::DynamoError& e) {  // the credential source
      kind = e.kind() == dynamo::DynamoError::Kind::kAuth ? Kind::kAuth : Kind::kUnavailable;
      message = fmt::format("Secrets Manager {} of secret {}: credentials: {}", operation, secret,
                            e.what());
    }
    if (kind != Kind::kUnavailable || attempt >= options_.attempts)
      throw SecretsManagerError(kind, type, message);
    options_.sleep(backoff);
    backoff *= 2;
  }
}

SecretVersion SecretsManagerStore::fetch(const std::string& id) {
  const json answer = call("GetSecretValue", {{"SecretId", id}, {"VersionStage", "AWSCURRENT"}});
  if (!answer.contains("SecretString") || !answer["SecretString"].is_string())
    throw SecretsManagerError(Kind::kInvalid, "",
                              "secret " + id +
                                  " holds no SecretString (binary secrets are not read): store a "
                                  "JSON object of strings");
  SecretVersion version{answer.value("VersionId", ""),
                        json::parse(answer["SecretString"].get<std::string>(), nullptr,
                                    /*allow_exceptions=*/false)};
  if (!version.object.is_object())
    throw SecretsManagerError(Kind::kInvalid, "",
                              "secret " + id +
                                  " is not a JSON object ({\"KEY\": \"value\", ...}); its value "
                                  "is not shown");
  const std::lock_guard lock(mutex_);
  cache_[id] = version;
  return version;
}

std::map<std::string, std::string> SecretsManagerStore::flatten(const std::string& id,
                                                                const json& object) {
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : object.items()) {
    if (value.is_string())
      out[key] = value.get<std::string>();
    else if (value.is_number() || value.is_boolean())
      out[key] = value.dump();
    else if (!value.is_null())
      throw SecretsManagerError(Kind::kInvalid, "",
                                fmt::format("secret {}: key {} is not a string, number or boolean "
                                            "(the environment holds text); its value is not shown",
                                            id, key));
  }
  return out;
}

std::string SecretsManagerStore::read(const std::string& id, const std::string& key) {
  std::optional<SecretVersion> version;
  {
    const std::lock_guard lock(mutex_);
    if (const auto found = cache_.find(id); found != cache_.end()) version = found->second;
  }
  if (!version) version = fetch(id);
  const json& object = version->object;
  const auto found = object.find(key);
  if (found == object.end() || found->is_null())
    throw SecretsManagerError(Kind::kNotFound, "",
                              "secret " + id + " has no key " + key + " (it has " +
                                  std::to_string(object.size()) + " other keys)");
  json single = json::object();
  single[key] = *found;
  return flatten(id, single).at(key);
}

config::SecretWrite SecretsManagerStore::write(const std::string& id, const std::string& key,
                                               std::string_view value,
                                               std::optional<std::string_view> expected) {
  for (int round = 1; round <= kWriteRounds; ++round) {
    SecretVersion current = fetch(id);
    const auto held = current.object.find(key);
    if (held != current.object.end() && held->is_string()) {
      const std::string text = held->get<std::string>();
      if (text == value) return config::SecretWrite::kWritten;
      if (expected && text != *expected) return config::SecretWrite::kKeptOther;
    }
    current.object[key] = std::string(value);
    const json put = call("PutSecretValue", {{"SecretId", id},
                                             {"ClientRequestToken", util::random_hex(32)},
                                             {"SecretString", current.object.dump()},
                                             {"VersionStages", json::array({kPendingStage})}});
    const std::string version = put.value("VersionId", "");
    try {
      call("UpdateSecretVersionStage", {{"SecretId", id},
                                        {"VersionStage", "AWSCURRENT"},
                                        {"MoveToVersionId", version},
                                        {"RemoveFromVersionId", current.version_id}});
    } catch (const SecretsManagerError& e) {
      if (e.kind() != Kind::kInvalid) throw;
      // Another writer moved AWSCURRENT after we read it: read again and decide again.
      ++conflicts_;
      spdlog::debug("secrets manager: secret {}: AWSCURRENT moved while writing key {}; round {}",
                    id, key, round + 1);
      continue;
    }
    const std::lock_guard lock(mutex_);
    cache_[id] = SecretVersion{version, current.object};
    return config::SecretWrite::kWritten;
  }
  throw SecretsManagerError(Kind::kUnavailable, "",
                            fmt::format("secret {}: key {} not written: other writers moved "
                                        "AWSCURRENT {} times in a row",
                                        id, key, kWriteRounds));
}

std::shared_ptr<SecretsManagerStore> secrets_manager_from_env() {
  SecretsManagerOptions options;
  std::vector<std::string> errors;
  options.region = cli::env("AWS_REGION").value_or("");
  if (options.region.empty())
    errors.emplace_back("AWS_REGION is not set (needed for AWS Secrets Manager)");
  options.endpoint = cli::env("AWS_ENDPOINT_URL_SECRETSMANAGER").value_or("");
  if (!options.endpoint.empty() && !config::acceptable_token_url(options.endpoint))
    errors.push_back("AWS_ENDPOINT_URL_SECRETSMANAGER=" + options.endpoint +
                     " must be https:// (or http:// to a loopback host)");
  options.http.ca_file = cli::env("MAILSYNC_TLS_CA_FILE").value_or("");
  options.credentials = dynamo::credential_chain_from_env(options.region, options.http, errors);
  if (!errors.empty()) {
    std::string text = "AWS Secrets Manager cannot be used: ";
    for (size_t i = 0; i < errors.size(); ++i) text += (i ? "; " : "") + errors[i];
    throw std::runtime_error(text);
  }
  return std::make_shared<SecretsManagerStore>(std::move(options));
}

std::vector<std::string> merge_secrets_manager_environment() {
  const auto ids_text = cli::env("AWS_SECRETS_MANAGER_SECRET_IDS");
  if (!ids_text) return {};
  std::vector<std::string> ids;
  std::string current;
  for (const char c : *ids_text + ",") {
    if (c == ',' || c == ' ' || c == '\t' || c == '\n') {
      if (!current.empty()) ids.push_back(std::exchange(current, {}));
    } else {
      current += c;
    }
  }
  if (ids.empty()) return {"AWS_SECRETS_MANAGER_SECRET_IDS names no secret"};
  std::shared_ptr<SecretsManagerStore> store;
  try {
    store = secrets_manager_from_env();
  } catch (const std::exception& e) {
    return {std::string("AWS_SECRETS_MANAGER_SECRET_IDS: ") + e.what()};
  }
  std::vector<std::string> errors;
  std::map<std::string, cli::OverlayValue> overlay;
  for (const std::string& id : ids) {
    try {
      const SecretVersion version = store->fetch(id);
      for (auto& [key, value] : SecretsManagerStore::flatten(id, version.object)) {
        if (overlay.contains(key)) continue;  // the first secret listed wins
        overlay.emplace(key,
                        cli::OverlayValue{std::move(value), fmt::format("aws-sm:{}#{}", id, key)});
      }
    } catch (const std::exception& e) {
      errors.push_back(std::string("AWS_SECRETS_MANAGER_SECRET_IDS: ") + e.what());
    }
  }
  size_t explicit_count = 0;
  for (const auto& [key, value] : overlay)
    if (cli::env(key.c_str()) && !cli::env_origin(key.c_str())) ++explicit_count;
  spdlog::info(
      "config: {} keys from {} Secrets Manager secret(s); {} of them set explicitly in the "
      "environment, which wins",
      overlay.size(), ids.size(), explicit_count);
  cli::set_environment_overlay(std::move(overlay));
  config::install_secret_store(store);
  return errors;
}

}  // namespace mailsync::aws
