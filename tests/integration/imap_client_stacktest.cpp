// The IMAP client against the local stack's two Dovecot servers (IMAPS, XOAUTH2 via the emulator).

#include <gtest/gtest.h>

#include <future>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "mailsync/imap/client.hpp"
#include "mailsync/imap/utf7.hpp"
#include "mailsync/mail/rfc822.hpp"
#include "mailsync/util/sha256.hpp"
#include "support/corpus.hpp"
#include "support/process.hpp"
#include "support/stack.hpp"

namespace {

using namespace mailsync::imap;
using mailsync::testing::access_token;
using mailsync::testing::imap_options;
using mailsync::testing::imap_user;
using mailsync::testing::logged_in_client;
using mailsync::testing::Server;
using mailsync::testing::unique_name;
using mailsync::util::Sha256;

// Collects every fetched message: bytes hashed as they stream in, plus the metadata.
class CollectingSink : public FetchSink {
 public:
  struct Message {
    uint32_t uid = 0;
    uint64_t size = 0;
    std::string sha256;
    std::string internaldate;
    std::optional<std::string> message_id;
    int chunks = 0;
  };
  void body_begin(uint32_t seq, uint64_t) override { partial_[seq] = Partial(); }
  void body_data(uint32_t seq, std::string_view bytes) override {
    Partial& p = partial_[seq];
    p.hash.update(bytes);
    p.scanner.feed(bytes);
    p.bytes += bytes.size();
    ++p.chunks;
  }
  void fetched(const FetchData& data) override {
    const auto found = partial_.find(data.seq);
    if (!data.body_section || !data.uid || found == partial_.end()) return;
    Partial& p = found->second;
    messages.push_back({*data.uid, p.bytes, mailsync::util::to_hex(p.hash.finish()),
                        data.internaldate.value_or(""), p.scanner.result(), p.chunks});
    partial_.erase(found);
  }
  std::vector<Message> messages;

