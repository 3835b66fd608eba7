#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "mailsync/imap/errors.hpp"
#include "mailsync/imap/parser.hpp"
#include "mailsync/imap/response.hpp"
#include "mailsync/net/tls_stream.hpp"

// An IMAP4rev1 client (RFC 3501, with UIDPLUS, LITERAL+, SASL-IR, IDLE, ESEARCH, X-GM-EXT-1 where
// offered): one connection, used by one thread. Commands return data or throw ImapError (the
// server's NO/BAD/BYE, verbatim), ProtocolError, or net::TransportError; classify() judges them.
// Every argument is checked before anything is sent: CR, LF and NUL are refused.
namespace mailsync::imap {

struct ClientOptions {
  std::string host;
  uint16_t port = 993;
  enum class Security {
    kImplicitTls,    // IMAPS (993)
    kStartTls,       // plain connect, then STARTTLS (RFC 3501 6.2.1) before anything else
    kPlainLoopback,  // no TLS at all; refused unless the host is a loopback address (tests)
  } security = Security::kImplicitTls;
  net::TlsOptions tls;
  ParserLimits limits;
  // An answer may take this long from the last byte sent, plus one second per 16 KiB received,
  // whatever each read's own timeout (tls.io_timeout): a server trickling a byte every few
  // seconds is cut off, a large FETCH is not. IDLE's wait is exempt (it has its own).
  std::chrono::milliseconds command_timeout{120'000};
};

struct MailboxInfo {
  uint32_t uidvalidity = 0;
  uint32_t uidnext = 0;  // 0 when the server did not say
  uint32_t exists = 0;
  bool read_only = false;
  std::vector<std::string> flags;
};

struct AppendMessage {
  std::string_view bytes;                   // the message exactly as it is to be stored
  std::vector<std::string> flags;           // e.g. {"\\Seen"}; empty: unread
  std::optional<std::string> internaldate;  // "17-Jul-1996 02:44:25 -0700"; empty: the server's now
};

struct AppendResult {
  std::optional<uint32_t> uidvalidity;  // APPENDUID, when the server has UIDPLUS
  std::optional<uint32_t> uid;
};

// One result per message of append_many(): the APPENDUID, or why the server refused it.
using AppendOutcome = std::variant<AppendResult, ImapError>;

// append_many() lost its connection before every answer came: the server said BYE (Outlook after
// "BAD Request is throttled. Suggested Backoff Time: N milliseconds": "* BYE Connection closed.
// 14"), or the transport broke. What did arrive is kept: `results` are the answers to the first
// results.size() messages, in order; `sent` messages had their command sent whole. The ones sent
// but unanswered may or may not be stored, unless the server refused the last one answered and
// then closed: a server answers in order and closes after what it refused, so it processed none
// of them (stopped_after_refusal()). The rest were never sent. `cause` is the BYE or transport
// error, for classify().
class AppendInterrupted : public std::runtime_error {
 public:
  AppendInterrupted(std::vector<AppendOutcome> answered, size_t sent_whole, std::exception_ptr why,
                    const std::string& what)
      : std::runtime_error(what),
        results(std::move(answered)),
        sent(sent_whole),
        cause(std::move(why)) {}
  bool stopped_after_refusal() const {
    return !results.empty() && std::holds_alternative<ImapError>(results.back()) &&
           std::get<ImapError>(results.back()).status() != Status::kBye;
  }

  std::vector<AppendOutcome> results;
  size_t sent = 0;
  std::exception_ptr cause;
};

// Receives what UID FETCH returns. Bodies arrive as body_begin / body_data (streamed as they come
// when large, in one piece when small); fetched() follows with the rest of the FETCH response
// (UID, size, INTERNALDATE, flags, X-GM-MSGID), also for FETCH responses without a body. A large
// body may begin streaming before the fetched() of the message before it: every call carries the
// FETCH's sequence number, and implementations keep their state per sequence number.
class FetchSink {
 public:
  virtual ~FetchSink() = default;
  virtual void body_begin(uint32_t seq, uint64_t size) = 0;
  virtual void body_data(uint32_t seq, std::string_view bytes) = 0;
  virtual void fetched(const FetchData& data) = 0;
};

// Search criteria (RFC 3501 6.4.4), built from checked pieces.
class SearchCriteria {
 public:
  static SearchCriteria all() { return SearchCriteria("ALL"); }
  // UID first:last; no `last` means "*" (everything from first on).
  static SearchCriteria uid_range(uint32_t first, std::optional<uint32_t> last = std::nullopt);
  // SINCE date: messages whose INTERNALDATE is on or after that day (server's time zone).
  static SearchCriteria since(std::chrono::system_clock::time_point day);
  // HEADER name value (substring match). Throws std::invalid_argument for CR/LF/NUL or non-ASCII.
  static SearchCriteria header(std::string_view name, std::string_view value);
  // LARGER low-1 SMALLER high+1: RFC822.SIZE within [low, high].
  static SearchCriteria size_between(uint64_t low, uint64_t high);
  SearchCriteria operator&&(const SearchCriteria& other) const {
    return SearchCriteria(text_ + " " + other.text_);
  }
  const std::string& text() const { return text_; }

