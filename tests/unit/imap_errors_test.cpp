#include <gtest/gtest.h>

#include "mailsync/imap/errors.hpp"
#include "mailsync/net/tls_stream.hpp"

namespace {

using namespace mailsync::imap;
using Kind = ErrorClass::Kind;

ImapError error(Status status, const char* code, const char* text, const char* command = "APPEND") {
  std::optional<ResponseCode> response_code;
  if (code != nullptr) response_code = ResponseCode{code};
  return ImapError(command, status, response_code, text);
}

TEST(ClassifyImapError, OutlookThrottlingWithNoOrBadWaitsTheSuggestedTime) {
  for (const Status status : {Status::kNo, Status::kBad}) {
    const ErrorClass c = classify(
        error(status, nullptr, "Request is throttled. Suggested Backoff Time: 36445 milliseconds"));
    EXPECT_EQ(c.kind, Kind::kThrottled);
    EXPECT_EQ(c.retry_after, std::chrono::milliseconds(36445));
  }
}

TEST(ClassifyImapError, CapsTheSuggestedBackoff) {
  const ErrorClass c =
      classify(error(Status::kNo, nullptr,
                     "Request is throttled. Suggested Backoff Time: 999999999 milliseconds"));
  EXPECT_EQ(c.retry_after, kMaxSuggestedBackoff);
}

TEST(ClassifyImapError, GmailThrottledAndSessionExpiredAreTransient) {
  EXPECT_EQ(classify(error(Status::kNo, "THROTTLED", "Too many commands")).kind, Kind::kThrottled);
  EXPECT_EQ(
      classify(error(Status::kBye, nullptr, "Session expired, please login again.", "connection"))
          .kind,
      Kind::kRetryable);
  EXPECT_EQ(classify(error(Status::kNo, "UNAVAILABLE", "Temporary authentication failure.")).kind,
            Kind::kRetryable);
}

TEST(ClassifyImapError, RefusedCredentialsAreAuthErrors) {
  EXPECT_EQ(
      classify(error(Status::kNo, "AUTHENTICATIONFAILED", "Invalid credentials", "AUTHENTICATE"))
          .kind,
      Kind::kAuth);
  EXPECT_EQ(classify(error(Status::kNo, nullptr, "AUTHENTICATE failed.", "AUTHENTICATE")).kind,
            Kind::kAuth);
}

TEST(ClassifyImapError, WhatTheDestinationRefusesIsPermanent) {
  EXPECT_EQ(classify(error(Status::kNo, "LIMIT", "Message too large")).reason, "too_large");
  EXPECT_EQ(classify(error(Status::kNo, "OVERQUOTA", "Quota exceeded")).reason, "over_quota");
  EXPECT_EQ(classify(error(Status::kNo, "TRYCREATE", "Mailbox doesn't exist")).reason,
            "no_such_mailbox");
  EXPECT_EQ(classify(error(Status::kBad, nullptr, "Error in IMAP command: Unknown")).kind,
            Kind::kPermanent);
  EXPECT_EQ(classify(error(Status::kNo, nullptr, "Line too long")).kind, Kind::kPermanent);
}

TEST(ClassifyImapError, AnUnreadableNoIsRetriedAndCappedByTheCaller) {
  EXPECT_EQ(classify(error(Status::kNo, nullptr, "Internal error occurred.")).kind,
            Kind::kRetryable);
}

TEST(ClassifyException, TransportErrorsAreRetryableButCertificatesAreNot) {
  using mailsync::net::TransportError;
  using mailsync::net::TransportErrorKind;
  EXPECT_EQ(
      classify(std::make_exception_ptr(TransportError(TransportErrorKind::kTimeout, "t"))).reason,
      "timeout");
  EXPECT_EQ(
      classify(std::make_exception_ptr(TransportError(TransportErrorKind::kClosed, "c"))).kind,
      Kind::kRetryable);
  EXPECT_EQ(
      classify(std::make_exception_ptr(TransportError(TransportErrorKind::kCertificate, "x"))).kind,
      Kind::kPermanent);
  EXPECT_EQ(classify(std::make_exception_ptr(ProtocolError("garbage"))).reason, "protocol");
}

TEST(ImapError, KeepsStatusCodeAndTextInItsMessage) {
  const ImapError e = error(Status::kNo, "LIMIT", "Message too large");
  EXPECT_STREQ(e.what(), "APPEND failed: NO [LIMIT] Message too large");
  EXPECT_TRUE(e.has_code("LIMIT"));
}

}  // namespace
