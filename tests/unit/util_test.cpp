#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "mailsync/util/base64.hpp"
#include "mailsync/util/lanes.hpp"
#include "mailsync/util/sha256.hpp"
#include "mailsync/util/strings.hpp"

namespace {

using mailsync::util::base64_decode;
using mailsync::util::base64_encode;

TEST(Base64, EncodesTheRfc4648TestVectors) {
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(plain), encoded);
    EXPECT_EQ(base64_decode(encoded), plain);
  }
}

TEST(Base64, RoundTripsEveryByteValue) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  EXPECT_EQ(base64_decode(base64_encode(all)), all);
}

TEST(Base64, RejectsMalformedInput) {
  for (const char* bad : {"Zg=", "Zg", "Z===", "Zm9v!A==", "Zg==Zg==", "Zm 9v", "=Zg="})
    EXPECT_FALSE(base64_decode(bad).has_value()) << bad;
}

TEST(Base64, EncodesAnXoauth2InitialResponse) {
  // The SASL XOAUTH2 initial client response of Google's documentation.
  EXPECT_EQ(base64_encode("user=someuser@example.com\x01"
                          "auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"),
            "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQm"
            "hkSFJoZG1semRHRXVZMjl0Q2cBAQ==");
}

TEST(Sha256, MatchesKnownDigests) {
  EXPECT_EQ(mailsync::util::Sha256::hex_of(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(mailsync::util::Sha256::hex_of("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, IncrementalEqualsOneShot) {
  mailsync::util::Sha256 hash;
  hash.update("a");
  hash.update("");
  hash.update("bc");
  EXPECT_EQ(mailsync::util::to_hex(hash.finish()), mailsync::util::Sha256::hex_of("abc"));
  hash.update("abc");  // reusable after finish()
  EXPECT_EQ(mailsync::util::to_hex(hash.finish()), mailsync::util::Sha256::hex_of("abc"));
}

TEST(OneLine, JoinsTrimmedNonEmptyLines) {
  EXPECT_EQ(mailsync::util::one_line("connection failed: refused\n\tIs the server running?\n"),
            "connection failed: refused; Is the server running?");
  EXPECT_EQ(mailsync::util::one_line("a\r\n\r\nb"), "a; b");
  EXPECT_EQ(mailsync::util::one_line(""), "");
}

}  // namespace

TEST(HeaderBytes, AnyBytesRoundTripAndAnOrdinaryMessageIdIsStoredUnchanged) {
  using mailsync::util::decode_header_bytes;
  using mailsync::util::encode_header_bytes;
  EXPECT_EQ(encode_header_bytes("<CAF+abc%20=def@mail.gmail.com>"),
            "<CAF+abc%20=def@mail.gmail.com>");
  const std::string nasty[] = {
      std::string("<a\0b@x>", 7), "<caf\xe9@x>", "<\xff\xfe>",      "~esc:<x>", "%41", "",
      std::string(1, '\0'),       "tab\there",   "<\xe2\x82\xac@x>"};
  for (const std::string& raw : nasty) {
    const std::string stored = encode_header_bytes(raw);
    EXPECT_EQ(decode_header_bytes(stored), raw) << stored;
    for (const char c : stored) EXPECT_TRUE(c >= 0x20 && c <= 0x7E) << stored;
  }
  EXPECT_EQ(encode_header_bytes(std::string("<a\0b@x>", 7)), "~esc:<a%00b@x>");
}

TEST(SafeText, KeepsUtf8AndTabsAndEscapesTheRest) {
  using mailsync::util::safe_text;
  EXPECT_EQ(safe_text("NO [LIMIT] Nachricht zu gro\xc3\x9f\t!"),
            "NO [LIMIT] Nachricht zu gro\xc3\x9f\t!");
  EXPECT_EQ(safe_text("bad \xff byte"), "bad %FF byte");
  EXPECT_EQ(safe_text("two\nlines\r"), "two%0Alines%0D");
  EXPECT_EQ(safe_text(std::string("nul\0", 4)), "nul%00");
  EXPECT_EQ(safe_text("\xed\xa0\x80"), "%ED%A0%80") << "a surrogate is not UTF-8";
  EXPECT_EQ(safe_text("\xe2\x82"), "%E2%82") << "a truncated sequence";
}

TEST(Lanes, EveryTaskRunsOnceOnItsLaneAndTheThreadsStayForTheNextRun) {
  mailsync::util::Lanes lanes;
  for (const size_t count : {size_t{4}, size_t{32}, size_t{1}, size_t{8}}) {
    std::vector<std::atomic<int>> runs(100);
    std::vector<size_t> lane_of(100);
    std::set<std::thread::id> threads;
    std::mutex mutex;
    lanes.run(count, runs.size(), [&](size_t task, size_t lane) {
      ++runs[task];
      lane_of[task] = lane;
      std::lock_guard lock(mutex);
      threads.insert(std::this_thread::get_id());
    });
    for (size_t task = 0; task < runs.size(); ++task) {
      EXPECT_EQ(runs[task], 1) << "task " << task << " with " << count << " lanes";
      EXPECT_EQ(lane_of[task], task % count);
    }
    EXPECT_EQ(threads.size(), count);
    EXPECT_TRUE(threads.contains(std::this_thread::get_id())) << "lane 0 is the caller";
  }
  lanes.run(8, 3, [](size_t task, size_t lane) { EXPECT_EQ(task, lane) << "3 tasks, 3 lanes"; });
  lanes.run(8, 0, [](size_t, size_t) { ADD_FAILURE() << "no task, no call"; });
}

TEST(Lanes, AFailureIsThrownAfterEveryLaneEnded) {
  mailsync::util::Lanes lanes;
  std::atomic<int> finished{0};
  EXPECT_THROW(lanes.run(4, 40,
                         [&](size_t task, size_t) {
                           if (task == 1) throw std::runtime_error("lane 1 failed");
                           std::this_thread::sleep_for(std::chrono::milliseconds(1));
                           ++finished;
                         }),
               std::runtime_error);
  EXPECT_EQ(finished, 30) << "lane 1 stops at its failure; the other three lanes end their tasks";
  std::atomic<int> again{0};
  lanes.run(4, 8, [&](size_t, size_t) { ++again; });
  EXPECT_EQ(again, 8) << "usable after a failure";
}

TEST(PercentEncoding, KeepsTheUnreservedAndRoundTripsEveryByte) {
  using mailsync::util::percent_decode;
  using mailsync::util::percent_encode;
  EXPECT_EQ(percent_encode("ROUTE#a@b.c#FOLDER#B & <b>~_-"),
            "ROUTE%23a%40b.c%23FOLDER%23B%20%26%20%3Cb%3E~_-");
  std::string every;
  for (int c = 0; c < 256; ++c) every += static_cast<char>(c);
  EXPECT_EQ(percent_decode(percent_encode(every)), every);
  EXPECT_EQ(percent_decode("a+b%2Bc"), "a+b+c");
  EXPECT_EQ(percent_decode("a+b%2Bc", /*plus_is_space=*/true), "a b+c");
  EXPECT_EQ(percent_decode("100%zz%4"), "100%zz%4") << "not an escape: kept as it is";
}

TEST(UtcText, WritesTheInstantInUtcInTheFormatAsked) {
  const auto at = std::chrono::system_clock::time_point(std::chrono::seconds(1440938160));
  EXPECT_EQ(mailsync::util::utc_text(at), "2015-08-30T12:36:00Z");
  EXPECT_EQ(mailsync::util::utc_text(at, "%Y%m%dT%H%M%SZ"), "20150830T123600Z");
}
