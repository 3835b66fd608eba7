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
  void body_begin(uint32_t, uint64_t) override {
    hash_ = Sha256();
    scanner_ = mailsync::mail::MessageIdScanner();
    bytes_ = 0;
    chunks_ = 0;
  }
  void body_data(std::string_view bytes) override {
    hash_.update(bytes);
    scanner_.feed(bytes);
    bytes_ += bytes.size();
    ++chunks_;
  }
  void fetched(const FetchData& data) override {
    if (!data.body_section || !data.uid) return;
    messages.push_back({*data.uid, bytes_, mailsync::util::to_hex(hash_.finish()),
                        data.internaldate.value_or(""), scanner_.result(), chunks_});
  }
  std::vector<Message> messages;

 private:
  Sha256 hash_;
  mailsync::mail::MessageIdScanner scanner_;
  uint64_t bytes_ = 0;
  int chunks_ = 0;
};

std::string message(const std::string& headers, const std::string& body) {
  return headers + "\r\n" + body;
}

// Messages that must come back exactly as sent. (Dovecot serves bare LF as CRLF and NUL as 0x80
// in BODY[], so none of these has either: byte-exactness is judged on what a server keeps.)
std::vector<std::pair<std::string, std::string>> tricky_messages() {
  std::string eight_bit_body;
  for (int i = 0; i < 4000; ++i) {
    const int c = 0x20 + (i * 37) % 0xdf;
    eight_bit_body += static_cast<char>(c == 0x7f ? 'x' : c);
    if (i % 70 == 69) eight_bit_body += "\r\n";
  }
  std::string attachment;
  std::mt19937 rng(42);
  std::string raw(30000, '\0');
  for (char& c : raw) c = static_cast<char>(rng());
  static const char* kB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < raw.size(); ++i) {
    attachment += kB64[static_cast<unsigned char>(raw[i]) % 64];
    if (i % 76 == 75) attachment += "\r\n";
  }
  return {
      {"8-bit headers",
       message("From: =?utf-8?q?J=C3=B6rg?= <j@example.com>\r\nSubject: Gr\xc3\xbc\xc3\x9f"
               "e aus K\xc3\xb6ln \xe2\x9c\x93\r\n"
               "X-Raw: \xe4\xf6\xfc\xff\r\nMessage-ID: <8bit@example.com>\r\n",
               "Hallo \xc3\xa4\xc3\xb6\xc3\xbc\r\n")},
      {"20 KB line", message("Message-ID: <long-line@example.com>\r\nSubject: long\r\n",
                             std::string(20000, 'L') + "\r\n")},
      {"long folded header", message(
                                 "Message-ID:\r\n <folded@example.com>\r\nReferences: " +
                                     [] {
                                       std::string refs;
                                       for (int i = 0; i < 200; ++i)
                                         refs += "<r" + std::to_string(i) + "@x>\r\n ";
                                       return refs;
                                     }() +
                                     "<end@x>\r\n",
                                 "body\r\n")},
      {"binary attachment",
       message("Message-ID: <attach@example.com>\r\nMIME-Version: 1.0\r\n"
               "Content-Type: multipart/mixed; boundary=b\r\n",
               "--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: "
               "base64\r\n\r\n" +
                   attachment + "\r\n--b--\r\n")},
      {"8-bit body",
       message("Message-ID: <8bit-body@example.com>\r\nContent-Transfer-Encoding: 8bit\r\n",
               eight_bit_body)},
      {"no message-id, bare CR, no final CRLF", message("Subject: x\r\n", "a\rb\r\nlast line")},
      {"headers only", "Message-ID: <headers-only@example.com>\r\nSubject: nothing else\r\n"},
  };
}

TEST(ImapClient, LogsInWithXoauth2OnBothServers) {
  for (const Server server : {Server::kGmail, Server::kOutlook}) {
    auto client = Client::connect(imap_options(server));
    EXPECT_TRUE(client->has("AUTH=XOAUTH2"));
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
