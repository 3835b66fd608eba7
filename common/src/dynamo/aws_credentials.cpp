#include "mailsync/dynamo/aws_credentials.hpp"

#include <ctime>
#include <fstream>
#include <iomanip>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "mailsync/dynamo/dynamo_client.hpp"
#include "mailsync/util/strings.hpp"

namespace mailsync::dynamo {

namespace {

using Clock = std::chrono::system_clock;

// The text of the first <tag>...</tag> of an STS answer (no attributes, no nesting of the same
// tag).
std::optional<std::string> xml_text(const std::string& body, const std::string& tag) {
  const std::string open = "<" + tag + ">", close = "</" + tag + ">";
  const size_t start = body.find(open);
  if (start == std::string::npos) return std::nullopt;
  const size_t end = body.find(close, start + open.size());
  if (end == std::string::npos) return std::nullopt;
  return body.substr(start + open.size(), end - start - open.size());
}

std::string read_token_file(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  if (!in)
    throw DynamoError(DynamoError::Kind::kAuth, "", what + ": cannot read the token file " + path);
  std::stringstream text;
  text << in.rdbuf();
  std::string token = text.str();
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' '))
    token.pop_back();
  if (token.empty())
    throw DynamoError(DynamoError::Kind::kAuth, "",
                      what + ": the token file " + path + " is empty");
  return token;
}

// Caches what fetch() returns until 5 minutes before it expires; one fetch at a time.
class RefreshingSource : public CredentialSource {
 public:
  explicit RefreshingSource(SourceOptions options) : options_(std::move(options)) {
    if (!options_.now) options_.now = [] { return Clock::now(); };
  }

  AwsCredentials get() override {
    std::lock_guard lock(mutex_);
    if (!cached_ ||
        (cached_->expiration && options_.now() >= *cached_->expiration - std::chrono::minutes(5)))
      cached_ = fetch();
    return *cached_;
  }

 protected:
  virtual AwsCredentials fetch() = 0;
  http::HttpResponse send(const std::function<http::HttpResponse(http::HttpClient&)>& request) {
    try {
      http::HttpClient client(options_.http);
      return request(client);
    } catch (const http::HttpError& e) {
      throw DynamoError(DynamoError::Kind::kUnavailable, "", describe() + ": " + e.what());
    }
  }
  static DynamoError refused(long status, const std::string& source, const std::string& why) {
    // 5xx and throttling may pass; anything else needs a person.
    const bool transient =
        status >= 500 || status == 429 || why.find("Throttling") != std::string::npos;
    return {transient ? DynamoError::Kind::kUnavailable : DynamoError::Kind::kAuth, "",
            source + ": " + scrub_aws_message(why)};
  }

  SourceOptions options_;

 private:
  std::mutex mutex_;
  std::optional<AwsCredentials> cached_;
};

class WebIdentitySource final : public RefreshingSource {
 public:
  WebIdentitySource(WebIdentitySettings settings, SourceOptions options)
      : RefreshingSource(std::move(options)), settings_(std::move(settings)) {}
  std::string describe() const override { return "AWS web identity role " + settings_.role_arn; }

 protected:
  AwsCredentials fetch() override {
    const std::string token = read_token_file(settings_.token_file, describe());
    const http::FormFields form = {{"Action", "AssumeRoleWithWebIdentity"},
                                   {"Version", "2011-06-15"},
                                   {"RoleArn", settings_.role_arn},
                                   {"RoleSessionName", settings_.session_name},
                                   {"WebIdentityToken", token},
                                   {"DurationSeconds", "3600"}};
    const http::HttpResponse response =
        send([&](http::HttpClient& client) { return client.post_form(settings_.sts_url, form); });
    auto parsed = parse_sts_web_identity_response(response.status, response.body);
    if (auto* why = std::get_if<std::string>(&parsed))
      throw refused(response.status, describe(), *why);
    return std::get<AwsCredentials>(std::move(parsed));
  }

 private:
  WebIdentitySettings settings_;
};

