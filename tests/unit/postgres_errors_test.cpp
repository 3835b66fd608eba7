#include <gtest/gtest.h>

#include "mailsync/postgres/errors.hpp"

namespace {

using mailsync::postgres::is_unavailable_sqlstate;
using mailsync::postgres::redact_password;

TEST(UnavailableSqlstate, CoversConnectionShutdownAndResourceClasses) {
  for (const char* state :
       {"08000", "08006", "08001", "57P01", "57P02", "57P03", "53300", "53100", "58030"})
    EXPECT_TRUE(is_unavailable_sqlstate(state)) << state;
}

TEST(UnavailableSqlstate, ExcludesStatementErrors) {
  for (const char* state : {"23505", "42P01", "40001", "40P01", "57014", "", "08"})
    EXPECT_FALSE(is_unavailable_sqlstate(state)) << state;
}

TEST(RedactPassword, HidesTheUriPassword) {
  EXPECT_EQ(redact_password("bad password s3cret for user", "postgresql://u:s3cret@h:5432/db"),
            "bad password *** for user");
}

TEST(RedactPassword, HidesAKeywordValuePassword) {
  EXPECT_EQ(redact_password("x s3cret y", "host=h password=s3cret dbname=d"), "x *** y");
  EXPECT_EQ(redact_password("x s3 cret y", "host=h password = 's3 cret' dbname=d"), "x *** y");
}

TEST(RedactPassword, LeavesMessagesAloneWhenThereIsNoPassword) {
  EXPECT_EQ(redact_password("refused", "postgresql://u@h/db"), "refused");
  EXPECT_EQ(redact_password("refused", "notaurl"), "refused");
}

}  // namespace
