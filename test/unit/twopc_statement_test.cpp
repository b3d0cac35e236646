#include "twopc/statement.hpp"

#include <gtest/gtest.h>

using pgc::twopc::classify_statement;
using pgc::twopc::participant_name_problem;
using pgc::twopc::StatementKind;

TEST(TwopcStatement, OrdinaryStatements) {
  for (const char* s : {"SELECT 1", "update t set a = 1", "  INSERT INTO t VALUES (1)",
                        "WITH x AS (SELECT 1) SELECT * FROM x", "(SELECT 1)",
                        "PREPARE q AS SELECT 1", "CALL p()", "DO $$ BEGIN END $$",
                        "commitments", "select 'COMMIT'", "ENDPOINT", "rollbacks"}) {
    EXPECT_EQ(classify_statement(s).kind, StatementKind::kOrdinary) << s;
  }
}

TEST(TwopcStatement, TransactionControlIsRefusedWhateverTheSpelling) {
  struct Case {
    const char* sql;
    const char* keyword;
  };
  for (Case c : {Case{"COMMIT", "COMMIT"}, Case{"commit", "COMMIT"}, Case{"  End", "END"},
                 Case{"BEGIN", "BEGIN"}, Case{"start transaction", "START"},
                 Case{"ROLLBACK", "ROLLBACK"}, Case{"abort", "ABORT"},
                 Case{"SAVEPOINT s", "SAVEPOINT"}, Case{"release s", "RELEASE"},
                 Case{"ROLLBACK TO SAVEPOINT s", "ROLLBACK"},
                 Case{"prepare transaction 'x'", "PREPARE TRANSACTION"},
                 Case{"PREPARE\n\tTRANSACTION 'x'", "PREPARE TRANSACTION"},
                 Case{"COMMIT PREPARED 'x'", "COMMIT PREPARED"},
                 Case{"rollback /* c */ prepared 'x'", "ROLLBACK PREPARED"},
                 Case{"-- comment\nCOMMIT", "COMMIT"}, Case{"/* a /* nested */ b */ COMMIT", "COMMIT"},
                 Case{"COMMIT;", "COMMIT"}}) {
    auto info = classify_statement(c.sql);
    EXPECT_EQ(info.kind, StatementKind::kTransactionControl) << c.sql;
    EXPECT_EQ(info.keyword, c.keyword) << c.sql;
  }
}

TEST(TwopcStatement, EmptyStatements) {
  for (const char* s : {"", "   ", "\n\t", "-- only a comment", "/* x */", "/* x */ -- y\n "}) {
    EXPECT_EQ(classify_statement(s).kind, StatementKind::kEmpty) << "'" << s << "'";
  }
}

TEST(TwopcStatement, UnterminatedCommentIsLeftToTheServer) {
  EXPECT_EQ(classify_statement("/* COMMIT").kind, StatementKind::kOrdinary);
}

TEST(TwopcStatement, ParticipantNames) {
  for (const char* ok : {"a", "inventory", "shard_01", "eu-west.orders", "A9"})
    EXPECT_FALSE(participant_name_problem(ok).has_value()) << ok;
  for (const char* bad : {"", "has space", "semi;colon", "quote'", "ünï", "tab\t", "a/b"})
    EXPECT_TRUE(participant_name_problem(bad).has_value()) << bad;
  EXPECT_FALSE(participant_name_problem(std::string(63, 'x')).has_value());
  EXPECT_TRUE(participant_name_problem(std::string(64, 'x')).has_value());
}