class ContainerSource final : public RefreshingSource {
 public:
  ContainerSource(ContainerSettings settings, SourceOptions options)
      : RefreshingSource(std::move(options)), settings_(std::move(settings)) {}
  std::string describe() const override { return "AWS container credentials at " + settings_.url; }

 protected:
  AwsCredentials fetch() override {
    std::vector<std::string> headers;
    if (!settings_.authorization_file.empty())
      headers.push_back("Authorization: " +
                        read_token_file(settings_.authorization_file, describe()));
    else if (!settings_.authorization.empty())
      headers.push_back("Authorization: " + settings_.authorization);
    const http::HttpResponse response =
        send([&](http::HttpClient& client) { return client.get(settings_.url, headers); });
    auto parsed = parse_container_credentials_response(response.status, response.body);
    if (auto* why = std::get_if<std::string>(&parsed))
      throw refused(response.status, describe(), *why);
    return std::get<AwsCredentials>(std::move(parsed));
  }

 private:
  ContainerSettings settings_;
};

}  // namespace

std::optional<Clock::time_point> parse_aws_time(const std::string& text) {
  std::tm parts{};
  std::istringstream in(text);
  in >> std::get_time(&parts, "%Y-%m-%dT%H:%M:%S");
  if (in.fail()) return std::nullopt;
  const std::time_t seconds = timegm(&parts);
  if (seconds == static_cast<std::time_t>(-1)) return std::nullopt;
  return Clock::from_time_t(seconds);
}

std::variant<AwsCredentials, std::string> parse_sts_web_identity_response(long status,
                                                                          const std::string& body) {
  if (status != 200) {
    const std::string code = xml_text(body, "Code").value_or("HTTP " + std::to_string(status));
    const std::string message = xml_text(body, "Message").value_or("");
    return "AssumeRoleWithWebIdentity refused: " + code +
           (message.empty() ? "" : ": " + util::one_line(message));
  }
  const auto key = xml_text(body, "AccessKeyId");
  const auto secret = xml_text(body, "SecretAccessKey");
  const auto token = xml_text(body, "SessionToken");
  const auto expiration = xml_text(body, "Expiration");
  if (!key || !secret || !token || !expiration)
    return std::string("AssumeRoleWithWebIdentity answered without credentials");
  const auto expires = parse_aws_time(*expiration);
  if (!expires) return "AssumeRoleWithWebIdentity: unreadable Expiration '" + *expiration + "'";
  return AwsCredentials{*key, *secret, *token, expires};
}

std::variant<AwsCredentials, std::string> parse_container_credentials_response(
    long status, const std::string& body) {
  const auto answer = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (status != 200) {
    std::string why = "HTTP " + std::to_string(status);
    if (answer.is_object())
      for (const char* field : {"message", "Message", "code", "Code"})
        if (answer.contains(field) && answer[field].is_string()) {
          why += ": " + util::one_line(answer[field].get<std::string>());
          break;
        }
    return "the credentials endpoint refused: " + why;
  }
  if (!answer.is_object() || !answer.contains("AccessKeyId") ||
      !answer.contains("SecretAccessKey") || !answer["AccessKeyId"].is_string() ||
      !answer["SecretAccessKey"].is_string())
    return std::string("the credentials endpoint answered without credentials");
  AwsCredentials credentials{answer["AccessKeyId"].get<std::string>(),
                             answer["SecretAccessKey"].get<std::string>(),
                             answer.value("Token", ""), std::nullopt};
  if (answer.contains("Expiration") && answer["Expiration"].is_string()) {
    credentials.expiration = parse_aws_time(answer["Expiration"].get<std::string>());
    if (!credentials.expiration)
      return "the credentials endpoint answered an unreadable Expiration '" +
             answer["Expiration"].get<std::string>() + "'";
  }
  return credentials;
}

std::shared_ptr<CredentialSource> web_identity_source(WebIdentitySettings settings,
                                                      SourceOptions options) {
  return std::make_shared<WebIdentitySource>(std::move(settings), std::move(options));
}

std::shared_ptr<CredentialSource> container_source(ContainerSettings settings,
                                                   SourceOptions options) {
  return std::make_shared<ContainerSource>(std::move(settings), std::move(options));
}

}  // namespace mailsync::dynamo
