#include <gtest/gtest.h>

#include "mailsync/oauth/authorization.hpp"
#include "mailsync/oauth/token_response.hpp"
#include "mailsync/util/base64.hpp"
#include "mailsync/util/sha256.hpp"
#include "mailsync/util/strings.hpp"

namespace {

using namespace mailsync::oauth;
using Kind = TokenError::Kind;

TEST(TokenResponse, ReadsAGrant) {
  const auto response = parse_token_response(
      200,
      R"({"access_token": "ya29.x", "expires_in": 3599, "scope": "https://mail.google.com/", "token_type": "Bearer"})");
  const auto& grant = std::get<TokenGrant>(response);
  EXPECT_EQ(grant.access_token, "ya29.x");
  EXPECT_EQ(grant.expires_in, std::chrono::seconds(3599));
  EXPECT_FALSE(grant.refresh_token.has_value());
}

TEST(TokenResponse, ReadsAMicrosoftRotation) {
  const auto response = parse_token_response(
      200, R"({"access_token": "EwB", "expires_in": "3600", "refresh_token": "M.new"})");
  EXPECT_EQ(std::get<TokenGrant>(response).refresh_token, "M.new");
  EXPECT_EQ(std::get<TokenGrant>(response).expires_in, std::chrono::seconds(3600));
}

TEST(TokenResponse, ClassifiesErrors) {
  const struct {
    long status;
    const char* body;
    Kind kind;
  } cases[] = {
      {400,
       R"({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})",
       Kind::kInvalidGrant},
      {401, R"({"error": "invalid_client"})", Kind::kInvalidClient},
      {400, R"({"error": "unauthorized_client"})", Kind::kInvalidClient},
      {503, R"({"error": "temporarily_unavailable"})", Kind::kTemporary},
      {502, "<html>Bad Gateway</html>", Kind::kTemporary},
      {429, R"({"error": "rate_limited"})", Kind::kTemporary},
      {200, R"({"token_type": "Bearer"})", Kind::kTemporary},
      {200, "not json", Kind::kTemporary},
      {400, R"({"error": "invalid_scope"})", Kind::kOther},
      {400, "[1, 2]", Kind::kTemporary},  // not the endpoint's words: never a refused token
      {403, "<html>Forbidden by proxy</html>", Kind::kTemporary},
      {404, "", Kind::kTemporary},
      {400, R"({"error": 5})", Kind::kOther},  // a non-string code: no code, never a throw
      {503, R"({"error": {"code": 1}})", Kind::kTemporary},
  };
  for (const auto& c : cases) {
    const auto response = parse_token_response(c.status, c.body);
    ASSERT_TRUE(std::holds_alternative<TokenError>(response)) << c.body;
    EXPECT_EQ(std::get<TokenError>(response).kind, c.kind) << c.body;
  }
}

TEST(Pkce, ChallengeIsTheS256OfTheVerifier) {
  const Pkce pkce = make_pkce();
  EXPECT_EQ(pkce.verifier.size(), 43u);  // RFC 7636: 43..128 characters
  const auto digest = mailsync::util::Sha256::of(pkce.verifier);
  EXPECT_EQ(pkce.challenge, mailsync::util::base64url_encode(std::string_view(
                                reinterpret_cast<const char*>(digest.data()), digest.size())));
  EXPECT_NE(make_pkce().verifier, pkce.verifier);
  EXPECT_EQ(pkce.verifier.find_first_of("+/="), std::string::npos);
}

TEST(AuthorizationUrl, AsksGoogleForOfflineAccessWithConsentAndPkce) {
  const std::string url = authorization_url(
      {Provider::kGoogle, "https://accounts.google.com/o/oauth2/v2/auth", "cid",
       "http://127.0.0.1:5000/", "st4te", "ch4llenge", std::string("a@gmail.com")});
  EXPECT_TRUE(url.starts_with("https://accounts.google.com/o/oauth2/v2/auth?"));
  const auto query = mailsync::util::parse_query(url.substr(url.find('?') + 1));
  EXPECT_EQ(query.at("response_type"), "code");
  EXPECT_EQ(query.at("scope"), "https://mail.google.com/");
  EXPECT_EQ(query.at("access_type"), "offline");
  EXPECT_EQ(query.at("prompt"), "consent");
  EXPECT_EQ(query.at("code_challenge_method"), "S256");
  EXPECT_EQ(query.at("code_challenge"), "ch4llenge");
  EXPECT_EQ(query.at("state"), "st4te");
  EXPECT_EQ(query.at("redirect_uri"), "http://127.0.0.1:5000/");
  EXPECT_EQ(query.at("login_hint"), "a@gmail.com");
}

TEST(AuthorizationUrl, AsksMicrosoftForImapAndOfflineAccess) {
  const std::string url = authorization_url(
      {Provider::kMicrosoft, "https://login.microsoftonline.com/consumers/oauth2/v2.0/authorize",
       "cid", "http://localhost:5000/", "s", "c", std::nullopt});
  const auto query = mailsync::util::parse_query(url.substr(url.find('?') + 1));
  EXPECT_EQ(query.at("scope"), "https://outlook.office.com/IMAP.AccessAsUser.All offline_access");
  EXPECT_FALSE(query.contains("access_type"));
  EXPECT_FALSE(query.contains("login_hint"));
}

TEST(ParseQuery, DecodesPercentAndPlus) {
  const auto query = mailsync::util::parse_query("code=4%2F0Ab&state=x+y&empty=&flag&bad=%zz");
  EXPECT_EQ(query.at("code"), "4/0Ab");
  EXPECT_EQ(query.at("state"), "x y");
  EXPECT_EQ(query.at("empty"), "");
  EXPECT_EQ(query.at("flag"), "");
  EXPECT_EQ(query.at("bad"), "%zz");
}

}  // namespace
