#include "mailsync/imap/utf7.hpp"

#include <cstdint>
#include <vector>

namespace mailsync::imap {

namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

int decode_char(char c) {
  const size_t at = kAlphabet.find(c);
  return at == std::string_view::npos ? -1 : static_cast<int>(at);
}

bool printable(uint32_t c) {
  return c >= 0x20 && c <= 0x7e;
}

// Next code point of UTF-8 text, or nullopt on invalid UTF-8 (overlong, surrogate, > U+10FFFF).
std::optional<uint32_t> next_code_point(std::string_view text, size_t& i) {
  const auto b0 = static_cast<unsigned char>(text[i]);
  int length;
  uint32_t c;
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  if ((b0 & 0xe0) == 0xc0) {
    length = 2;
    c = b0 & 0x1f;
  } else if ((b0 & 0xf0) == 0xe0) {
    length = 3;
    c = b0 & 0x0f;
  } else if ((b0 & 0xf8) == 0xf0) {
    length = 4;
    c = b0 & 0x07;
  } else
    return std::nullopt;
  if (i + static_cast<size_t>(length) > text.size()) return std::nullopt;
  for (int k = 1; k < length; ++k) {
    const auto b = static_cast<unsigned char>(text[i + static_cast<size_t>(k)]);
    if ((b & 0xc0) != 0x80) return std::nullopt;
    c = (c << 6) | (b & 0x3f);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (c < kMin[length] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return std::nullopt;
  i += static_cast<size_t>(length);
  return c;
}

void append_utf8(std::string& out, uint32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xc0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3f));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xe0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (c & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (c & 0x3f));
  }
}

void flush_run(std::string& out, std::vector<uint16_t>& units) {
  if (units.empty()) return;
  out += '&';
  uint32_t bits = 0;
  int count = 0;
  for (const uint16_t unit : units) {
    bits = (bits << 16) | unit;
    count += 16;
    while (count >= 6) {
      count -= 6;
      out += kAlphabet[(bits >> count) & 0x3f];
    }
  }
  if (count > 0) out += kAlphabet[(bits << (6 - count)) & 0x3f];
  out += '-';
  units.clear();
}

}  // namespace

std::optional<std::string> encode_mailbox_name(std::string_view utf8) {
  std::string out;
  std::vector<uint16_t> run;
  for (size_t i = 0; i < utf8.size();) {
    const auto c = next_code_point(utf8, i);
    if (!c) return std::nullopt;
    if (printable(*c)) {
      flush_run(out, run);
      out += *c == '&' ? "&-" : std::string(1, static_cast<char>(*c));
    } else if (*c < 0x10000) {
      run.push_back(static_cast<uint16_t>(*c));
    } else {
      const uint32_t v = *c - 0x10000;
      run.push_back(static_cast<uint16_t>(0xd800 | (v >> 10)));
      run.push_back(static_cast<uint16_t>(0xdc00 | (v & 0x3ff)));
    }
  }
  flush_run(out, run);
  return out;
}

std::optional<std::string> decode_mailbox_name(std::string_view mutf7) {
  std::string out;
  for (size_t i = 0; i < mutf7.size();) {
    const char c = mutf7[i];
    if (!printable(static_cast<unsigned char>(c))) return std::nullopt;
    if (c != '&') {
      out += c;
      ++i;
      continue;
    }
    const size_t end = mutf7.find('-', i + 1);
    if (end == std::string_view::npos) return std::nullopt;
    if (end == i + 1) {  // "&-"
      out += '&';
      i = end + 1;
      continue;
    }
    uint32_t bits = 0;
    int count = 0;
    std::vector<uint16_t> units;
    for (size_t k = i + 1; k < end; ++k) {
      const int value = decode_char(mutf7[k]);
      if (value < 0) return std::nullopt;
      bits = (bits << 6) | static_cast<uint32_t>(value);
      count += 6;
      if (count >= 16) {
        count -= 16;
        units.push_back(static_cast<uint16_t>((bits >> count) & 0xffff));
      }
    }
    if (count >= 6 || (bits & ((1u << count) - 1)) != 0) return std::nullopt;  // leftover bits
    for (size_t k = 0; k < units.size(); ++k) {
      uint32_t cp = units[k];
      if (cp >= 0xd800 && cp <= 0xdbff) {
        if (k + 1 >= units.size() || units[k + 1] < 0xdc00 || units[k + 1] > 0xdfff)
          return std::nullopt;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (units[++k] - 0xdc00);
      } else if (cp >= 0xdc00 && cp <= 0xdfff) {
        return std::nullopt;
      }
      if (printable(cp)) return std::nullopt;  // must have been written directly
      append_utf8(out, cp);
    }
    i = end + 1;
  }
  return out;
}

}  // namespace mailsync::imap
