#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

// What mailsync reads of a message: the Message-ID header (dedupe and reconciliation) and the
// INTERNALDATE format. The message bytes themselves are never changed.
namespace mailsync::mail {

// The first Message-ID header field of a raw message (RFC 5322 section 3.6.4): name matched
// case-insensitively, folded lines unfolded, surrounding whitespace trimmed, value otherwise as
// found (brackets included). Tolerates bare LF line ends and 8-bit bytes. nullopt when the header
// section has none, or its value is empty.
std::optional<std::string> extract_message_id(std::string_view message);

// The same, fed in chunks as a body streams in. Looks only at the header section (up to the first
// empty line) and at most `max_header_bytes` of it, so memory stays bounded.
class MessageIdScanner {
 public:
  explicit MessageIdScanner(size_t max_header_bytes = 256 * 1024) : max_(max_header_bytes) {}
  void feed(std::string_view bytes);
  // After the last chunk.
  std::optional<std::string> result() const;

 private:
  std::string headers_;
  size_t max_;
  bool complete_ = false;
};

// INTERNALDATE (RFC 3501 section 9, date-time): "17-Jul-1996 02:44:25 -0700".
struct InternalDate {
  std::chrono::system_clock::time_point instant;
  int offset_minutes = 0;  // the zone it was written in
};

std::optional<InternalDate> parse_internaldate(std::string_view text);
// Written with a two-digit day ("01-Jan-2020 ..."), in the given zone.
std::string format_internaldate(const InternalDate& date);

}  // namespace mailsync::mail
