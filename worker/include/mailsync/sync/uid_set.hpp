#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mailsync::sync {

// An IMAP sequence set of ascending UIDs (RFC 3501 9, sequence-set): "1:5,7,9:12".
std::string uid_set(const std::vector<uint32_t>& uids);

}  // namespace mailsync::sync
