// Fuzz target: modified UTF-7. Decoding anything must not crash; valid UTF-8 must survive
// encode -> decode unchanged; whatever decodes must re-encode to something that decodes the same.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "mailsync/imap/utf7.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mailsync::imap;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (const auto decoded = decode_mailbox_name(input)) {
    const auto again = encode_mailbox_name(*decoded);
    if (!again || decode_mailbox_name(*again) != decoded) __builtin_trap();
  }
  if (const auto encoded = encode_mailbox_name(input)) {
    for (const char c : *encoded)
      if (c < 0x20 || c > 0x7e) __builtin_trap();  // the encoding is printable ASCII only
    if (decode_mailbox_name(*encoded) != input) __builtin_trap();
  }
  return 0;
}
