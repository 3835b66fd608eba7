#pragma once

#include <string>
#include <utility>
#include <vector>

// Messages that must cross any copy byte for byte. (Dovecot serves bare LF as CRLF and NUL as 0x80
// in BODY[], so none has either: byte-exactness is judged on what a server keeps.)
namespace mailsync::testing {

std::string message(const std::string& headers, const std::string& body);
// (name, bytes): 8-bit and encoded headers, a 20 KB line, long folded headers, a binary (base64)
// attachment, an 8-bit body, no Message-ID with a bare CR and no final CRLF, headers only.
std::vector<std::pair<std::string, std::string>> tricky_messages();

}  // namespace mailsync::testing
