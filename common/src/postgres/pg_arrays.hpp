#pragma once

// PostgreSQL array literals for libpqxx 6.4, which cannot bind arrays: "{1,2}" and
// {"a\"b",NULL}. Elements are quoted and escaped (backslash and double quote), so any text is
// safe; the literal is still passed as a bound parameter, never spliced into SQL.

#include <chrono>
#include <concepts>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "postgres/params.hpp"

namespace mailsync::postgres::detail {

template <typename Integer>
std::string int_array(std::span<const Integer> values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(values[i]);
  }
  return out + "}";
}

inline void append_quoted(std::string& out, std::string_view value) {
  out += '"';
  for (const char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}

class TextArray {
 public:
  void add(std::string_view value) {
    separate();
    append_quoted(text_, value);
  }
  void add_optional(const std::optional<std::string>& value) {
    if (value) return add(std::string_view(*value));
    add_null();
  }
  template <std::integral Integer>
  void add_optional(std::optional<Integer> value) {
    if (value) return add(std::to_string(*value));
    add_null();
  }
  // Time as microseconds since the epoch, as every time parameter (to_micros).
  void add_time(std::optional<std::chrono::system_clock::time_point> value) {
    add_optional(value ? std::optional<int64_t>(to_micros(*value)) : std::nullopt);
  }
  void add_null() {
    separate();
    text_ += "NULL";
  }
  std::string str() const { return text_ + "}"; }

 private:
  void separate() {
    if (text_.size() > 1) text_ += ',';
  }
  std::string text_ = "{";
};

}  // namespace mailsync::postgres::detail