 private:
  struct Partial {
    Sha256 hash;
    mailsync::mail::MessageIdScanner scanner;
    uint64_t bytes = 0;
    int chunks = 0;
  };
  std::map<uint32_t, Partial> partial_;
};

using mailsync::testing::message;
using mailsync::testing::tricky_messages;

TEST(ImapClient, LogsInWithXoauth2OnBothServers) {
  for (const Server server : {Server::kGmail, Server::kOutlook}) {
    auto client = Client::connect(imap_options(server));
    if (client->capabilities().empty())
      client->refresh_capabilities();  // Gmail's greeting has none
    EXPECT_TRUE(client->has("AUTH=XOAUTH2"));
    EXPECT_TRUE(client->has("SASL-IR"));
    client->authenticate_xoauth2(imap_user(server), access_token(server));
    EXPECT_TRUE(client->authenticated());
    EXPECT_TRUE(client->has("UIDPLUS")) << "capabilities after login";
    EXPECT_TRUE(client->has("IDLE"));
    client->logout();
  }
}

TEST(ImapClient, LogsInWithOauthbearer) {
  auto client = Client::connect(imap_options(Server::kOutlook));
  client->authenticate_oauthbearer(imap_user(Server::kOutlook), access_token(Server::kOutlook));
  EXPECT_TRUE(client->authenticated());
}

TEST(ImapClient, ARevokedTokenFailsWithTheServersJsonErrorSurfaced) {
  const std::string refresh =
      mailsync::testing::mint_refresh_token(Server::kGmail, imap_user(Server::kGmail));
  const std::string token =
      nlohmann::json::parse(mailsync::testing::refresh_grant(Server::kGmail, refresh).body)
          .value("access_token", "");
  mailsync::testing::emulator_admin("/admin/revoke",
                                    nlohmann::json{{"access_token", token}}.dump());
  auto client = Client::connect(imap_options(Server::kGmail));
  try {
    client->authenticate_xoauth2(imap_user(Server::kGmail), token);
    FAIL() << "a revoked token logged in";
  } catch (const ImapError& e) {
    EXPECT_EQ(e.status(), Status::kNo);
    EXPECT_TRUE(e.has_code("AUTHENTICATIONFAILED")) << e.what();
    EXPECT_NE(e.text().find("server said: {"), std::string::npos) << e.what();
    EXPECT_NE(e.text().find("\"status\""), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find(token), std::string::npos)
        << "the token leaked into the error";
    EXPECT_EQ(classify(e).kind, ErrorClass::Kind::kAuth);
  }
}

TEST(ImapClient, LogsInWithAPasswordOnAGenericServer) {
  auto client = Client::connect(imap_options(Server::kGmail));
  client->login(imap_user(Server::kGmail),
                mailsync::testing::stack_env("MAILSYNC_STACK_IMAP_PASSWORD"));
  EXPECT_TRUE(client->authenticated());
  EXPECT_THROW(
      Client::connect(imap_options(Server::kGmail))->login(imap_user(Server::kGmail), "wrong"),
      ImapError);
}

TEST(ImapClient, StartTlsUpgradesAPlainConnectionAndVerifiesTheCertificate) {
  ClientOptions options = imap_options(Server::kGmail);
  options.port = static_cast<uint16_t>(
      std::stoi(mailsync::testing::stack_env("MAILSYNC_STACK_GMAIL_STARTTLS_PORT")));
  options.security = ClientOptions::Security::kStartTls;
  auto client = Client::connect(options);
  EXPECT_FALSE(client->has("STARTTLS")) << "capabilities must be those after TLS";
  client->authenticate_xoauth2(imap_user(Server::kGmail), access_token(Server::kGmail));
  EXPECT_GT(client->examine("INBOX").uidvalidity, 0u);

  options.tls.ca_file.clear();
  EXPECT_THROW(Client::connect(options), mailsync::net::TransportError);
}

TEST(ImapClient, PlaintextIsRefusedForAnythingButLoopback) {
  ClientOptions options;
  options.host = "192.0.2.1";  // TEST-NET-1: never reached, the check comes first
  options.port = 143;
  options.security = ClientOptions::Security::kPlainLoopback;
  try {
    Client::connect(options);
    FAIL();
  } catch (const mailsync::net::TransportError& e) {
    EXPECT_NE(std::string(e.what()).find("not a loopback address"), std::string::npos) << e.what();
  }
}

TEST(ImapClient, ExamineReadsUidvalidityReadOnly) {
  auto client = logged_in_client(Server::kGmail);
  const MailboxInfo inbox = client->examine("INBOX");
  EXPECT_GT(inbox.uidvalidity, 0u);
  EXPECT_GT(inbox.uidnext, 0u);
  EXPECT_TRUE(inbox.read_only);
  EXPECT_FALSE(client->select("INBOX").read_only);
}

TEST(ImapClient, CreatesFoldersWithUnicodeNamesOnceAndListsThem) {
  auto client = logged_in_client(Server::kOutlook);
  for (const std::string& name :
       {unique_name("Gmail/Entw\xc3\xbc"
                    "rfe"),
        unique_name("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"), unique_name("Tom & \"Jerry\"")}) {
    EXPECT_TRUE(client->create(name)) << name;
    EXPECT_FALSE(client->create(name)) << "a second CREATE reports that it already exists";
    const auto listed = client->list("", name);
    ASSERT_EQ(listed.size(), 1u) << name;
    EXPECT_EQ(decode_mailbox_name(listed[0].name), name);
    EXPECT_GT(client->examine(name).uidvalidity, 0u);
  }
}

TEST(ImapClient, RefusesArgumentsWithLineBreaksBeforeSendingAnything) {
  auto client = logged_in_client(Server::kOutlook);
  EXPECT_THROW(client->create("evil\r\nA1 DELETE INBOX"), std::invalid_argument);
  EXPECT_THROW(client->examine(std::string("nul\0name", 8)), std::invalid_argument);
  EXPECT_THROW(SearchCriteria::header("Message-ID", "<a@b>\r\nX"), std::invalid_argument);
  client->noop();  // still in step with the server
}

TEST(ImapClient, AppendThenFetchReturnsTheSameBytes) {
  auto client = logged_in_client(Server::kOutlook);
  const std::string folder = unique_name("Fidelity");
  client->create(folder);
  const std::string date = "17-Jul-1996 02:44:25 -0700";
  std::map<uint32_t, std::pair<std::string, std::string>> sent;  // uid -> (name, sha256)
  uint32_t uidvalidity = 0;
  for (const auto& [name, bytes] : tricky_messages()) {
    const AppendResult appended = client->append(folder, {bytes, {}, date});
    ASSERT_TRUE(appended.uid.has_value()) << name << ": no APPENDUID";
    uidvalidity = *appended.uidvalidity;
    sent[*appended.uid] = {name, Sha256::hex_of(bytes)};
  }
  EXPECT_EQ(client->examine(folder).uidvalidity, uidvalidity);
  CollectingSink sink;
  client->uid_fetch("1:*", "(UID RFC822.SIZE INTERNALDATE BODY.PEEK[])", sink);
  ASSERT_EQ(sink.messages.size(), sent.size());
  for (const auto& m : sink.messages) {
    ASSERT_TRUE(sent.contains(m.uid));
    EXPECT_EQ(m.sha256, sent[m.uid].second) << sent[m.uid].first << " came back altered";
    EXPECT_EQ(mailsync::mail::parse_internaldate(m.internaldate)->instant,
              mailsync::mail::parse_internaldate(date)->instant)
        << sent[m.uid].first;
  }
}

TEST(ImapClient, StreamsATwentyMegabyteMessageThrough) {
  auto client = logged_in_client(Server::kOutlook);
  const std::string folder = unique_name("Large");
  client->create(folder);
  std::string body;
  body.reserve(20 << 20);
  std::mt19937 rng(7);
  while (body.size() < (20u << 20)) {
    for (int i = 0; i < 998; ++i) body += static_cast<char>('!' + rng() % 90);
    body += "\r\n";
  }
  const std::string bytes = message("Message-ID: <twenty@example.com>\r\nSubject: big\r\n", body);
  const AppendResult appended = client->append(folder, {bytes});
  ASSERT_TRUE(appended.uid);
  client->examine(folder);
  CollectingSink sink;
  client->uid_fetch(std::to_string(*appended.uid), "(UID BODY.PEEK[])", sink);
  ASSERT_EQ(sink.messages.size(), 1u);
  EXPECT_EQ(sink.messages[0].size, bytes.size());
  EXPECT_EQ(sink.messages[0].sha256, Sha256::hex_of(bytes));
  EXPECT_EQ(sink.messages[0].message_id, "<twenty@example.com>");
  EXPECT_GT(sink.messages[0].chunks, 10) << "the body was not streamed";
}

TEST(ImapClient, FetchesSmallAndStreamedBodiesInterleavedInOneCommand) {
  // A large body starts streaming while the small message before it is still queued: the bytes
  // must not be mixed up (found by comparing a whole sync end to end).
  auto client = logged_in_client(Server::kOutlook);
  const std::string folder = unique_name("Interleaved");
  client->create(folder);
  std::map<uint32_t, std::string> sent;
  for (int i = 0; i < 8; ++i) {
    const size_t size = i % 2 == 0 ? 300 : 200'000 + static_cast<size_t>(i) * 1000;
    std::string body;
    while (body.size() < size)
      body += "line " + std::to_string(body.size()) + " of message " + std::to_string(i) + "\r\n";
    const std::string bytes = message("Message-ID: <mix" + std::to_string(i) + "@x>\r\n", body);
    sent[*client->append(folder, {bytes}).uid] = Sha256::hex_of(bytes);
  }
  client->examine(folder);
  CollectingSink sink;
  client->uid_fetch("1:*", "(UID BODY.PEEK[])", sink);
  ASSERT_EQ(sink.messages.size(), sent.size());
  for (const auto& m : sink.messages)
    EXPECT_EQ(m.sha256, sent[m.uid]) << "UID " << m.uid << " came back altered";
}

TEST(ImapClient, PipelinedAppendsReturnOneUidEachAndAFailureDoesNotStopTheRest) {
  auto client = logged_in_client(Server::kOutlook);
  ASSERT_TRUE(client->has("LITERAL+"));
  const std::string folder = unique_name("Batch");
  client->create(folder);
  std::vector<std::string> bodies;
  for (int i = 0; i < 50; ++i)
    bodies.push_back(message("Message-ID: <b" + std::to_string(i) + "@x>\r\n", "n\r\n"));
  std::vector<AppendMessage> batch;
  for (const auto& b : bodies) batch.push_back({b, {"\\Seen"}});
  const auto results = client->append_many(folder, batch);
  ASSERT_EQ(results.size(), 50u);
  uint32_t previous = 0;
  for (const auto& r : results) {
    const auto* ok = std::get_if<AppendResult>(&r);
    ASSERT_NE(ok, nullptr);
    EXPECT_GT(*ok->uid, previous);
    previous = *ok->uid;
  }
  const auto mixed =
      client->append_many(unique_name("Missing"), std::vector<AppendMessage>{{bodies[0]}});
  const auto* refused = std::get_if<ImapError>(&mixed[0]);
  ASSERT_NE(refused, nullptr);
  EXPECT_TRUE(refused->has_code("TRYCREATE")) << refused->what();
  EXPECT_EQ(classify(*refused).reason, "no_such_mailbox");
}

TEST(ImapClient, ARefusedMessageInAMultiappendBatchDoesNotStopTheOthers) {
  // Dovecot itself: Outlook.com has no MULTIAPPEND, a self-hosted destination may.
  auto client = Client::connect(mailsync::testing::dovecot_options(Server::kOutlook));
  client->authenticate_xoauth2(imap_user(Server::kOutlook), access_token(Server::kOutlook));
  ASSERT_TRUE(client->has("MULTIAPPEND"));
  const std::string folder = unique_name("Multi");
  client->create(folder);
  const std::string first = message("Message-ID: <m1@x>\r\n", "one\r\n");
  const std::string second = message("Message-ID: <m2@x>\r\n", "two\r\n");
  // Dovecot refuses a zero-byte message: the batch as a whole is refused (RFC 3502 is all or
  // nothing) and goes again one message at a time.
  const auto results =
      client->append_many(folder, std::vector<AppendMessage>{{first}, {""}, {second}});
  ASSERT_EQ(results.size(), 3u);
  EXPECT_TRUE(std::holds_alternative<AppendResult>(results[0]));
  EXPECT_TRUE(std::holds_alternative<ImapError>(results[1]));
  EXPECT_TRUE(std::holds_alternative<AppendResult>(results[2]));
  EXPECT_EQ(client->examine(folder).exists, 2u);
  // And a clean batch comes back with one UID per message, in order.
  const auto batch =
      client->append_many(folder, std::vector<AppendMessage>{{first}, {second}, {first}});
  ASSERT_EQ(batch.size(), 3u);
  EXPECT_EQ(*std::get<AppendResult>(batch[1]).uid, *std::get<AppendResult>(batch[0]).uid + 1);
  EXPECT_EQ(*std::get<AppendResult>(batch[2]).uid, *std::get<AppendResult>(batch[1]).uid + 1);
}

TEST(ImapClient, SearchesByUidRangeHeaderAndDate) {
  auto client = logged_in_client(Server::kOutlook);
  const std::string folder = unique_name("Search");
  client->create(folder);
  std::vector<uint32_t> uids;
  for (int i = 0; i < 5; ++i)
    uids.push_back(
        *client
             ->append(folder, {message("Message-ID: <s" + std::to_string(i) + "@x>\r\n", "x\r\n")})
             .uid);
  client->examine(folder);
  EXPECT_EQ(client->uid_search(SearchCriteria::all()), uids);
  EXPECT_EQ(client->uid_search(SearchCriteria::uid_range(uids[2])),
            std::vector<uint32_t>(uids.begin() + 2, uids.end()));
  EXPECT_EQ(client->uid_search(SearchCriteria::header("Message-ID", "<s3@x>")),
            std::vector<uint32_t>{uids[3]});
  EXPECT_EQ(client->uid_search(
                SearchCriteria::since(std::chrono::system_clock::now() - std::chrono::hours(48))),
            uids);
  EXPECT_TRUE(client
                  ->uid_search(SearchCriteria::since(std::chrono::system_clock::now() +
                                                     std::chrono::hours(72)))
                  .empty());
}

TEST(ImapClient, IdleSeesAMessageAppendedFromAnotherConnection) {
  const std::string folder = unique_name("Idle");
  auto watcher = logged_in_client(Server::kOutlook);
  watcher->create(folder);
  watcher->select(folder);
  auto appender = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    logged_in_client(Server::kOutlook)->append(folder, {"Subject: ping\r\n\r\nping\r\n"});
  });
  uint32_t exists = 0;
  const bool woke = watcher->idle(std::chrono::seconds(20), [&](const Response& r) {
    if (const auto* count = std::get_if<CountData>(&r);
        count && count->kind == CountData::Kind::kExists) {
      exists = count->number;
      return false;
    }
    return true;
  });
  appender.get();
  EXPECT_TRUE(woke);
  EXPECT_EQ(exists, 1u);
  watcher->noop();  // the connection is usable after DONE
}

TEST(ImapClient, IdleReturnsAtItsTimeoutWhenNothingHappens) {
  auto watcher = logged_in_client(Server::kOutlook);
  watcher->select("INBOX");
  EXPECT_FALSE(watcher->idle(std::chrono::milliseconds(300), [](const Response&) { return true; }));
  watcher->noop();
}

}  // namespace
