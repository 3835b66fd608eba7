#pragma once

#include <string_view>

namespace mailsync {

// What this binary is: printed by every executable's --version and checked by the build tests.
struct BuildInfo {
  std::string_view version;     // project version from CMakeLists.txt
  std::string_view build_type;  // CMAKE_BUILD_TYPE
  long cxx_standard;            // __cplusplus of the compiler that built libmailsync
  bool sanitized;               // built with ASan + UBSan
};

const BuildInfo& build_info();

// "mailsync 0.1.0 (Debug, C++20, asan+ubsan)"
std::string_view version_line();

}  // namespace mailsync
