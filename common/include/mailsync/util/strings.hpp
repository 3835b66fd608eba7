#pragma once

#include <string>
#include <string_view>

namespace mailsync::util {

// Collapses a possibly multi-line message (libpq and libcurl both write several lines) into one
// line: trims each line, drops empty ones and joins the rest with "; ". Error output of the
// executables is one line per problem so that it stays greppable in logs.
std::string one_line(std::string_view text);

// Leading and trailing ASCII whitespace removed.
std::string_view trim(std::string_view text);

// Lower-case hex of the bytes.
std::string to_hex(std::string_view bytes);

}  // namespace mailsync::util
