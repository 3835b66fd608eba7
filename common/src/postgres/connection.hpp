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

// Opens a connection named `application_name` (visible in pg_stat_activity) with the socket
// bounds of connection_string. It sets nothing on the session: no SET, no prepared statement,
// no LISTEN unless asked (JobStore::listen), so it works through PgBouncer in transaction
// pooling mode, where consecutive transactions may run on different server connections.
inline std::unique_ptr<pqxx::connection> open_connection(const std::string& database_url,
                                                         std::string_view application_name) {
  return translate_errors(database_url, [&] {
    return std::make_unique<pqxx::connection>(
        connection_string(database_url, std::string(application_name)));
  });
}

// Runs `query` with its parameters bound, as an unnamed statement (parse, bind and execute in one
// round trip): nothing outlives the transaction.
template <typename... Args>
pqxx::result exec(pqxx::transaction_base& work, const queries::Query& query, Args&&... args) {
  return work.exec_params(query.sql, std::forward<Args>(args)...);
}

// The same, for a statement that returns exactly one row (pqxx::unexpected_rows otherwise).
template <typename... Args>
pqxx::row exec1(pqxx::transaction_base& work, const queries::Query& query, Args&&... args) {
  return work.exec_params1(query.sql, std::forward<Args>(args)...);
}

// One connection, with error translation and a deadline around every use: what each Pg*Store is
// built on. One thread at a time, like the connection.
class StoreConnection {
 public:
  StoreConnection(std::string url, std::string_view application_name)
      : url_(std::move(url)),
        connection_(open_connection(url_, application_name)),
        timeout_(statement_timeout()) {}

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
