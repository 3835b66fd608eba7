// The IMAP client: connection, command/response core, authentication, mailboxes, IDLE.
// Searching, fetching and appending are in client_messages.cpp.

#include "mailsync/imap/client.hpp"

#include <algorithm>

#include "imap/arguments.hpp"
#include "mailsync/imap/utf7.hpp"
#include "mailsync/util/base64.hpp"
#include "mailsync/util/strings.hpp"

namespace mailsync::imap {

namespace {}  // namespace

std::string encode_mailbox_argument(std::string_view utf8_name) {
  detail::check_argument(utf8_name, "mailbox name");
  if (utf8_name.empty()) throw std::invalid_argument("mailbox name is empty");
  const auto encoded = encode_mailbox_name(utf8_name);
  if (!encoded) throw std::invalid_argument("mailbox name is not valid UTF-8");
  // INBOX is case-insensitive (RFC 3501 5.1); send it as the server knows it.
  if (util::ascii_upper(*encoded) == "INBOX") return "INBOX";
  return detail::quote(*encoded);
}

Client::Client(std::unique_ptr<net::Stream> stream, const ClientOptions& options)
    : stream_(std::move(stream)),
      parser_(options.limits),
      host_(options.host),
      port_(options.port),
      read_buffer_(size_t{256} * 1024),
      command_timeout_(options.command_timeout) {}

Client::~Client() = default;

std::unique_ptr<Client> Client::connect(const ClientOptions& options) {
  std::unique_ptr<net::Stream> stream;
  switch (options.security) {
    case ClientOptions::Security::kImplicitTls:
      stream = net::TlsStream::connect(options.host, options.port, options.tls);
      break;
    case ClientOptions::Security::kStartTls:
      stream = net::PlainStream::for_starttls(
          net::Socket::connect(options.host, options.port, options.tls.connect_timeout),
          options.tls.io_timeout);
      break;
    case ClientOptions::Security::kPlainLoopback:
      stream = net::PlainStream::connect_loopback(
          options.host, options.port, options.tls.connect_timeout, options.tls.io_timeout);
      break;
  }
  std::unique_ptr<Client> client(new Client(std::move(stream), options));
  client->read_greeting();
  if (options.security == ClientOptions::Security::kStartTls) client->start_tls(options);
  return client;
}

std::unique_ptr<Client> Client::over(std::unique_ptr<net::Stream> stream,
                                     const ClientOptions& options) {
  std::unique_ptr<Client> client(new Client(std::move(stream), options));
  client->read_greeting();
  return client;
}

void Client::read_greeting() {
  Response greeting = read_response();
  const auto* status = std::get_if<StatusResponse>(&greeting);
  if (status == nullptr || status->tag != "*")
    throw ProtocolError("the server's greeting is not a status response");
  note(greeting);
  if (status->status == Status::kBye)
    throw ImapError("CONNECT", Status::kBye, status->code, status->text);
  if (status->status == Status::kPreauth) authenticated_ = true;
  if (status->status != Status::kOk && status->status != Status::kPreauth)
    throw ProtocolError("the server's greeting is neither OK, PREAUTH nor BYE");
}

void Client::start_tls(const ClientOptions& options) {
  if (capabilities_.empty()) refresh_capabilities();
  if (!has("STARTTLS")) throw ProtocolError(host_ + " does not offer STARTTLS");
  run("STARTTLS", "STARTTLS");
  // Anything the server sent after its OK and before the handshake would be injected plaintext
  // (CVE-2011-0411 and kin): refuse rather than read it as if it came through TLS.
  if (parser_.pending_bytes() > 0)
    throw ProtocolError("the server sent data before the TLS handshake");
  auto* plain = dynamic_cast<net::PlainStream*>(stream_.get());
  net::Socket socket = std::move(*plain).release();
  stream_ = net::TlsStream::upgrade(std::move(socket), options.host, options.tls);
  capabilities_.clear();  // capabilities before TLS are not to be trusted (RFC 3501 6.2.1)
  refresh_capabilities();
}

bool Client::has(std::string_view capability) const {
  return capabilities_.contains(util::ascii_upper(capability));
}

std::optional<uint64_t> Client::append_limit() const {
  for (const auto& capability : capabilities_) {
    if (!capability.starts_with("APPENDLIMIT=")) continue;
    uint64_t value = 0;
    for (const char c : capability.substr(12)) {
      if (c < '0' || c > '9' || value > UINT64_MAX / 10) return std::nullopt;
      value = value * 10 + static_cast<uint64_t>(c - '0');
    }
    return value;
  }
  return std::nullopt;
}

std::string Client::next_tag() {
  command_started_ = std::chrono::steady_clock::now();
  command_bytes_ = 0;
  return "m" + std::to_string(++tag_counter_);
}

void Client::send(std::string_view bytes) {
  stream_->write_all(bytes);
  // The answer is awaited from when the last byte went out (a slow upload is not the server's
  // answer taking long).
  command_started_ = std::chrono::steady_clock::now();
  command_bytes_ = 0;
}

Response Client::read_response() {
  for (;;) {
    if (auto response = parser_.next()) return std::move(*response);
    if (!idling_) {
      const auto allowed = command_timeout_ + std::chrono::seconds(command_bytes_ / (16 << 10));
      const auto taken = std::chrono::steady_clock::now() - command_started_;
      if (taken > allowed)
        throw net::TransportError(
            net::TransportErrorKind::kTimeout,
            "no complete answer from " + host_ + " after " +
                std::to_string(std::chrono::duration_cast<std::chrono::seconds>(taken).count()) +
                " s (" + std::to_string(command_bytes_) +
                " bytes received: trickling); gave up on the connection");
    }
    size_t n;
    try {
      n = stream_->read_some(read_buffer_.data(), read_buffer_.size());
    } catch (const net::TransportError& e) {
      // The server said BYE and closed: report what it said rather than "connection closed".
      if (bye_ && e.kind() == net::TransportErrorKind::kClosed)
        throw ImapError("connection", Status::kBye, bye_->code, bye_->text);
      throw;
    }
    command_bytes_ += n;
    try {
      parser_.feed(std::string_view(read_buffer_.data(), n));
    } catch (const ParseError& e) {
      throw ProtocolError(std::string("unreadable response from ") + host_ + ": " + e.what());
    }
  }
}

void Client::note(const Response& response) {
  if (const auto* capability = std::get_if<CapabilityData>(&response)) {
    capabilities_ =
        std::set<std::string>(capability->capabilities.begin(), capability->capabilities.end());
  } else if (const auto* status = std::get_if<StatusResponse>(&response)) {
    if (status->code && status->code->name == "CAPABILITY")
      capabilities_ = std::set<std::string>(status->code->capabilities.begin(),
                                            status->code->capabilities.end());
    if (status->tag == "*" && status->status == Status::kBye) bye_ = *status;
  }
}

StatusResponse Client::wait_tagged(const std::string& tag, const std::string& command,
                                   const UntaggedHandler& handler) {
  for (;;) {
    Response response = read_response();
    note(response);
    if (auto* status = std::get_if<StatusResponse>(&response);
        status != nullptr && status->tag == tag) {
      if (status->status != Status::kOk)
        throw ImapError(command, status->status, status->code, status->text);
      return std::move(*status);
    }
    if (std::holds_alternative<Continuation>(response))
      throw ProtocolError("unexpected continuation request during " + command);
    if (handler) handler(response);
  }
}

StatusResponse Client::run(const std::string& command, const std::string& arguments,
                           const UntaggedHandler& handler) {
  const std::string tag = next_tag();
  send(tag + " " + arguments + "\r\n");
  return wait_tagged(tag, command, handler);
}

void Client::refresh_capabilities() {
  run("CAPABILITY", "CAPABILITY");
}

void Client::authenticate(const std::string& mechanism, const std::string& initial_response) {
  if (capabilities_.empty()) refresh_capabilities();
  const std::string tag = next_tag();
  const bool sasl_ir = has("SASL-IR");
  send(tag + " AUTHENTICATE " + mechanism + (sasl_ir ? " " + initial_response : "") + "\r\n");
  bool sent_initial = sasl_ir;
  std::string challenge_error;  // the JSON of a failed OAuth login
  for (;;) {
    Response response = read_response();
    note(response);
    if (auto* continuation = std::get_if<Continuation>(&response)) {
      if (!sent_initial) {
        send(initial_response + "\r\n");
        sent_initial = true;
      } else {
        // RFC 7628 3.2.3 / Google's XOAUTH2: the error comes as a challenge; answer with an empty
        // response (XOAUTH2) or %x01 (OAUTHBEARER) and the server sends the tagged NO.
        challenge_error = util::base64_decode(continuation->text).value_or(continuation->text);
        for (char& c : challenge_error)
          if (static_cast<unsigned char>(c) < 0x20) c = ' ';
        send(mechanism == "OAUTHBEARER" ? util::base64_encode("\x01") + "\r\n" : "\r\n");
      }
      continue;
    }
    auto* status = std::get_if<StatusResponse>(&response);
    if (status == nullptr || status->tag != tag) continue;
    if (status->status != Status::kOk) {
      std::string text = status->text;
      if (!challenge_error.empty()) text += " (server said: " + challenge_error + ")";
      throw ImapError("AUTHENTICATE", status->status, status->code, text);
    }
    authenticated_ = true;
    // Capabilities change after login; servers usually announce them in the OK.
    if (!status->code || status->code->name != "CAPABILITY") refresh_capabilities();
    return;
  }
}

void Client::authenticate_xoauth2(std::string_view user, std::string_view access_token) {
  detail::check_argument(user, "user");
  detail::check_argument(access_token, "access token");
  authenticate("XOAUTH2", util::base64_encode("user=" + std::string(user) +
                                              "\x01"
                                              "auth=Bearer " +
                                              std::string(access_token) + "\x01\x01"));
}

void Client::authenticate_oauthbearer(std::string_view user, std::string_view access_token) {
  detail::check_argument(user, "user");
  detail::check_argument(access_token, "access token");
  if (user.find_first_of(",=") != std::string_view::npos)
    throw std::invalid_argument("user contains ',' or '=' (needs SASL escaping, RFC 5801)");
  authenticate("OAUTHBEARER", util::base64_encode("n,a=" + std::string(user) + ",\x01host=" +
                                                  host_ + "\x01port=" + std::to_string(port_) +
                                                  "\x01"
                                                  "auth=Bearer " +
                                                  std::string(access_token) + "\x01\x01"));
}

void Client::login(std::string_view user, std::string_view password) {
  detail::check_argument(user, "user");
  detail::check_argument(password, "password");
  if (capabilities_.empty()) refresh_capabilities();
  if (has("AUTH=PLAIN")) {
    authenticate("PLAIN", util::base64_encode(std::string(1, '\0') + std::string(user) +
                                              std::string(1, '\0') + std::string(password)));
    return;
  }
  if (has("LOGINDISABLED")) throw ProtocolError(host_ + " has disabled LOGIN");
  const StatusResponse ok =
      run("LOGIN", "LOGIN " + detail::quote(user) + " " + detail::quote(password));
  authenticated_ = true;
  if (!ok.code || ok.code->name != "CAPABILITY") refresh_capabilities();
}

MailboxInfo Client::open_mailbox(const std::string& command, std::string_view mailbox) {
  MailboxInfo info;
  const StatusResponse ok =
      run(command, command + " " + encode_mailbox_argument(mailbox), [&](Response& r) {
        if (const auto* count = std::get_if<CountData>(&r);
            count && count->kind == CountData::Kind::kExists) {
          info.exists = count->number;
        } else if (const auto* flags = std::get_if<FlagsData>(&r)) {
          info.flags = flags->flags;
        } else if (const auto* status = std::get_if<StatusResponse>(&r); status && status->code) {
          if (status->code->name == "UIDVALIDITY")
            info.uidvalidity = status->code->number.value_or(0);
          if (status->code->name == "UIDNEXT") info.uidnext = status->code->number.value_or(0);
        }
      });
  info.read_only = ok.code && ok.code->name == "READ-ONLY";
  if (info.uidvalidity == 0)
    throw ProtocolError(command + " " + std::string(mailbox) + ": no UIDVALIDITY from the server");
  return info;
}

MailboxInfo Client::examine(std::string_view mailbox) {
  return open_mailbox("EXAMINE", mailbox);
}
MailboxInfo Client::select(std::string_view mailbox) {
  return open_mailbox("SELECT", mailbox);
}

bool Client::create(std::string_view mailbox) {
  try {
    run("CREATE", "CREATE " + encode_mailbox_argument(mailbox));
    return true;
  } catch (const ImapError& e) {
    // RFC 5530 ALREADYEXISTS; older servers only say so in words.
    if (e.status() == Status::kNo &&
        (e.has_code("ALREADYEXISTS") || e.text().find("already exists") != std::string::npos ||
         e.text().find("Mailbox exists") != std::string::npos))
      return false;
    throw;
  }
}

std::vector<ListData> Client::list(std::string_view reference, std::string_view pattern) {
  detail::check_argument(reference, "LIST reference");
  detail::check_argument(pattern, "LIST pattern");
  const auto ref = encode_mailbox_name(reference);
  const auto pat = encode_mailbox_name(pattern);
  if (!ref || !pat) throw std::invalid_argument("LIST arguments must be valid UTF-8");
  std::vector<ListData> out;
  run("LIST", "LIST " + detail::quote(*ref) + " " + detail::quote(*pat), [&](Response& r) {
    if (auto* list = std::get_if<ListData>(&r)) out.push_back(std::move(*list));
  });
  return out;
}

void Client::noop() {
  run("NOOP", "NOOP");
}

void Client::probe_namespace() {
  run("NAMESPACE", "NAMESPACE");
}

bool Client::idle(std::chrono::milliseconds timeout,
                  const std::function<bool(const Response&)>& on_event,
                  const std::function<bool()>& keep_going, std::chrono::milliseconds slice) {
  if (!has("IDLE")) throw ProtocolError(host_ + " does not support IDLE");
  const std::string tag = next_tag();
  send(tag + " IDLE\r\n");
  for (;;) {  // wait for "+ idling"
    Response response = read_response();
    note(response);
    if (std::holds_alternative<Continuation>(response)) break;
    if (auto* status = std::get_if<StatusResponse>(&response); status && status->tag == tag)
      throw ImapError("IDLE", status->status, status->code, status->text);
    if (!on_event(response)) {
      send("DONE\r\n");
      wait_tagged(tag, "IDLE", nullptr);
      return true;
    }
  }
  const auto saved_timeout = stream_->io_timeout();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool stopped = false;
  idling_ = true;
  struct Resume {  // also when the wait throws
    Client& client;
    ~Resume() { client.idling_ = false; }
  } resume{*this};
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    stream_->set_io_timeout(keep_going ? std::min(left, slice) : left);
    try {
      Response response = read_response();
      note(response);
      if (!on_event(response)) {
        stopped = true;
        break;
      }
    } catch (const net::TransportError& e) {
      if (e.kind() != net::TransportErrorKind::kTimeout) {
        stream_->set_io_timeout(saved_timeout);
        throw;
      }
      // A slice ended with nothing (or part of a response, kept by the parser for the next read).
      if (!keep_going || !keep_going()) break;
    }
  }
  stream_->set_io_timeout(saved_timeout);
  idling_ = false;
  command_started_ = std::chrono::steady_clock::now();  // DONE's answer is bounded from now
  command_bytes_ = 0;
  send("DONE\r\n");
  wait_tagged(tag, "IDLE", [&](Response& r) { on_event(r); });
  return stopped;
}

void Client::logout() {
  try {
    run("LOGOUT", "LOGOUT");
  } catch (const std::exception&) {
    // the server closes the connection either way
  }
}

}  // namespace mailsync::imap
