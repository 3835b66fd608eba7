#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

// Errors of the Postgres layer, without pqxx in sight: callers decide retry vs give up on these
// types alone. Every message is one line and never contains the database password.
namespace mailsync::postgres {

// The database cannot be reached or the connection broke (bad URL, refused, auth failed, server
// shutting down, too many connections). Retryable; executables exit 4.
class DatabaseUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A statement failed on a working connection. Keeps the SQLSTATE.
class DatabaseError : public std::runtime_error {
 public:
  DatabaseError(const std::string& message, std::string sqlstate)
      : std::runtime_error(message), sqlstate_(std::move(sqlstate)) {}
  const std::string& sqlstate() const { return sqlstate_; }

 private:
  std::string sqlstate_;
};

// SQLSTATEs that mean "the server or the connection is not available right now" rather than "this
// statement is wrong": class 08 (connection exception), 57P01-57P03 (admin shutdown, crash
// shutdown, cannot connect now), 53300 (too many connections), 53000 and 58000 class (resources,
// system error).
bool is_unavailable_sqlstate(std::string_view sqlstate);

// Replaces the password of a libpq URI or keyword/value connection string wherever it occurs in
// `message` (libpq echoes parts of a bad connection string in its errors).
std::string redact_password(std::string_view message, std::string_view database_url);

}  // namespace mailsync::postgres
