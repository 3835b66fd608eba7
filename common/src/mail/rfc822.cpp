#include "mailsync/mail/rfc822.hpp"

#include <array>
#include <cstdio>

namespace mailsync::mail {

namespace {

bool is_ws(char c) {
  return c == ' ' || c == '\t';
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// End of the header section: the index of the first empty line (CRLF CRLF or LF LF), or npos.
size_t header_end(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\n') continue;
    if (i + 1 < text.size() && text[i + 1] == '\n') return i + 1;
    if (i + 2 < text.size() && text[i + 1] == '\r' && text[i + 2] == '\n') return i + 1;
  }
  // A message that starts with an empty line has no headers at all.
  if (text.starts_with("\r\n") || text.starts_with("\n")) return 0;
  return std::string_view::npos;
}

std::optional<std::string> scan_headers(std::string_view headers) {
  size_t i = 0;
  while (i < headers.size()) {
    size_t line_end = headers.find('\n', i);
    if (line_end == std::string_view::npos) line_end = headers.size();
    std::string_view line = headers.substr(i, line_end - i);
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line.empty()) break;  // end of the header section
    const size_t colon = line.find(':');
    std::string_view name =
        colon == std::string_view::npos ? std::string_view() : line.substr(0, colon);
    while (!name.empty() && is_ws(name.back()))
      name.remove_suffix(1);  // "Message-ID :" (obs-syntax)
    size_t next = line_end + 1;
    if (!is_ws(line.empty() ? 'x' : line[0]) && iequals(name, "message-id")) {
      std::string value(line.substr(colon + 1));
      // Unfold continuation lines (those starting with WSP).
      while (next < headers.size() && is_ws(headers[next])) {
        size_t end = headers.find('\n', next);
        if (end == std::string_view::npos) end = headers.size();
        std::string_view more = headers.substr(next, end - next);
        if (more.ends_with('\r')) more.remove_suffix(1);
        value += ' ';
        value += more;
        next = end + 1;
      }
      size_t begin = 0, end = value.size();
      while (begin < end && is_ws(value[begin])) ++begin;
      while (end > begin && is_ws(value[end - 1])) --end;
      if (end == begin) return std::nullopt;
      return value.substr(begin, end - begin);
    }
    i = next;
  }
  return std::nullopt;
}

constexpr std::array<const char*, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

}  // namespace

std::optional<std::string> extract_message_id(std::string_view message) {
  const size_t end = header_end(message);
  return scan_headers(end == std::string_view::npos ? message : message.substr(0, end));
}

void MessageIdScanner::feed(std::string_view bytes) {
  if (complete_) return;
  const size_t room = max_ - headers_.size();
  headers_.append(bytes.substr(0, room));
  if (header_end(headers_) != std::string::npos || headers_.size() >= max_) complete_ = true;
}

std::optional<std::string> MessageIdScanner::result() const {
  return extract_message_id(headers_);
}

std::optional<InternalDate> parse_internaldate(std::string_view text) {
  // date-day-fixed "-" date-month "-" date-year SP time SP zone; day may be " 7" or "07" (or "7").
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  int day = 0, year = 0, hour = 0, minute = 0, second = 0, zone = 0;
  char month_name[4] = {}, sign = 0;
  int consumed = 0;
  const std::string copy(text);
  if (std::sscanf(copy.c_str(), "%2d-%3c-%4d %2d:%2d:%2d %c%4d%n", &day, month_name, &year, &hour,
                  &minute, &second, &sign, &zone, &consumed) != 8 ||
      static_cast<size_t>(consumed) != copy.size())
    return std::nullopt;
  int month = 0;
  for (size_t i = 0; i < kMonths.size(); ++i)
    if (std::string_view(month_name, 3) == kMonths[i]) month = static_cast<int>(i) + 1;
  if (month == 0 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60 ||
      (sign != '+' && sign != '-') || zone % 100 > 59 || year < 1900 ||
      year > 2200)  // system_clock (ns) spans 1678..2262
    return std::nullopt;
  const int offset = (zone / 100 * 60 + zone % 100) * (sign == '-' ? -1 : 1);
  const int64_t days =
      days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  const int64_t seconds = days * 86400 + hour * 3600 + minute * 60 + second - int64_t{offset} * 60;
  return InternalDate{std::chrono::system_clock::time_point(std::chrono::seconds(seconds)), offset};
}

std::string format_internaldate(const InternalDate& date) {
  const int64_t local =
      std::chrono::duration_cast<std::chrono::seconds>(date.instant.time_since_epoch()).count() +
      int64_t{date.offset_minutes} * 60;
  int64_t days = local / 86400, rest = local % 86400;
  if (rest < 0) {
    rest += 86400;
    --days;
  }
  int64_t y;
  unsigned m, d;
  civil_from_days(days, y, m, d);
  const int offset = date.offset_minutes < 0 ? -date.offset_minutes : date.offset_minutes;
  char out[40];
  std::snprintf(out, sizeof out, "%02u-%s-%04lld %02lld:%02lld:%02lld %c%02d%02d", d,
                kMonths[m - 1], static_cast<long long>(y), static_cast<long long>(rest / 3600),
                static_cast<long long>(rest % 3600 / 60), static_cast<long long>(rest % 60),
                date.offset_minutes < 0 ? '-' : '+', offset / 60, offset % 60);
  return out;
}

}  // namespace mailsync::mail
