#include "mailsync/dynamo/dynamo_client.hpp"

#include "mailsync/util/strings.hpp"

#include <fmt/format.h>

#include <thread>

#include "mailsync/cli.hpp"
#include "mailsync/config/config.hpp"

namespace mailsync::dynamo {

namespace {

using Kind = DynamoError::Kind;
using nlohmann::json;

// "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException" -> the part after '#'.
std::string short_type(const std::string& type) {
  const size_t hash = type.rfind('#');
  return hash == std::string::npos ? type : type.substr(hash + 1);
}

Kind kind_of(const std::string& type, long status) {
  if (type == "ConditionalCheckFailedException") return Kind::kConditionFailed;
  if (type == "ResourceNotFoundException") return Kind::kNotFound;
  if (type == "ProvisionedThroughputExceededException" || type == "ThrottlingException" ||
      type == "RequestLimitExceeded" || status == 429)
    return Kind::kThrottled;
  if (type == "UnrecognizedClientException" || type == "AccessDeniedException" ||
      type == "InvalidSignatureException" || type == "ExpiredTokenException" ||
      type == "MissingAuthenticationTokenException" || type == "IncompleteSignatureException" ||
      status == 403)
    return Kind::kAuth;
  if (status >= 500 || type == "InternalServerError" || type == "ServiceUnavailable")
    return Kind::kUnavailable;
  return Kind::kInvalid;
}

}  // namespace

std::string scrub_aws_message(std::string_view message) {
  size_t end = message.size();
  for (const std::string_view cut :
       {std::string_view("\n\n"), std::string_view("\r\n\r\n"),
        std::string_view("The Canonical String"), std::string_view("The String-to-Sign")})
    end = std::min(end, message.find(cut));
  std::string_view first = message.substr(0, end);
  while (!first.empty() && (first.back() == ' ' || first.back() == '\n' || first.back() == '\r'))
    first.remove_suffix(1);
  std::string out = util::safe_text(first.substr(0, 300));
  if (first.size() > 300 || end < message.size()) out += " (rest omitted)";
  return out;
}

namespace {

bool retryable(Kind kind) {
  return kind == Kind::kUnavailable || kind == Kind::kThrottled;
}

}  // namespace

DynamoClient::DynamoClient(DynamoOptions options) : options_(std::move(options)) {
  if (options_.region.empty() || options_.table.empty() ||
      (!options_.credentials &&
       (options_.access_key_id.empty() || options_.secret_access_key.empty())))
    throw std::invalid_argument("DynamoDB needs a region, a table and credentials");
  url_ = options_.endpoint.empty() ? "https://dynamodb." + options_.region + ".amazonaws.com/"
                                   : options_.endpoint;
  if (!options_.sleep)
    options_.sleep = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
  http_ = std::make_unique<http::HttpClient>(options_.http);
}

DynamoClient::~DynamoClient() = default;

json DynamoClient::call(const std::string& operation, json request) {
  if (!request.contains("TableName") && operation != "ListTables")
    request["TableName"] = options_.table;
  const std::string body = request.dump();
  http::AwsSigV4 signing{"aws:amz:" + options_.region + ":dynamodb", options_.access_key_id,
                         options_.secret_access_key.reveal(),
                         options_.session_token ? options_.session_token->reveal() : ""};
  if (options_.credentials) {
    AwsCredentials current = options_.credentials->get();  // throws DynamoError: gate closed
    signing.access_key_id = std::move(current.access_key_id);
    signing.secret_access_key = std::move(current.secret_access_key);
    signing.session_token = std::move(current.session_token);
  }
  const std::vector<std::string> headers = {"X-Amz-Target: DynamoDB_20120810." + operation};
  std::chrono::milliseconds backoff = options_.first_backoff;
  for (int attempt = 1;; ++attempt) {
    Kind kind;
    std::string type, message;
    try {
      const http::HttpResponse response =
          http_->post(url_, "application/x-amz-json-1.0", body, headers, &signing);
      json answer = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
      if (response.status == 200 && !answer.is_discarded()) return answer;
      type = answer.is_object() ? short_type(answer.value("__type", "")) : "";
      message = scrub_aws_message(
          answer.is_object() ? answer.value("message", answer.value("Message", "")) : "");
      kind = kind_of(type, response.status);
      message = fmt::format("DynamoDB {} on {}: {}{}{}", operation, options_.table,
                            type.empty() ? fmt::format("HTTP {}", response.status) : type,
                            message.empty() ? "" : ": ", message);
    } catch (const http::HttpError& e) {
      kind = Kind::kUnavailable;
      message = "DynamoDB " + operation + ": " + e.what();
    }
    if (!retryable(kind) || attempt >= options_.attempts) throw DynamoError(kind, type, message);
    options_.sleep(backoff);
    backoff *= 2;
  }
}

void DynamoClient::check_table() {
  const json answer = call("DescribeTable", json::object());
  const std::string status = answer["Table"].value("TableStatus", "");
  if (status != "ACTIVE" && status != "UPDATING")
    throw DynamoError(Kind::kUnavailable, "",
                      "DynamoDB table " + options_.table + " is " + status + ", not ACTIVE");
}

bool DynamoClient::put_if_absent(const json& item) {
  try {
    call("PutItem", {{"Item", item}, {"ConditionExpression", "attribute_not_exists(SK)"}});
    return true;
  } catch (const DynamoError& e) {
    if (e.kind() == Kind::kConditionFailed) return false;
    throw;
  }
}

void DynamoClient::put(const json& item) {
  call("PutItem", {{"Item", item}});
}

std::optional<json> DynamoClient::get(const std::string& pk, const std::string& sk) {
  const json answer =
      call("GetItem", {{"Key", {{"PK", S(pk)}, {"SK", S(sk)}}}, {"ConsistentRead", true}});
  if (!answer.contains("Item")) return std::nullopt;
  return answer["Item"];
}

bool DynamoClient::put_if(const json& item, const std::string& condition, const json& values) {
  try {
    call("PutItem", {{"Item", item},
                     {"ConditionExpression", condition},
                     {"ExpressionAttributeValues", values}});
    return true;
  } catch (const DynamoError& e) {
    if (e.kind() == Kind::kConditionFailed) return false;
    throw;
  }
}

bool DynamoClient::remove_pending(const std::string& pk, const std::string& sk,
                                  const std::string& claimed_by_prefix) {
  try {
    call("DeleteItem",
         {{"Key", {{"PK", S(pk)}, {"SK", S(sk)}}},
          {"ConditionExpression", "#s = :pending AND begins_with(claimed_by, :mine)"},
          {"ExpressionAttributeNames", {{"#s", "status"}}},  // "status" is a reserved word
          {"ExpressionAttributeValues",
           {{":pending", S("PENDING")}, {":mine", S(claimed_by_prefix)}}}});
    return true;
  } catch (const DynamoError& e) {
    if (e.kind() == Kind::kConditionFailed) return false;
    throw;
  }
}

std::vector<json> DynamoClient::query(const std::string& pk, const std::string& sk_prefix) {
  std::vector<json> items;
  json request = {{"KeyConditionExpression", "PK = :pk AND begins_with(SK, :prefix)"},
                  {"ExpressionAttributeValues", {{":pk", S(pk)}, {":prefix", S(sk_prefix)}}},
                  {"ConsistentRead", true}};
  for (;;) {
    const json answer = call("Query", request);
    for (const auto& item : answer.value("Items", json::array())) items.push_back(item);
    if (!answer.contains("LastEvaluatedKey")) return items;
    request["ExclusiveStartKey"] = answer["LastEvaluatedKey"];
  }
}

void DynamoClient::batch_put(const std::vector<json>& items) {
  for (size_t start = 0; start < items.size(); start += kBatchWriteItems) {
    json writes = json::array();
    for (size_t i = start; i < std::min(items.size(), start + kBatchWriteItems); ++i)
      writes.push_back({{"PutRequest", {{"Item", items[i]}}}});
    json pending = {{options_.table, writes}};
    std::chrono::milliseconds backoff = options_.first_backoff;
    for (int round = 0; !pending.empty(); ++round) {
      const json answer =
          call("BatchWriteItem", {{"TableName", options_.table}, {"RequestItems", pending}});
      pending = answer.value("UnprocessedItems", json::object());
      if (pending.empty() || pending.value(options_.table, json::array()).empty()) break;
      if (round >= 8)
        throw DynamoError(Kind::kThrottled, "",
                          "DynamoDB BatchWriteItem: items stayed unprocessed");
      options_.sleep(backoff);
      backoff *= 2;
    }
  }
}

std::string DynamoClient::create_table() {
  try {
    call("CreateTable", {{"AttributeDefinitions",
                          {{{"AttributeName", "PK"}, {"AttributeType", "S"}},
                           {{"AttributeName", "SK"}, {"AttributeType", "S"}}}},
                         {"KeySchema",
                          {{{"AttributeName", "PK"}, {"KeyType", "HASH"}},
                           {{"AttributeName", "SK"}, {"KeyType", "RANGE"}}}},
                         {"BillingMode", "PAY_PER_REQUEST"}});
  } catch (const DynamoError& e) {
    if (e.aws_type() != "ResourceInUseException") throw;  // it exists: fine
  }
  for (int i = 0; i < 60; ++i) {  // wait until ACTIVE (dynalite: at once; AWS: seconds)
    try {
      check_table();
      break;
    } catch (const DynamoError& e) {
      if (i == 59) throw;
      options_.sleep(std::chrono::milliseconds(500));
    }
  }
  try {
    call("UpdateTimeToLive",
         {{"TimeToLiveSpecification", {{"AttributeName", "ttl"}, {"Enabled", true}}}});
    return "enabled";
  } catch (const DynamoError& e) {
    if (e.aws_type() == "ValidationException" &&
        std::string(e.what()).find("already enabled") != std::string::npos)
      return "enabled";
    return std::string("not enabled: this endpoint refused UpdateTimeToLive (") + e.what() +
           "); items keep their ttl attribute and expire once TTL is enabled on the table";
  }
}

http::AwsSigV4 CredentialChain::signing(const std::string& scope) const {
  http::AwsSigV4 signing{scope, access_key_id, secret_access_key.reveal(),
                         session_token ? session_token->reveal() : ""};
  if (source) {
    AwsCredentials current = source->get();
    signing.access_key_id = std::move(current.access_key_id);
    signing.secret_access_key = std::move(current.secret_access_key);
    signing.session_token = std::move(current.session_token);
  }
  return signing;
}

CredentialChain credential_chain_from_env(const std::string& region, const http::HttpOptions& http,
                                          std::vector<std::string>& errors) {
  CredentialChain options;
  // Credentials, in the order of the AWS SDKs' default chain: keys in the environment, a web
  // identity (EKS IRSA), the container endpoint (ECS, Fargate, EKS Pod Identity).
  const SourceOptions source{.http = http};
  const auto key = cli::env("AWS_ACCESS_KEY_ID");
  const auto role = cli::env("AWS_ROLE_ARN");
  const auto token_file = cli::env("AWS_WEB_IDENTITY_TOKEN_FILE");
  const auto full_uri = cli::env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  const auto relative_uri = cli::env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  if (key) {
    options.access_key_id = *key;
    if (const auto secret = cli::env("AWS_SECRET_ACCESS_KEY"))
      options.secret_access_key =
          config::Secret(*secret, config::Secret::Source::kEnv, "env:AWS_SECRET_ACCESS_KEY");
    else
      errors.emplace_back("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
    if (const auto token = cli::env("AWS_SESSION_TOKEN"))
      options.session_token =
          config::Secret(*token, config::Secret::Source::kEnv, "env:AWS_SESSION_TOKEN");
  } else if (role || token_file) {
    if (!role) errors.emplace_back("AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not");
    if (!token_file)
      errors.emplace_back("AWS_ROLE_ARN is set but AWS_WEB_IDENTITY_TOKEN_FILE is not");
    const std::string sts =
        cli::env("AWS_ENDPOINT_URL_STS").value_or("https://sts." + region + ".amazonaws.com/");
    if (!config::acceptable_token_url(sts))
      errors.push_back("AWS_ENDPOINT_URL_STS=" + sts +
                       " must be https:// (or http:// to a loopback host)");
    if (role && token_file)
      options.source = web_identity_source(
          {*role, *token_file, cli::env("AWS_ROLE_SESSION_NAME").value_or("mailsync"), sts},
          source);
  } else if (full_uri || relative_uri) {
    const std::string url = full_uri ? *full_uri : "http://169.254.170.2" + *relative_uri;
    // The container agents' own addresses (ECS, EKS Pod Identity) or loopback, else https.
    const bool agent = url.starts_with("http://169.254.170.2/") ||
                       url.starts_with("http://169.254.170.23/") ||
                       url.starts_with("http://[fd00:ec2::23]/");
    if (!agent && !config::acceptable_token_url(url))
      errors.push_back("the container credentials URL " + url +
                       " must be https://, the ECS/EKS agent's address or loopback");
    options.source =
        container_source({url, cli::env("AWS_CONTAINER_AUTHORIZATION_TOKEN").value_or(""),
                          cli::env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE").value_or("")},
                         source);
  } else {
    errors.emplace_back(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_ROLE_ARN and "
        "AWS_WEB_IDENTITY_TOKEN_FILE (EKS IRSA), or AWS_CONTAINER_CREDENTIALS_FULL_URI / "
        "_RELATIVE_URI (ECS, EKS Pod Identity)");
  }
  return options;
}

DynamoSettings dynamo_options_from_env(const std::string& ca_file) {
  DynamoSettings result;
  DynamoOptions options;
  options.region = cli::env("AWS_REGION").value_or("");
  options.table = cli::env("DYNAMODB_TABLE").value_or("");
  options.endpoint = cli::env("DYNAMODB_ENDPOINT").value_or("");
  options.http.ca_file = ca_file;
  if (options.region.empty()) result.errors.emplace_back("AWS_REGION is not set");
  if (options.table.empty()) result.errors.emplace_back("DYNAMODB_TABLE is not set");
  if (!options.endpoint.empty() && !config::acceptable_token_url(options.endpoint))
    result.errors.push_back("DYNAMODB_ENDPOINT=" + options.endpoint +
                            " must be https:// (or http:// to a loopback host)");

  CredentialChain chain = credential_chain_from_env(options.region, options.http, result.errors);
  options.access_key_id = std::move(chain.access_key_id);
  options.secret_access_key = std::move(chain.secret_access_key);
  options.session_token = std::move(chain.session_token);
  options.credentials = std::move(chain.source);
  if (result.errors.empty()) result.options = std::move(options);
  return result;
}

}  // namespace mailsync::dynamo
