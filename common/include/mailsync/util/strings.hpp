#pragma once

#include <map>
#include <string>
#include <string_view>

namespace mailsync::util {

// Collapses a possibly multi-line message (libpq and libcurl both write several lines) into one
// line: trims each line, drops empty ones and joins the rest with "; ". Error output of the
// executables is one line per problem so that it stays greppable in logs.
std::string one_line(std::string_view text);

// Leading and trailing ASCII whitespace removed.
std::string_view trim(std::string_view text);

// ASCII letters upper-cased, everything else as it is (IMAP keywords, capabilities).
std::string ascii_upper(std::string_view text);

// Lower-case hex of the bytes.
std::string to_hex(std::string_view bytes);

// "a=1&b=x%20y" -> {a: "1", b: "x y"} ('+' is a space, as in HTML forms). Later keys win.
std::map<std::string, std::string> parse_query(std::string_view query);

}  // namespace mailsync::util
