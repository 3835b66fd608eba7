#pragma once

// A named SQL statement: the name is also the prepared statement's, so pg_stat_statements and
// the logs of a slow query point back here.
namespace mailsync::postgres::queries {

struct Query {
  const char* name;
  const char* sql;
};

}  // namespace mailsync::postgres::queries
