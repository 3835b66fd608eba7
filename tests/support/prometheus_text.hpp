#pragma once

#include <string>

namespace mailsync::testing {

// The value of one series (`name` or `name{labels}`, exactly as exposed) in a Prometheus text
// exposition; -1 when the series is not there.
inline double metric_value(const std::string& exposition, const std::string& series) {
  const auto at = exposition.find("\n" + series + " ");
  return at == std::string::npos ? -1 : std::stod(exposition.substr(at + series.size() + 2));
}

}  // namespace mailsync::testing
