#pragma once

#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "mailsync/postgres/migration.hpp"

namespace mailsync::postgres {

// A migration could not be applied (its SQL failed), or an applied migration's text differs from
// the binary's. The database is left as it was before that migration.
class MigrationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct MigrationReport {
  std::vector<int> applied;            // applied by this run
  std::vector<int> already_applied;    // found applied when the run started
  std::vector<int> applied_elsewhere;  // a concurrent run applied it while this one waited
  std::vector<int> unknown;            // applied in the database but not known to this binary
};

// Applies migrations in version order, each in its own transaction that first inserts its version
// row into mailsync.schema_migrations (the graphile-worker scheme): a concurrent migrator blocks on
// that row's primary key until the first commits, then gets a unique violation and skips the
// version, so no migration is ever applied twice. Bootstrapping the schema and the bookkeeping
// table is serialised by a transaction-scoped advisory lock, since CREATE SCHEMA IF NOT EXISTS is
// not safe against a concurrent twin.
class Migrator {
 public:
  // Throws std::invalid_argument when versions are not strictly increasing and positive.
  Migrator(std::string database_url, std::span<const Migration> migrations);

  // Throws DatabaseUnavailable, MigrationError or DatabaseError.
  MigrationReport run();

 private:
  std::string database_url_;
  std::span<const Migration> migrations_;
};

}  // namespace mailsync::postgres
