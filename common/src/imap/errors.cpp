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
  const std::string code = error.code() ? error.code()->name : "";
  const std::string& text = error.text();

  if (const auto backoff = suggested_backoff(text))
    return {Kind::kThrottled, *backoff, "throttled"};
  if (code == "THROTTLED" || contains_nocase(text, "throttl") ||
      contains_nocase(text, "too many simultaneous") || contains_nocase(text, "bandwidth limits"))
    return {Kind::kThrottled, std::chrono::milliseconds(0), "throttled"};
  if (code == "AUTHENTICATIONFAILED" || code == "AUTHORIZATIONFAILED" || code == "EXPIRED" ||
      (error.command() == "AUTHENTICATE" && error.status() == Status::kNo) ||
      (error.command() == "LOGIN" && error.status() == Status::kNo))
    return {Kind::kAuth, {}, "auth_failed"};
  if (code == "UNAVAILABLE" || code == "SERVERBUG" || code == "INUSE" || code == "CONTACTADMIN" ||
      contains_nocase(text, "session expired") || contains_nocase(text, "try again"))
    return {Kind::kRetryable, {}, "server_unavailable"};
  if (code == "LIMIT" || contains_nocase(text, "too large") || contains_nocase(text, "too big") ||
      contains_nocase(text, "exceeds") || contains_nocase(text, "line too long"))
    return {Kind::kPermanent, {}, "too_large"};
  if (code == "OVERQUOTA") return {Kind::kPermanent, {}, "over_quota"};
  if (code == "TRYCREATE" || code == "NONEXISTENT")
    return {Kind::kPermanent, {}, "no_such_mailbox"};
  if (code == "CANNOT" || code == "NOPERM" || code == "PARSE" || code == "BADCHARSET")
    return {Kind::kPermanent, {}, "refused"};
  if (error.status() == Status::kBye) return {Kind::kRetryable, {}, "server_closed"};
  if (error.status() == Status::kBad) return {Kind::kPermanent, {}, "bad_command"};
  // A NO we cannot read: most are transient server trouble; the caller caps the retries.
  return {Kind::kRetryable, {}, "refused_transient"};
}

ErrorClass classify(std::exception_ptr error) {
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
