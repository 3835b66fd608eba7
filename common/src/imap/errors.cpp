#include "mailsync/imap/errors.hpp"

#include <cstdlib>

#include "mailsync/imap/parser.hpp"
#include "mailsync/net/tls_stream.hpp"

namespace mailsync::imap {

ImapError::ImapError(std::string command, Status status, std::optional<ResponseCode> code,
                     std::string text)
    : std::runtime_error(
          command + " failed: " + std::string(to_string(status)) +
          (code ? " [" + code->name + (code->text.empty() ? "" : " " + code->text) + "]" : "") +
          (text.empty() ? "" : " " + text)),
      command_(std::move(command)),
      status_(status),
      code_(std::move(code)),
      text_(std::move(text)) {}

namespace {

bool contains_nocase(std::string_view haystack, std::string_view needle) {
  if (needle.size() > haystack.size()) return false;
  for (size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    bool match = true;
    for (size_t k = 0; k < needle.size() && match; ++k) {
      char a = haystack[i + k], b = needle[k];
      if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
      if (b >= 'A' && b <= 'Z') b = static_cast<char>(b - 'A' + 'a');
      match = a == b;
    }
    if (match) return true;
  }
  return false;
}

// Outlook.com: "Request is throttled. Suggested Backoff Time: 36445 milliseconds", with NO or BAD.
std::optional<std::chrono::milliseconds> suggested_backoff(std::string_view text) {
  constexpr std::string_view kMarker = "Suggested Backoff Time:";
  for (size_t i = 0; i + kMarker.size() <= text.size(); ++i) {
    if (!contains_nocase(text.substr(i, kMarker.size()), kMarker)) continue;
    size_t k = i + kMarker.size();
    while (k < text.size() && text[k] == ' ') ++k;
    uint64_t ms = 0;
    size_t digits = 0;
    while (k < text.size() && text[k] >= '0' && text[k] <= '9' && digits < 12) {
      ms = ms * 10 + static_cast<uint64_t>(text[k++] - '0');
      ++digits;
    }
    if (digits == 0) return std::nullopt;
    return std::min(std::chrono::milliseconds(static_cast<int64_t>(ms)), kMaxSuggestedBackoff);
  }
  return std::nullopt;
}

}  // namespace

ErrorClass classify(const ImapError& error) {
  using Kind = ErrorClass::Kind;
  using std::chrono::milliseconds;
  const std::string code = error.code() ? error.code()->name : "";
  const std::string& text = error.text();
  auto says = [&](std::string_view words) { return contains_nocase(text, words); };

  // Wait: the server asked to slow down. Outlook names the time ("Suggested Backoff Time"); Gmail
  // limits connections per account ("[ALERT] Too many simultaneous connections", also at
  // AUTHENTICATE) and bandwidth ("[OVERQUOTA] Account exceeded command or bandwidth limits"),
  // where a long pause is the answer.
  if (const auto backoff = suggested_backoff(text))
    return {Kind::kThrottled, *backoff, "throttled", {}};
  if (says("bandwidth limits") || says("command or bandwidth"))
    return {Kind::kThrottled, milliseconds(std::chrono::minutes(10)), "bandwidth", {}};
  if (says("too many simultaneous connections"))
    return {Kind::kThrottled, milliseconds(std::chrono::minutes(1)), "too_many_connections", {}};
  if (code == "THROTTLED" || says("throttl")) return {Kind::kThrottled, {}, "throttled", {}};

  // Try again: the server (not the request) is in trouble.
  if (code == "UNAVAILABLE" || code == "SERVERBUG" || code == "INUSE" || says("try again") ||
      says("system error") || says("temporar") || says("session expired") || says("internal error"))
    return {Kind::kRetryable, {}, "server_unavailable", {}};
  // Outlook after a good AUTHENTICATE (missing rights, connection churn) and on APPEND.
  if (says("authenticated but not connected")) return {Kind::kRetryable, {}, "not_connected", {}};

  // The credentials: definitive answers only. A plain NO to AUTHENTICATE or LOGIN (Outlook's
  // "AUTHENTICATE failed.") counts too; the login retries it once with a fresh token before the
  // route is set auth_required.
  if (code == "AUTHENTICATIONFAILED" || code == "AUTHORIZATIONFAILED" || code == "EXPIRED" ||
      ((error.command() == "AUTHENTICATE" || error.command() == "LOGIN") &&
       error.status() == Status::kNo))
    return {Kind::kAuth, {}, "auth_failed", {}};

  // This message, never: what the destination refuses for its size or its lines.
  if (code == "LIMIT" || code == "TOOBIG" || says("too large") || says("too big") ||
      says("maximum size of appendable message") || says("exceeds") || says("line too long") ||
      says("command error. 10"))
    return {Kind::kPermanent, {}, "too_large", {}};
  // Outlook's catch-all for APPEND (too big, mailbox full, an embedded message it cannot parse):
  // retried a few times, then permanent.
  if (says("command argument error")) return {Kind::kRetryable, {}, "argument_error", 3};
  // A full mailbox fills up for everyone: waited out, never recorded as this message's fault.
  if (code == "OVERQUOTA" || says("quota"))
    return {Kind::kRetryable, milliseconds(std::chrono::hours(1)), "over_quota", {}};
  if (code == "TRYCREATE" || code == "NONEXISTENT")
    return {Kind::kPermanent, {}, "no_such_mailbox", {}};
  if (says("folder name is reserved")) return {Kind::kPermanent, {}, "folder_reserved", {}};
  if (code == "CANNOT" || code == "NOPERM" || code == "PARSE" || code == "BADCHARSET")
    return {Kind::kPermanent, {}, "refused", {}};
  if (error.status() == Status::kBye) return {Kind::kRetryable, {}, "server_closed", {}};
  // Any other NO or BAD: not known to mean "never", so transient; the per-message retry schedule
  // spaces the tries out and the failure stays visible with the server's words.
  if (error.status() == Status::kBad) return {Kind::kRetryable, {}, "bad_command", 5};
  return {Kind::kRetryable, {}, "refused_transient", {}};
}

ErrorClass classify(const std::exception_ptr& error) {
  using Kind = ErrorClass::Kind;
  try {
    std::rethrow_exception(error);
  } catch (const ImapError& e) {
    return classify(e);
  } catch (const net::TransportError& e) {
    if (!e.retryable()) return {Kind::kPermanent, {}, "certificate"};
    return {Kind::kRetryable,
            {},
            e.kind() == net::TransportErrorKind::kTimeout ? "timeout" : "network"};
  } catch (const ParseError&) {
    return {Kind::kRetryable, {}, "protocol"};
  } catch (const ProtocolError&) {
    return {Kind::kRetryable, {}, "protocol"};
  } catch (...) {
    return {Kind::kRetryable, {}, "unknown"};
  }
}

}  // namespace mailsync::imap
