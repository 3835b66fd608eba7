#pragma once

#include <optional>
#include <string>
#include <string_view>

// Modified UTF-7 for mailbox names (RFC 3501 section 5.1.3): printable US-ASCII stands for itself
// except "&", written "&-"; everything else is UTF-16BE in modified base64 ("," for "/", no
// padding) between "&" and "-".
namespace mailsync::imap {

// UTF-8 -> modified UTF-7. nullopt when the input is not valid UTF-8.
std::optional<std::string> encode_mailbox_name(std::string_view utf8);

// Modified UTF-7 -> UTF-8. nullopt on anything RFC 3501 forbids: bytes outside printable ASCII,
// an unterminated or empty "&...-" run, bad base64, leftover bits, unpaired surrogates, or a run
// that encodes printable ASCII.
std::optional<std::string> decode_mailbox_name(std::string_view mutf7);

}  // namespace mailsync::imap
