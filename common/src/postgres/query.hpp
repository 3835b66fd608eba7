#pragma once

// A named SQL statement. It runs as an unnamed statement (detail::exec): mailsync keeps no
// prepared statement on a connection, so PgBouncer in transaction pooling mode can hand each
// transaction to any server connection. The name is only for the reader.
namespace mailsync::postgres::queries {

struct Query {
  const char* name;
  const char* sql;
};

}  // namespace mailsync::postgres::queries