 private:
  explicit SearchCriteria(std::string text) : text_(std::move(text)) {}
  std::string text_;
};

class Client {
 public:
  // Connects and reads the greeting. A BYE greeting throws ImapError.
  static std::unique_ptr<Client> connect(const ClientOptions& options);
  // Over a stream that is already connected (go-imap's imapclient.New(conn)): reads the greeting.
  // For tests over in-memory streams and for transports made elsewhere.
  static std::unique_ptr<Client> over(std::unique_ptr<net::Stream> stream,
                                      const ClientOptions& options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Capabilities as last announced (greeting, CAPABILITY response code, or CAPABILITY command).
  const std::set<std::string>& capabilities() const { return capabilities_; }
  bool has(std::string_view capability) const;
  void refresh_capabilities();  // CAPABILITY

  // SASL XOAUTH2 (Google, Microsoft). On failure the server first sends a "+" challenge with a
  // base64 JSON error; it is answered and its JSON included in the ImapError's text.
  void authenticate_xoauth2(std::string_view user, std::string_view access_token);
  // SASL OAUTHBEARER (RFC 7628).
  void authenticate_oauthbearer(std::string_view user, std::string_view access_token);
  void login(std::string_view user, std::string_view password);  // LOGIN, or AUTHENTICATE PLAIN
  bool authenticated() const { return authenticated_; }

  MailboxInfo examine(std::string_view mailbox);  // read-only: the source is never changed
  MailboxInfo select(std::string_view mailbox);

  // UID SEARCH; the UIDs in ascending order. At most `limit` (a hostile server could claim 4
  // billion).
  std::vector<uint32_t> uid_search(const SearchCriteria& criteria, size_t limit = 10'000'000);

  // UID FETCH `uid_set` (e.g. "1:500") with `items` (e.g. "(UID RFC822.SIZE INTERNALDATE
  // BODY.PEEK[])").
  void uid_fetch(std::string_view uid_set, std::string_view items, FetchSink& sink);

  // APPEND one message. Throws ImapError when refused.
  AppendResult append(std::string_view mailbox, const AppendMessage& message);
  // APPEND several, pipelined when the server has LITERAL+ (one round trip for the batch);
  // one refusal does not stop the others. `may_send`, when given, is asked before each command
  // goes out: once it says no, nothing more is sent, the answers to what was sent are read, and
  // the result is shorter than `messages` (the rest were never sent). It is also asked inside a
  // command (before each 256 KiB of a literal and before the final CRLF); a no there cuts the
  // command off and throws SendStopped (the connection is then unusable). route_sync stops this
  // way when its lease is no longer fresh. A BYE or a broken connection before every answer came
  // throws AppendInterrupted with the answers that did.
  std::vector<AppendOutcome> append_many(std::string_view mailbox,
                                         std::span<const AppendMessage> messages,
                                         const std::function<bool()>& may_send = {});

  // CREATE; false when the mailbox already existed.
  bool create(std::string_view mailbox);
  std::vector<ListData> list(std::string_view reference, std::string_view pattern);
  void noop();
  // NAMESPACE (RFC 2342), answer ignored: the first command of a new login, to learn whether the
  // mailbox is usable (Outlook.com: "BAD User is authenticated but not connected.").
  void probe_namespace();

  // IDLE (RFC 2177): passes untagged responses to `on_event` until it returns false or `timeout`
  // passes, then DONE. Returns true when on_event ended it. `keep_going`, when given, is asked
  // every `slice` while nothing arrives (cancellation); false ends the wait as the timeout does.
  // DONE's answer is bounded by command_timeout: a server that went silent is found there.
  bool idle(std::chrono::milliseconds timeout, const std::function<bool(const Response&)>& on_event,
            const std::function<bool()>& keep_going = {},
            std::chrono::milliseconds slice = std::chrono::milliseconds(500));

  void logout();  // best effort; the connection is closed afterwards

  // Largest message the server accepts (APPENDLIMIT, RFC 7889), if it says.
  std::optional<uint64_t> append_limit() const;

 private:
  using UntaggedHandler = std::function<void(Response&)>;
  Client(std::unique_ptr<net::Stream> stream, const ClientOptions& options);

  std::string next_tag();
  Response read_response();
  void send(std::string_view bytes);
  StatusResponse wait_tagged(const std::string& tag, const std::string& command,
                             const UntaggedHandler& handler);
  StatusResponse run(const std::string& command, const std::string& arguments,
                     const UntaggedHandler& handler = nullptr);
  void note(const Response& response);  // capabilities and BYE from any response
  void read_greeting();
  void start_tls(const ClientOptions& options);
  void authenticate(const std::string& mechanism, const std::string& initial_response);
  MailboxInfo open_mailbox(const std::string& command, std::string_view mailbox);
  void append_pipeline(std::string_view mailbox, std::span<const AppendMessage> messages,
                       const std::function<bool()>& may_send, std::vector<AppendOutcome>& results,
                       size_t& sent);

  std::unique_ptr<net::Stream> stream_;
  ResponseParser parser_;
  std::set<std::string> capabilities_;
  std::optional<StatusResponse> bye_;
  std::string host_;
  uint16_t port_;
  uint64_t tag_counter_ = 0;
  bool authenticated_ = false;
  std::vector<char> read_buffer_;
  std::chrono::milliseconds command_timeout_;
  std::chrono::steady_clock::time_point command_started_ = std::chrono::steady_clock::now();
  uint64_t command_bytes_ = 0;  // received since command_started_
  bool idling_ = false;         // IDLE's wait: bounded by its own timeout, not command_timeout
};

// A mailbox name as an IMAP astring: modified UTF-7, quoted. Throws std::invalid_argument for CR,
// LF, NUL or invalid UTF-8.
std::string encode_mailbox_argument(std::string_view utf8_name);

}  // namespace mailsync::imap
