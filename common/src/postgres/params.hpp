#pragma once

// Parameter helpers shared by the Postgres stores: time as microseconds since the epoch, and the
// injectable "now" (NULL means the database's now()).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace mailsync::postgres::detail {

inline int64_t to_micros(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

inline std::chrono::system_clock::time_point from_micros(int64_t us) {
  return std::chrono::system_clock::time_point(std::chrono::microseconds(us));
}

// A nullable text parameter: pass get() to detail::exec; nullptr binds SQL NULL.
class NullableParam {
 public:
  NullableParam() = default;
  explicit NullableParam(std::optional<std::string> value) : value_(std::move(value)) {}
  static NullableParam time(std::optional<std::chrono::system_clock::time_point> t) {
    return t ? NullableParam(std::to_string(to_micros(*t))) : NullableParam();
  }
  const char* get() const { return value_ ? value_->c_str() : nullptr; }

 private:
  std::optional<std::string> value_;
};

}  // namespace mailsync::postgres::detail
