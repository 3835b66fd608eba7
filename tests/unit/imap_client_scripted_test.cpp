// The IMAP client over an in-memory stream with a scripted server (imap::Client::over): how it
// talks to a server shaped like Outlook.com (no MULTIAPPEND, LITERAL+), without any server started.

#include <gtest/gtest.h>

#include "mailsync/imap/client.hpp"
#include "support/scripted_imap_stream.hpp"

namespace mailsync::imap {
namespace {

using testing::ScriptedCommand;
using testing::ScriptedImapStream;

// Outlook.com's capabilities after login (public client projects' captures; see issue 12).
constexpr const char* kOutlookGreeting =
    "* OK [CAPABILITY IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT "
    "CHILDREN IDLE NAMESPACE LITERAL+] The Microsoft Exchange IMAP4 service is ready.\r\n";

struct Scripted {
  ScriptedImapStream* stream;
  std::unique_ptr<Client> client;
};

Scripted connect(std::string greeting, ScriptedImapStream::Server server) {
  auto stream = std::make_unique<ScriptedImapStream>(std::move(greeting), std::move(server));
  ScriptedImapStream* raw = stream.get();
  return {raw, Client::over(std::move(stream))};
}

TEST(ImapClientScripted, WithoutMultiappendEachMessageIsItsOwnAppendAndKeepsItsOwnOutcome) {
  int appended = 0;
  auto s = connect(kOutlookGreeting, [&](const ScriptedCommand& c) -> std::string {
    if (!c.line.starts_with("APPEND")) return c.tag + " BAD unexpected\r\n";
    if (c.literals.at(0).find("big") != std::string::npos)
      return c.tag + " NO Maximum size of appendable message has been exceeded.\r\n";
    return c.tag + " OK [APPENDUID 5 " + std::to_string(10 + appended++) +
           "] APPEND completed.\r\n";
  });
  const std::string a = "Subject: a\r\n\r\na\r\n", big = "Subject: big\r\n\r\nbig\r\n",
                    b = "Subject: b\r\n\r\nb\r\n";
  const std::vector<AppendMessage> messages{{a}, {big}, {b}};
  const auto outcomes = s.client->append_many("Gmail/alice", messages);
  ASSERT_EQ(s.stream->commands.size(), 3u) << "no MULTIAPPEND: one APPEND per message";
  for (const auto& c : s.stream->commands) {
    EXPECT_EQ(c.literals.size(), 1u);
    EXPECT_NE(c.line.find("+}"), std::string::npos) << "LITERAL+: " << c.line;
  }
  EXPECT_EQ(s.stream->commands[0].literals[0], a) << "the bytes as given";
  ASSERT_EQ(outcomes.size(), 3u);
  EXPECT_EQ(std::get<AppendResult>(outcomes[0]).uid, 10u);
  const auto& refused = std::get<ImapError>(outcomes[1]);
  EXPECT_EQ(refused.status(), Status::kNo);
  EXPECT_NE(refused.text().find("Maximum size of appendable message"), std::string::npos);
  EXPECT_EQ(std::get<AppendResult>(outcomes[2]).uid, 11u);
  EXPECT_EQ(std::get<AppendResult>(outcomes[2]).uidvalidity, 5u);
}

// Outlook.com throttling in the middle of a pipeline: "BAD Request is throttled ..." then "* BYE
// Connection closed. 14". The answers before it are kept (before, the BYE threw them away), and
// the server is known to have stopped after the refusal.
std::string throttle_third(const ScriptedCommand& c, int& seen) {
  if (++seen < 3)
    return c.tag + " OK [APPENDUID 5 " + std::to_string(seen) + "] APPEND completed.\r\n";
  if (seen == 3)
    return c.tag +
           " BAD Request is throttled. Suggested Backoff Time: 89117 milliseconds\r\n"
           "* BYE Connection closed. 14\r\n";
  return "";  // closed: nothing more is answered
}

TEST(ImapClientScripted, AByeMidPipelineKeepsTheAnswersBeforeIt) {
  int seen = 0;
  auto s =
      connect(kOutlookGreeting, [&](const ScriptedCommand& c) { return throttle_third(c, seen); });
  const std::string m = "Subject: m\r\n\r\nm\r\n";
  const std::vector<AppendMessage> messages(5, AppendMessage{m});
  try {
    s.client->append_many("Gmail/alice", messages);
    FAIL() << "expected AppendInterrupted";
  } catch (const AppendInterrupted& e) {
    ASSERT_EQ(e.results.size(), 3u);
    EXPECT_EQ(std::get<AppendResult>(e.results[1]).uid, 2u);
    EXPECT_EQ(std::get<ImapError>(e.results[2]).status(), Status::kBad);
    EXPECT_TRUE(e.stopped_after_refusal());
    EXPECT_EQ(e.sent, 5u);
  }
}

// The same while the pipeline is still going out: the write fails first (the server stopped
// reading and reset the connection); the answers waiting in the receive buffer are still read.
TEST(ImapClientScripted, AWriteThatFailsMidPipelineStillReadsTheAnswersThatCame) {
  int seen = 0;
  auto s =
      connect(kOutlookGreeting, [&](const ScriptedCommand& c) { return throttle_third(c, seen); });
  const std::string m = "Subject: m\r\n\r\n" + std::string(1000, 'm') + "\r\n";
  s.stream->fail_writes_after = 3 * (m.size() + 60);  // inside the fourth APPEND
  const std::vector<AppendMessage> messages(5, AppendMessage{m});
  try {
    s.client->append_many("Gmail/alice", messages);
    FAIL() << "expected AppendInterrupted";
  } catch (const AppendInterrupted& e) {
    ASSERT_EQ(e.results.size(), 3u) << "the answers that came before the break";
    EXPECT_TRUE(e.stopped_after_refusal());
    EXPECT_EQ(e.sent, 3u) << "the fourth was cut off: never sent whole";
  }
}

// route_sync's lease check (may_send): between commands it ends the batch early; inside a command
// it cuts the command off, so the server never sees it complete and stores nothing of it.
TEST(ImapClientScripted, ToldToStopBetweenAppendsItSendsNothingMoreAndReturnsWhatWasSent) {
  auto s = connect(kOutlookGreeting, [](const ScriptedCommand& c) {
    return c.tag + " OK [APPENDUID 5 1] APPEND completed.\r\n";
  });
  int asked = 0;
  const std::string m = "Subject: m\r\n\r\nm\r\n";
  const std::vector<AppendMessage> messages{{m}, {m}, {m}};
  // Asked before the first command and before its CRLF; no before the second.
  const auto outcomes =
      s.client->append_many("Gmail/alice", messages, [&] { return ++asked <= 2; });
  EXPECT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(s.stream->commands.size(), 1u);
  EXPECT_EQ(asked, 3);
}

TEST(ImapClientScripted, ToldToStopInsideALiteralItCutsTheCommandOffUncompleted) {
  auto s = connect(kOutlookGreeting, [](const ScriptedCommand& c) {
    return c.tag + " OK [APPENDUID 5 1] APPEND completed.\r\n";
  });
  const std::string big = "Subject: big\r\n\r\n" + std::string(700 << 10, 'x') + "\r\n";
  int asked = 0;
  EXPECT_THROW(s.client->append_many("Gmail/alice", std::vector<AppendMessage>{{big}},
                                     [&] { return ++asked <= 2; }),  // the command, one piece
               SendStopped);
  EXPECT_TRUE(s.stream->commands.empty()) << "the server saw the APPEND complete";
}

TEST(ImapClientScripted, ToldToStopJustBeforeTheFinalCrlfItDoesNotCompleteTheAppend) {
  auto s = connect(kOutlookGreeting, [](const ScriptedCommand& c) {
    return c.tag + " OK [APPENDUID 5 1] APPEND completed.\r\n";
  });
  const std::string m = "Subject: m\r\n\r\nm\r\n";
  int asked = 0;
  EXPECT_THROW(s.client->append_many("Gmail/alice", std::vector<AppendMessage>{{m}},
                                     [&] { return ++asked <= 1; }),
               SendStopped);
  EXPECT_TRUE(s.stream->commands.empty());
}

// Issue 13: a bad INTERNALDATE threw after part of the pipeline was on the wire.
TEST(ImapClientScripted, ABadArgumentAnywhereInTheBatchThrowsBeforeAnythingIsSent) {
  auto s = connect(kOutlookGreeting, [](const ScriptedCommand& c) {
    return c.tag + " OK [APPENDUID 5 1] APPEND completed.\r\n";
  });
  const std::string m = "Subject: m\r\n\r\nm\r\n";
  const std::vector<AppendMessage> messages{{m, {}, "01-Jan-2026 10:00:00 +0000"},
                                            {m, {}, "01-Jan-2026 10:00:00 +0000"},
                                            {m, {}, "yesterday"}};
  EXPECT_THROW(s.client->append_many("Gmail/alice", messages), std::invalid_argument);
  EXPECT_TRUE(s.stream->commands.empty()) << "part of the batch went out";
}

// Issue 13: per-read timeouts only, so a server trickling a byte every few seconds held a job
// forever. A command's answer now has a bound that grows only with what actually arrives.
TEST(ImapClientScripted, AnAnswerTricklingInIsCutOffAtTheCommandTimeout) {
  auto stream =
      std::make_unique<ScriptedImapStream>(kOutlookGreeting, [](const ScriptedCommand& c) {
        return "* OK still working on it, slowly, very slowly\r\n" + c.tag + " OK NOOP done\r\n";
      });
  ScriptedImapStream* raw = stream.get();
  ClientOptions options;
  options.command_timeout = std::chrono::milliseconds(300);
  auto client = Client::over(std::move(stream), options);
  raw->trickle = std::chrono::milliseconds(20);  // ~60 bytes: 1.2 s
  const auto start = std::chrono::steady_clock::now();
  try {
    client->noop();
    ADD_FAILURE() << "the trickle was waited out";
  } catch (const net::TransportError& e) {
    EXPECT_EQ(e.kind(), net::TransportErrorKind::kTimeout);
    EXPECT_NE(std::string(e.what()).find("trickling"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(900));
}

TEST(ImapClientScripted, AnAppendWithoutAppenduidIsStoredWithItsUidUnknown) {
  auto s = connect(kOutlookGreeting,
                   [](const ScriptedCommand& c) { return c.tag + " OK APPEND completed.\r\n"; });
  const std::string m = "Subject: m\r\n\r\nm\r\n";
  const auto outcomes = s.client->append_many("Gmail/alice", std::vector<AppendMessage>{{m}});
  const auto& ok = std::get<AppendResult>(outcomes.at(0));
  EXPECT_FALSE(ok.uid.has_value());
}

TEST(ImapClientScripted, ExamineReadsUidvalidityAndUidnext) {
  auto s = connect("* OK ready\r\n", [](const ScriptedCommand& c) {
    return "* 3 EXISTS\r\n* OK [UIDVALIDITY 42] UIDs valid\r\n* OK [UIDNEXT 9] next\r\n" + c.tag +
           " OK [READ-ONLY] EXAMINE completed\r\n";
  });
  const MailboxInfo inbox = s.client->examine("INBOX");
  EXPECT_EQ(s.stream->commands.at(0).line, "EXAMINE INBOX");
  EXPECT_EQ(inbox.uidvalidity, 42u);
  EXPECT_EQ(inbox.uidnext, 9u);
  EXPECT_EQ(inbox.exists, 3u);
  EXPECT_TRUE(inbox.read_only);
}

TEST(ImapClientScripted, AByeGreetingIsAnImapErrorWithTheServersWords) {
  try {
    Client::over(
        std::make_unique<ScriptedImapStream>("* BYE Too many simultaneous connections\r\n",
                                             [](const ScriptedCommand&) { return std::string(); }));
    FAIL() << "no error";
  } catch (const ImapError& e) {
    EXPECT_EQ(e.status(), Status::kBye);
    EXPECT_NE(std::string(e.what()).find("Too many simultaneous connections"), std::string::npos);
  }
}

}  // namespace
}  // namespace mailsync::imap
