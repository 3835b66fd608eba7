#include "mailsync/build_info.hpp"

#include <string>

namespace mailsync {

const BuildInfo& build_info() {
  static const BuildInfo kInfo{MAILSYNC_VERSION, MAILSYNC_BUILD_TYPE, __cplusplus,
                               MAILSYNC_SANITIZED != 0};
  return kInfo;
}

std::string_view version_line() {
  static const std::string kLine = [] {
    const BuildInfo& info = build_info();
    std::string line = "mailsync " + std::string(info.version) + " (" +
                       (info.build_type.empty() ? std::string("unspecified build")
                                                : std::string(info.build_type)) +
                       ", C++" + std::to_string(info.cxx_standard / 100 % 100);
    if (info.sanitized) line += ", asan+ubsan";
    return line + ")";
  }();
  return kLine;
}

}  // namespace mailsync
