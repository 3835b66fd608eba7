#pragma once

#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>

#include "mailsync/imap/response.hpp"

namespace mailsync::imap {

// The server answered NO or BAD, or said BYE. Keeps what it said.
class ImapError : public std::runtime_error {
 public:
  ImapError(std::string command, Status status, std::optional<ResponseCode> code, std::string text);
  const std::string& command() const { return command_; }  // "APPEND", "AUTHENTICATE", ...
  Status status() const { return status_; }
  const std::optional<ResponseCode>& code() const { return code_; }
  const std::string& text() const { return text_; }
  bool has_code(std::string_view name) const { return code_ && code_->name == name; }

 private:
  std::string command_;
  Status status_;
  std::optional<ResponseCode> code_;
  std::string text_;
};

// Client::append_many was told to stop sending in the middle of a command and cut it off: the
// command was never completed (so the server stores nothing of it), the connection is unusable,
// and the outcome of the commands sent before it is unknown.
class SendStopped : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The server broke the protocol (unparseable bytes, an unexpected response). The connection is
// unusable; retrying on a new one may work.
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What to do about a failure. The one place where IMAP and transport errors are judged.
struct ErrorClass {
  enum class Kind {
    kRetryable,  // transient: network, server unavailable, session expired; try again later
    kThrottled,  // the server asked to slow down; retry after `retry_after` (0: use backoff)
    kAuth,       // credentials refused: a new token will not help without the user
    kPermanent,  // this request will never succeed as it is (too large, no such folder, ...)
  };
  Kind kind = Kind::kRetryable;
  std::chrono::milliseconds retry_after{0};
  std::string reason;  // short, for logs and the failures table: "throttled", "too_large", ...
  // kRetryable answers that may as well mean "never, for this message" (Outlook's catch-all
  // "Command Argument Error. 11"): after this many retries the message's failure is permanent.
  std::optional<int> max_retries;
};

inline constexpr std::chrono::milliseconds kMaxSuggestedBackoff{std::chrono::minutes(10)};

// Judged from the most to the least specific: what says "wait" (throttling, connection and
// bandwidth limits), then what says "try again" (unavailable, server errors), and only then what
// says "your credentials" or "this message": a transient answer is never read as auth_required
// or as a permanent refusal. A BAD is permanent only for the texts known to mean "this message";
// any other NO or BAD is transient. The providers' texts are those public client projects report
// (imapsync's FAQ.Office365 and FAQ.Gmail, imapflow, MailKit, node-imap).
ErrorClass classify(const ImapError& error);
// Any exception from the IMAP client or the transport; unknown ones are retryable.
ErrorClass classify(const std::exception_ptr& error);

}  // namespace mailsync::imap
