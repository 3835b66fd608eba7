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
  EXPECT_EQ(classify(error(Status::kNo, "TRYCREATE", "Mailbox doesn't exist")).reason,
            "no_such_mailbox");
  EXPECT_EQ(classify(error(Status::kNo, nullptr, "Line too long")).kind, Kind::kPermanent);
}

// Issue 13: transient answers were read as auth_required (every Outlook route stops) or as
// permanent (the watermark passes the message: silent loss).
TEST(ClassifyImapError, UnavailableAtAuthenticateIsTransientNeverAuth) {
  EXPECT_EQ(classify(error(Status::kNo, "UNAVAILABLE", "Temporary authentication failure.",
                           "AUTHENTICATE"))
                .kind,
            Kind::kRetryable);
  EXPECT_EQ(
      classify(error(Status::kNo, nullptr, "Server busy, try again later.", "AUTHENTICATE")).kind,
      Kind::kRetryable);
}

TEST(ClassifyImapError, ABadOnAppendIsPermanentOnlyForTextsKnownToMeanThisMessage) {
  const ErrorClass unknown =
      classify(error(Status::kBad, nullptr, "Error in IMAP command: Unknown"));
  EXPECT_EQ(unknown.kind, Kind::kRetryable);
  EXPECT_EQ(unknown.max_retries, 5) << "retried, but not forever";
  // Outlook.com: a line over ~10,240 bytes.
  EXPECT_EQ(classify(error(Status::kBad, nullptr, "Command Error. 10")).kind, Kind::kPermanent);
  // Outlook.com's catch-all: retried a few times, then permanent.
  const ErrorClass catch_all = classify(error(Status::kBad, nullptr, "Command Argument Error. 11"));
  EXPECT_EQ(catch_all.kind, Kind::kRetryable);
  EXPECT_EQ(catch_all.reason, "argument_error");
  EXPECT_EQ(catch_all.max_retries, 3);
}

TEST(ClassifyImapError, OutlookComsOwnWords) {
  const ErrorClass too_big =
      classify(error(Status::kNo, nullptr, "Maximum size of appendable message has been exceeded"));
  EXPECT_EQ(too_big.kind, Kind::kPermanent);
  EXPECT_EQ(too_big.reason, "too_large");
  EXPECT_EQ(classify(error(Status::kNo, nullptr, "Folder name is reserved", "CREATE")).kind,
            Kind::kPermanent);
  EXPECT_EQ(classify(error(Status::kBad, nullptr, "User is authenticated but not connected.")).kind,
            Kind::kRetryable);
  const ErrorClass throttled = classify(error(
      Status::kBad, nullptr, "Request is throttled. Suggested Backoff Time: 89117 milliseconds"));
  EXPECT_EQ(throttled.kind, Kind::kThrottled);
  EXPECT_EQ(throttled.retry_after, std::chrono::milliseconds(89117));
}

TEST(ClassifyImapError, GmailsLimitsAreWaitedOutNeverAuthOrPermanent) {
  const ErrorClass connections = classify(
      error(Status::kNo, "ALERT", "Too many simultaneous connections. (Failure)", "AUTHENTICATE"));
  EXPECT_EQ(connections.kind, Kind::kThrottled);
  EXPECT_GT(connections.retry_after, std::chrono::milliseconds(0));
  const ErrorClass bandwidth = classify(
      error(Status::kNo, "OVERQUOTA", "Account exceeded command or bandwidth limits. (Failure)"));
  EXPECT_EQ(bandwidth.kind, Kind::kThrottled);
  EXPECT_GE(bandwidth.retry_after, std::chrono::minutes(10));
  EXPECT_EQ(classify(error(Status::kNo, nullptr, "System Error (Failure)")).kind, Kind::kRetryable);
  EXPECT_EQ(classify(error(Status::kBye, nullptr, "System Error", "connection")).kind,
            Kind::kRetryable);
}

TEST(ClassifyImapError, AFullMailboxIsWaitedOutNotRecordedAsTheMessagesFault) {
  const ErrorClass full = classify(error(Status::kNo, "OVERQUOTA", "Quota exceeded"));
  EXPECT_EQ(full.kind, Kind::kRetryable);
  EXPECT_EQ(full.reason, "over_quota");
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
