#pragma once

// Private to the IMAP client: turning arguments into protocol text safely.

#include <stdexcept>
#include <string>
#include <string_view>

namespace mailsync::imap::detail {

// CR, LF and NUL can end a command early or smuggle a second one in: refused before anything is
// sent, whatever the argument.
inline void check_argument(std::string_view value, const char* what) {
  if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos)
    throw std::invalid_argument(std::string(what) + " contains CR, LF or NUL");
}

// A quoted string (RFC 3501 section 9): backslash and double quote escaped.
inline std::string quote(std::string_view value) {
  check_argument(value, "argument");
  std::string out = "\"";
  for (const char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace mailsync::imap::detail
