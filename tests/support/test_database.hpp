#pragma once

#include <string>
#include <string_view>

namespace mailsync::testing {

// A database of its own on the local stack's PostgreSQL, created empty for one test and dropped
// afterwards, so tests can run in parallel against one server.
class TestDatabase {
 public:
  TestDatabase();
  ~TestDatabase();
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }
  // The same database through the stack's PgBouncer (transaction pooling, 2 server connections).
  const std::string& pooled_url() const { return pooled_url_; }

  // First column of the first row of `sql`, as text ("" for NULL or no rows).
  std::string query_value(const std::string& sql) const;
  // First column of every row, joined by newlines (EXPLAIN output, id lists).
  std::string query_lines(const std::string& sql) const;
  void execute(const std::string& sql) const;

 private:
  std::string admin_url_;
  std::string name_;
  std::string url_;
  std::string pooled_url_;
};

// `text` as an SQL string literal, quotes included ('it''s'), for statements a test writes out.
std::string sql_literal(std::string_view text);

}  // namespace mailsync::testing
