#include "mailsync/postgres/errors.hpp"

#include <string>

namespace mailsync::postgres {

bool is_unavailable_sqlstate(std::string_view sqlstate) {
  if (sqlstate.size() != 5) return false;
  return sqlstate.starts_with("08") ||  // connection exception
         sqlstate == "57P01" || sqlstate == "57P02" ||
         sqlstate == "57P03" ||         // shutdown, starting up
         sqlstate.starts_with("53") ||  // insufficient resources
         sqlstate.starts_with("58");    // system error (I/O)
}

namespace {

// The password of "postgresql://user:PASSWORD@host/db" or "... password=PASSWORD ...".
std::string find_password(std::string_view url) {
  if (const size_t scheme = url.find("://"); scheme != std::string_view::npos) {
    std::string_view rest = url.substr(scheme + 3);
    const size_t at = rest.rfind('@', rest.find('/'));
    if (at == std::string_view::npos) return {};
    const std::string_view userinfo = rest.substr(0, at);
    const size_t colon = userinfo.find(':');
    if (colon == std::string_view::npos) return {};
    return std::string(userinfo.substr(colon + 1));
  }
  const size_t key = url.find("password");
  if (key == std::string_view::npos) return {};
  std::string_view rest = url.substr(key + 8);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  if (rest.empty() || rest.front() != '=') return {};
  rest.remove_prefix(1);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  if (!rest.empty() && rest.front() == '\'') {
    rest.remove_prefix(1);
    return std::string(rest.substr(0, rest.find('\'')));
  }
  return std::string(rest.substr(0, rest.find(' ')));
}

}  // namespace

std::string redact_password(std::string_view message, std::string_view database_url) {
  std::string out(message);
  const std::string password = find_password(database_url);
  if (password.empty()) return out;
  for (size_t at = out.find(password); at != std::string::npos; at = out.find(password, at + 3))
    out.replace(at, password.size(), "***");
  return out;
}

}  // namespace mailsync::postgres
