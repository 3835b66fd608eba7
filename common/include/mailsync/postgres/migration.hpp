#pragma once

#include <span>
#include <string_view>

namespace mailsync::postgres {

// One forward-only schema migration: sql/NNNN_name.sql. Migrations are never edited once landed;
// the runner stores a checksum of each applied one and refuses a database whose applied text
// differs from the binary's.
struct Migration {
  int version;            // NNNN, strictly increasing
  std::string_view name;  // the part after NNNN_
  std::string_view sql;   // the file's text, byte for byte
};

// The migrations of sql/, embedded at build time by cmake/EmbedSql.cmake, in version order.
std::span<const Migration> embedded_migrations();

}  // namespace mailsync::postgres
