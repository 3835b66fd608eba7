#include <gtest/gtest.h>

#include "mailsync/mail/rfc822.hpp"

namespace {

using mailsync::mail::extract_message_id;

TEST(MessageId, FindsTheHeaderWhateverItsCase) {
  EXPECT_EQ(extract_message_id("From: a@b\r\nmessage-id: <x@y>\r\n\r\nbody"), "<x@y>");
  EXPECT_EQ(extract_message_id("MESSAGE-ID:<x@y>\r\n\r\n"), "<x@y>");
  EXPECT_EQ(extract_message_id("Message-Id : <x@y>\r\n\r\n"), "<x@y>");
}

TEST(MessageId, UnfoldsFoldedValues) {
  EXPECT_EQ(extract_message_id("Message-ID:\r\n <folded@example.com>\r\nSubject: x\r\n\r\n"),
            "<folded@example.com>");
  EXPECT_EQ(extract_message_id("Message-ID: <a\r\n\t@b>\r\n\r\n"), "<a \t@b>");
}

TEST(MessageId, TakesTheFirstOccurrence) {
  EXPECT_EQ(extract_message_id("Message-ID: <first@x>\r\nMessage-ID: <second@x>\r\n\r\n"),
            "<first@x>");
}

TEST(MessageId, ToleratesBareLfAndEightBitBytes) {
  EXPECT_EQ(extract_message_id("Subject: \xe4\xf6\xfc\nMessage-ID: <lf@x>\n\nbody"), "<lf@x>");
  EXPECT_EQ(
      extract_message_id(std::string("X-Bin: \x01\x02\0\x7f\r\nMessage-ID: <b@x>\r\n\r\n", 35)),
      "<b@x>");
}

TEST(MessageId, IsAbsentWhenMissingEmptyOrOnlyInTheBody) {
  EXPECT_EQ(extract_message_id("Subject: x\r\n\r\nMessage-ID: <in-body@x>\r\n"), std::nullopt);
  EXPECT_EQ(extract_message_id("Message-ID:   \r\n\r\n"), std::nullopt);
  EXPECT_EQ(extract_message_id(""), std::nullopt);
  EXPECT_EQ(extract_message_id("\r\nMessage-ID: <x@y>\r\n"), std::nullopt);
  EXPECT_EQ(extract_message_id("X-Message-ID: <x@y>\r\n\r\n"), std::nullopt);
  EXPECT_EQ(extract_message_id(" Message-ID: <continuation@x>\r\n\r\n"), std::nullopt);
}

TEST(MessageId, WorksOnHeadersWithoutABody) {
  EXPECT_EQ(extract_message_id("Message-ID: <h@x>"), "<h@x>");
}

TEST(MessageIdScanner, GivesTheSameAnswerFedByteByByte) {
  const std::string message =
      "Received: x\r\n  y\r\nMessage-ID:\r\n <s@x>\r\n\r\nMessage-ID: <no@x>\r\n";
  mailsync::mail::MessageIdScanner scanner;
  for (const char c : message) scanner.feed(std::string_view(&c, 1));
  EXPECT_EQ(scanner.result(), "<s@x>");
}

TEST(MessageIdScanner, StopsAtItsBound) {
  mailsync::mail::MessageIdScanner scanner(64);
  scanner.feed("X-Long: " + std::string(100, 'a') + "\r\nMessage-ID: <late@x>\r\n\r\n");
  EXPECT_EQ(scanner.result(), std::nullopt);
}

TEST(InternalDate, ParsesTheRfcExample) {
  const auto date = mailsync::mail::parse_internaldate("17-Jul-1996 02:44:25 -0700");
  ASSERT_TRUE(date.has_value());
  EXPECT_EQ(
      std::chrono::duration_cast<std::chrono::seconds>(date->instant.time_since_epoch()).count(),
      837596665);
  EXPECT_EQ(date->offset_minutes, -420);
  EXPECT_EQ(mailsync::mail::format_internaldate(*date), "17-Jul-1996 02:44:25 -0700");
}

TEST(InternalDate, AcceptsASpacePaddedDayAndFormatsTwoDigits) {
  const auto date = mailsync::mail::parse_internaldate(" 7-Jan-2020 23:59:59 +0530");
  ASSERT_TRUE(date.has_value());
  EXPECT_EQ(mailsync::mail::format_internaldate(*date), "07-Jan-2020 23:59:59 +0530");
  EXPECT_EQ(mailsync::mail::format_internaldate({date->instant, 0}), "07-Jan-2020 18:29:59 +0000");
}

TEST(InternalDate, RefusesMalformedDates) {
  for (const char* bad :
       {"", "17-Jux-1996 02:44:25 -0700", "17-Jul-1996 02:44:25", "32-Jul-1996 02:44:25 -0700",
        "17-Jul-1996 24:00:00 +0000", "17-Jul-1996 02:44:25 -0760", "17-Jul-1996 02:44:25 -0700 x"})
    EXPECT_FALSE(mailsync::mail::parse_internaldate(bad).has_value()) << bad;
}

}  // namespace
