// Fuzz target: the RFC 822 header reader and INTERNALDATE. The streaming scanner, fed in chunks,
// must agree with the one-shot extraction (within its bound); a date that parses must survive
// format -> parse.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "mailsync/mail/rfc822.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mailsync::mail;
  if (size == 0) return 0;
  const size_t step = 1 + data[0] % 13;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto whole = extract_message_id(input);
  MessageIdScanner scanner(1 << 20);
  for (size_t i = 0; i < input.size(); i += step) scanner.feed(input.substr(i, step));
  if (scanner.result() != whole) __builtin_trap();
  if (const auto date = parse_internaldate(input)) {
    const auto again = parse_internaldate(format_internaldate(*date));
    if (!again || again->instant != date->instant || again->offset_minutes != date->offset_minutes)
      __builtin_trap();
  }
  return 0;
}
