#pragma once

// Private to the Postgres layer: the one place that turns pqxx exceptions into the layer's own
// error types (mailsync/postgres/errors.hpp).

#include <pqxx/pqxx>

#include <memory>
#include <string>
#include <string_view>

#include "mailsync/postgres/errors.hpp"
#include "mailsync/util/strings.hpp"
#include "postgres/deadline.hpp"
#include "postgres/query.hpp"

#include <span>

namespace mailsync::postgres::detail {

// Runs `body`, translating pqxx failures: broken connections, in-doubt commits and unavailable
// SQLSTATEs become DatabaseUnavailable, other SQL errors DatabaseError. Messages are one line
// with the password redacted.
template <typename Fn>
decltype(auto) translate_errors(std::string_view database_url, Fn&& body) {
  try {
    return body();
  } catch (const pqxx::broken_connection& e) {
    throw DatabaseUnavailable(redact_password(util::one_line(e.what()), database_url));
  } catch (const pqxx::in_doubt_error& e) {
    throw DatabaseUnavailable("connection lost during commit, outcome unknown: " +
                              redact_password(util::one_line(e.what()), database_url));
  } catch (const pqxx::sql_error& e) {
    std::string message = redact_password(util::one_line(e.what()), database_url);
    if (is_unavailable_sqlstate(e.sqlstate())) throw DatabaseUnavailable(message);
    // undefined_table: almost always a database the schema was never applied to.
    if (e.sqlstate() == "42P01") message += " (has `mailsync migrate` run on this database?)";
    throw DatabaseError(message, e.sqlstate());
  }
}

// Opens a connection named `application_name` (visible in pg_stat_activity) with notices below
// WARNING suppressed, so "schema already exists, skipping" does not reach stderr, and the socket
// bounds of with_socket_bounds.
inline std::unique_ptr<pqxx::connection> open_connection(const std::string& database_url,
                                                         std::string_view application_name) {
  return translate_errors(database_url, [&] {
    auto connection = std::make_unique<pqxx::connection>(with_socket_bounds(database_url));
    pqxx::nontransaction setup(*connection);
    setup.exec("SET client_min_messages = warning");
    setup.exec("SET application_name = " + setup.quote(std::string(application_name)));
    return connection;
  });
}

// One connection, its prepared statements, and error translation and a deadline around every use:
// what each Pg*Store is built on. One thread at a time, like the connection.
class PreparedConnection {
 public:
  PreparedConnection(std::string url, std::string_view application_name,
                     std::span<const queries::Query> statements)
      : url_(std::move(url)),
        connection_(open_connection(url_, application_name)),
        timeout_(statement_timeout()) {
    translate_errors(url_, [&] {
      for (const auto& statement : statements) connection_->prepare(statement.name, statement.sql);
    });
  }

  // `body` gets statement_timeout() for its answers (plus `longer` when it waits on purpose, as
  // LISTEN does); past it the socket is shut down and the call ends DatabaseUnavailable.
  template <typename Fn>
  decltype(auto) run(Fn&& body, std::chrono::milliseconds longer = {}) {
    const Deadline deadline(connection_->sock(), timeout_ + longer);
    try {
      return translate_errors(url_, std::forward<Fn>(body));
    } catch (const DatabaseUnavailable& e) {
      if (!deadline.expired()) throw;
      throw DatabaseUnavailable(
          "no answer from the database within " +
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(timeout_).count()) +
          " s (MAILSYNC_DATABASE_TIMEOUT_SECONDS); the connection was closed: " + e.what());
    }
  }

  pqxx::connection& connection() { return *connection_; }

 private:
  std::string url_;
  std::unique_ptr<pqxx::connection> connection_;
  std::chrono::milliseconds timeout_;
};

}  // namespace mailsync::postgres::detail
