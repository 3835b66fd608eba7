// Parsing what STS and the container credentials endpoint answer (pure; the flows run against the
// local stack's emulator in the integration tests).

#include <gtest/gtest.h>

#include "mailsync/dynamo/aws_credentials.hpp"
#include "mailsync/dynamo/dynamo_client.hpp"

namespace {

using namespace mailsync::dynamo;

TEST(AwsCredentials, AnAssumeRoleWithWebIdentityAnswerGivesTemporaryCredentials) {
  const std::string body =
      "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
      "<AssumeRoleWithWebIdentityResult><SubjectFromWebIdentityToken>system:serviceaccount:"
      "mailsync:"
      "worker</SubjectFromWebIdentityToken><Credentials><SessionToken>FwoGZX</SessionToken>"
      "<SecretAccessKey>wJalrX</SecretAccessKey><Expiration>2026-11-21T17:00:00Z</Expiration>"
      "<AccessKeyId>ASIAEXAMPLE</AccessKeyId></Credentials></AssumeRoleWithWebIdentityResult>"
      "</AssumeRoleWithWebIdentityResponse>";
  const auto parsed = parse_sts_web_identity_response(200, body);
  ASSERT_TRUE(std::holds_alternative<AwsCredentials>(parsed)) << std::get<std::string>(parsed);
  const auto& c = std::get<AwsCredentials>(parsed);
  EXPECT_EQ(c.access_key_id, "ASIAEXAMPLE");
  EXPECT_EQ(c.secret_access_key, "wJalrX");
  EXPECT_EQ(c.session_token, "FwoGZX");
  ASSERT_TRUE(c.expiration.has_value());
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*c.expiration), 1795280400);
}

TEST(AwsCredentials, AnStsRefusalSaysTheCodeAndMessageOnOneLine) {
  const auto parsed = parse_sts_web_identity_response(
      400,
      "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>No "
      "OpenIDConnect provider\nfound</Message></Error></ErrorResponse>");
  ASSERT_TRUE(std::holds_alternative<std::string>(parsed));
  EXPECT_EQ(std::get<std::string>(parsed),
            "AssumeRoleWithWebIdentity refused: InvalidIdentityToken: No OpenIDConnect provider; "
            "found");
  EXPECT_EQ(std::get<std::string>(parse_sts_web_identity_response(200, "<nothing/>")),
            "AssumeRoleWithWebIdentity answered without credentials");
}

TEST(AwsCredentials, AContainerEndpointAnswerWithOrWithoutExpiration) {
  const auto parsed = parse_container_credentials_response(
      200, R"({"AccessKeyId":"ASIA1","SecretAccessKey":"s","Token":"t",)"
           R"("Expiration":"2026-11-21T17:00:00.000Z","RoleArn":"arn:aws:iam::1:role/x"})");
  ASSERT_TRUE(std::holds_alternative<AwsCredentials>(parsed)) << std::get<std::string>(parsed);
  EXPECT_EQ(std::get<AwsCredentials>(parsed).session_token, "t");
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*std::get<AwsCredentials>(parsed).expiration),
            1795280400);
  const auto lasting =
      parse_container_credentials_response(200, R"({"AccessKeyId":"A","SecretAccessKey":"s"})");
  ASSERT_TRUE(std::holds_alternative<AwsCredentials>(lasting));
  EXPECT_FALSE(std::get<AwsCredentials>(lasting).expiration.has_value());
}

TEST(AwsCredentials, AContainerEndpointRefusalOrGarbageIsNamed) {
  EXPECT_EQ(std::get<std::string>(parse_container_credentials_response(
                401, R"({"code":"AccessDenied","message":"unknown token"})")),
            "the credentials endpoint refused: HTTP 401: unknown token");
  EXPECT_EQ(std::get<std::string>(parse_container_credentials_response(200, "<html>")),
            "the credentials endpoint answered without credentials");
  EXPECT_FALSE(parse_aws_time("tomorrow").has_value());
}

}  // namespace

// Issue 13: AWS error text was stored and shown verbatim; a signature mismatch carries the
// canonical request, whose headers hold the session token.
TEST(ScrubAwsMessage, KeepsTheFirstParagraphAndNeverTheCanonicalRequest) {
  const std::string aws =
      "The request signature we calculated does not match the signature you provided. Check your "
      "AWS Secret Access Key and signing method.\n\nThe Canonical String for this request should "
      "have been\n'POST\n/\n\nx-amz-security-token:IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN\n'";
  const std::string scrubbed = mailsync::dynamo::scrub_aws_message(aws);
  EXPECT_EQ(scrubbed.find("IQoJ"), std::string::npos) << scrubbed;
  EXPECT_EQ(scrubbed.find("Canonical"), std::string::npos) << scrubbed;
  EXPECT_NE(scrubbed.find("signature we calculated does not match"), std::string::npos);
  EXPECT_NE(scrubbed.find("(rest omitted)"), std::string::npos);
  EXPECT_EQ(mailsync::dynamo::scrub_aws_message("Requested resource not found"),
            "Requested resource not found");
  EXPECT_LE(mailsync::dynamo::scrub_aws_message(std::string(5000, 'a')).size(), 320u);
}
