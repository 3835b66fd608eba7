#include "support/test_database.hpp"

#include <unistd.h>
#include <atomic>
#include <pqxx/pqxx>

#include "support/process.hpp"

namespace mailsync::testing {

namespace {
std::atomic<int> counter{0};

std::string with_database(const std::string& url, const std::string& database) {
  const size_t scheme = url.find("://");
  const size_t slash = url.find('/', scheme + 3);
  const size_t query = url.find('?', scheme + 3);
  std::string base = url.substr(0, slash == std::string::npos ? query : slash);
  return base + "/" + database + (query == std::string::npos ? "" : url.substr(query));
}
}  // namespace

TestDatabase::TestDatabase()
    : admin_url_(stack_env("MAILSYNC_STACK_PG_ADMIN_URL")),
      name_("mailsync_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++)) {
  pqxx::connection admin(admin_url_);
  pqxx::nontransaction work(admin);
  work.exec("SET client_min_messages = warning");
  work.exec("DROP DATABASE IF EXISTS " + name_);
  work.exec("CREATE DATABASE " + name_);
  url_ = with_database(admin_url_, name_);
  pooled_url_ = with_database(stack_env("MAILSYNC_STACK_PGBOUNCER_URL"), name_);
}

TestDatabase::~TestDatabase() {
  try {
    pqxx::connection admin(admin_url_);
    pqxx::nontransaction work(admin);
    work.exec("SET client_min_messages = warning");
    work.exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
  } catch (const std::exception&) {
    // best effort: the throwaway cluster goes away with the stack
  }
}

std::string TestDatabase::query_value(const std::string& sql) const {
  pqxx::connection connection(url_);
  pqxx::nontransaction work(connection);
  const pqxx::result result = work.exec(sql);
  if (result.empty() || result[0][0].is_null()) return {};
  return result[0][0].c_str();
}

std::string TestDatabase::query_lines(const std::string& sql) const {
  pqxx::connection connection(url_);
  pqxx::nontransaction work(connection);
  std::string out;
  for (const auto& row : work.exec(sql)) {
    if (!out.empty()) out += "\n";
    out += row[0].is_null() ? "" : row[0].c_str();
  }
  return out;
}

void TestDatabase::execute(const std::string& sql) const {
  pqxx::connection connection(url_);
  pqxx::nontransaction(connection).exec(sql);
}

std::string sql_literal(std::string_view text) {
  std::string out = "'";
  for (const char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

}  // namespace mailsync::testing
