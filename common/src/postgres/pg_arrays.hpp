#pragma once

// PostgreSQL array literals for libpqxx 6.4, which cannot bind arrays: "{1,2}" and
// {"a\"b",NULL}. Elements are quoted and escaped (backslash and double quote), so any text is
// safe; the literal is still passed as a bound parameter, never spliced into SQL.

#include <cstdint>
#include <optional>
#include <span>
#include <string>

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
    separate();
    text_ += "NULL";
  }
  void add_null() { add_optional(std::nullopt); }
  std::string str() const { return text_ + "}"; }

 private:
  void separate() {
    if (text_.size() > 1) text_ += ',';
  }
  std::string text_ = "{";
};

}  // namespace mailsync::postgres::detail
