#pragma once

#include <chrono>
#include <map>
#include <string>
#include <string_view>

namespace mailsync::util {

// Collapses a possibly multi-line message (libpq and libcurl both write several lines) into one
// line: trims each line, drops empty ones and joins the rest with "; ". Error output of the
// executables is one line per problem so that it stays greppable in logs.
std::string one_line(std::string_view text);

// strerror(error), thread-safe (strerror_r): what errno means, for messages.
std::string errno_text(int error);

// Leading and trailing ASCII whitespace removed.
std::string_view trim(std::string_view text);

// ASCII letters upper-cased, everything else as it is (IMAP keywords, capabilities).
std::string ascii_upper(std::string_view text);
std::string ascii_lower(std::string_view text);  // HTTP header names

// `at` in UTC, written with strftime's `format`: "2026-11-21T15:46:34Z" by default (the DynamoDB
// items' timestamps, as the Lambda version wrote them), "%Y%m%dT%H%M%SZ" for SigV4.
std::string utc_text(std::chrono::system_clock::time_point at,
                     const char* format = "%Y-%m-%dT%H:%M:%SZ");

// Lower-case hex of the bytes.
std::string to_hex(std::string_view bytes);

// Header-derived bytes (a Message-ID) as text that any bytes survive in PostgreSQL text and in
// JSON: a value of printable ASCII (0x20..0x7E) not starting with "~esc:" is kept as it is (so
// every well-formed Message-ID is stored unchanged); any other becomes "~esc:" followed by the
// bytes with everything outside 0x21..0x7E, and '%', written %XX. decode_header_bytes reverses
// it exactly (docs/state_machine.md, "Stored header values").
std::string encode_header_bytes(std::string_view bytes);
std::string decode_header_bytes(std::string_view text);

// RFC 3986 percent-encoding: every byte but the unreserved (A-Z a-z 0-9 - . _ ~) written %XX.
std::string percent_encode(std::string_view bytes);
// %XX back to its byte (a '%' not followed by two hex digits stays as it is); with
// `plus_is_space`, '+' is a space (a form's or a query string's encoding).
std::string percent_decode(std::string_view text, bool plus_is_space = false);

// A server's or a library's words made safe to store and show: bytes that are not valid UTF-8,
// and control characters other than tab, become "%XX". Lossless for ordinary text.
std::string safe_text(std::string_view text);

// "a=1&b=x%20y" -> {a: "1", b: "x y"} ('+' is a space, as in HTML forms). Later keys win.
std::map<std::string, std::string> parse_query(std::string_view query);

}  // namespace mailsync::util
