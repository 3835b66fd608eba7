#include "mailsync/postgres/migrator.hpp"

#include <map>
#include <stdexcept>
#include <string>

#include "mailsync/postgres/errors.hpp"
#include "mailsync/util/sha256.hpp"
#include "postgres/connection.hpp"

namespace mailsync::postgres {

namespace {

// Serialises only the bootstrap below; the migrations themselves are serialised by their version
// rows. The key is arbitrary but fixed: "mailsync" in ASCII.
constexpr long long kBootstrapLockKey = 0x6d61696c73796e63;

constexpr const char* kBootstrapSql = R"sql(
CREATE SCHEMA IF NOT EXISTS mailsync;
CREATE TABLE IF NOT EXISTS mailsync.schema_migrations (
  version    integer     PRIMARY KEY CHECK (version > 0),
  name       text        NOT NULL,
  checksum   text        NOT NULL,  -- SHA-256 of the migration's text, hex
  applied_at timestamptz NOT NULL DEFAULT now()
);
)sql";

// "schema already exists, skipping" and its kin stay off stderr. SET LOCAL, not SET: the
// connection may come through PgBouncer's transaction pooling, which must not see session state.
constexpr const char* kQuiet = "SET LOCAL client_min_messages = warning";

std::string label(const Migration& migration) {
  std::string number = std::to_string(migration.version);
  if (number.size() < 4) number.insert(0, 4 - number.size(), '0');
  return number + "_" + std::string(migration.name);
}

}  // namespace

Migrator::Migrator(std::string database_url, std::span<const Migration> migrations)
    : database_url_(std::move(database_url)), migrations_(migrations) {
  int previous = 0;
  for (const Migration& migration : migrations_) {
    if (migration.version <= previous)
      throw std::invalid_argument("migration " + label(migration) +
                                  ": versions must be positive and strictly increasing");
    previous = migration.version;
  }
}

MigrationReport Migrator::run() {
  auto connection = detail::open_connection(database_url_, "mailsync-migrate");
  return detail::translate_errors(database_url_, [&] {
    {
      pqxx::work bootstrap(*connection);
      bootstrap.exec(kQuiet);
      bootstrap.exec_params("SELECT pg_advisory_xact_lock($1)", kBootstrapLockKey);
      bootstrap.exec(kBootstrapSql);
      bootstrap.commit();
    }

    std::map<int, std::string> applied_checksums;
    {
      pqxx::read_transaction read(*connection);
      for (const auto& row : read.exec("SELECT version, checksum FROM mailsync.schema_migrations"))
        applied_checksums[row[0].as<int>()] = row[1].as<std::string>();
    }

    MigrationReport report;
    std::map<int, bool> known;
    for (const Migration& migration : migrations_) {
      known[migration.version] = true;
      const std::string checksum = util::Sha256::hex_of(migration.sql);
      if (const auto found = applied_checksums.find(migration.version);
          found != applied_checksums.end()) {
        if (found->second != checksum)
          throw MigrationError("migration " + label(migration) +
                               " was changed after it was applied (checksum " + found->second +
                               " in the database, " + checksum +
                               " in this binary); migrations are forward-only: add a new one");
        report.already_applied.push_back(migration.version);
        continue;
      }

      pqxx::work apply(*connection);
      apply.exec(kQuiet);
      try {
        // Version row first: a concurrent migrator blocks here until this transaction ends.
        apply.exec_params(
            "INSERT INTO mailsync.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            migration.version, std::string(migration.name), checksum);
      } catch (const pqxx::unique_violation&) {
        report.applied_elsewhere.push_back(migration.version);
        continue;  // the aborted transaction rolls back when `apply` goes out of scope
      }
      try {
        apply.exec(std::string(migration.sql));
      } catch (const pqxx::broken_connection&) {
        throw;
      } catch (const pqxx::sql_error& e) {
        if (is_unavailable_sqlstate(e.sqlstate())) throw;
        throw MigrationError("migration " + label(migration) +
                             " failed and was rolled back: " + util::one_line(e.what()));
      }
      apply.commit();
      report.applied.push_back(migration.version);
    }

    for (const auto& [version, checksum] : applied_checksums)
      if (!known.contains(version)) report.unknown.push_back(version);
    return report;
  });
}

}  // namespace mailsync::postgres
