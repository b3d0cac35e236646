#include "twopc/statement.hpp"

#include <gtest/gtest.h>

using pgc::twopc::classify_statement;
using pgc::twopc::participant_name_problem;
using pgc::twopc::StatementKind;

TEST(TwopcStatement, OrdinaryStatements) {
  for (const char* s :
       {"SELECT 1", "update t set a = 1", "  INSERT INTO t VALUES (1)",
        "WITH x AS (SELECT 1) SELECT * FROM x", "(SELECT 1)", "PREPARE q AS SELECT 1", "CALL p()",
        "DO $$ BEGIN END $$", "commitments", "select 'COMMIT'", "ENDPOINT", "rollbacks"}) {
    EXPECT_EQ(classify_statement(s).kind, StatementKind::kOrdinary) << s;
  }
}

TEST(TwopcStatement, TransactionControlIsRefusedWhateverTheSpelling) {
  struct Case {
    const char* sql;
    const char* keyword;
  };
  for (Case c :
       {Case{"COMMIT", "COMMIT"}, Case{"commit", "COMMIT"}, Case{"  End", "END"}, Case{"BEGIN", "BEGIN"},
        Case{"start transaction", "START"}, Case{"ROLLBACK", "ROLLBACK"}, Case{"abort", "ABORT"},
        Case{"SAVEPOINT s", "SAVEPOINT"}, Case{"release s", "RELEASE"},
        Case{"ROLLBACK TO SAVEPOINT s", "ROLLBACK"}, Case{"prepare transaction 'x'", "PREPARE TRANSACTION"},
        Case{"PREPARE\n\tTRANSACTION 'x'", "PREPARE TRANSACTION"},
        Case{"COMMIT PREPARED 'x'", "COMMIT PREPARED"},
        Case{"rollback /* c */ prepared 'x'", "ROLLBACK PREPARED"}, Case{"-- comment\nCOMMIT", "COMMIT"},
        Case{"/* a /* nested */ b */ COMMIT", "COMMIT"}, Case{"COMMIT;", "COMMIT"}}) {
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

// PostgreSQL's lexer ends a -- comment at \r as well as at \n.
TEST(TwopcStatement, LineCommentsEndAtCarriageReturn) {
  struct Case {
    const char* sql;
    const char* keyword;
  };
  for (Case c : {Case{"--x\rCOMMIT", "COMMIT"}, Case{"-- x\r\nCOMMIT", "COMMIT"},
                 Case{"PREPARE --x\rTRANSACTION 'g'", "PREPARE TRANSACTION"},
                 Case{"COMMIT --x\rPREPARED 'g'", "COMMIT PREPARED"},
                 Case{"ROLLBACK -- a\r-- b\rPREPARED 'g'", "ROLLBACK PREPARED"},
                 Case{"/* a */--b\r/* c */ BEGIN", "BEGIN"}}) {
    auto info = classify_statement(c.sql);
    EXPECT_EQ(info.kind, StatementKind::kTransactionControl) << c.sql;
    EXPECT_EQ(info.keyword, c.keyword) << c.sql;
  }
  // A -- comment does not hide what follows a \r: this is SELECT 1 AS "commit" to the
  // server, one ordinary statement (no ';', and the participant takes exactly one).
  EXPECT_EQ(classify_statement("SELECT 1 --x\rCOMMIT").kind, StatementKind::kOrdinary);
  EXPECT_EQ(classify_statement("-- only\r").kind, StatementKind::kEmpty);
}

// The server drops empty statements: ";COMMIT" parses to exactly one statement, COMMIT,
// which the extended protocol accepts.
TEST(TwopcStatement, LeadingEmptyStatementsAreSkipped) {
  for (const char* s : {";COMMIT", " ; ;COMMIT", "/* x */;\n-- y\n;commit", ";\rEND",
                        "; PREPARE TRANSACTION 'g'", ";;;ROLLBACK PREPARED 'g'"}) {
    EXPECT_EQ(classify_statement(s).kind, StatementKind::kTransactionControl) << s;
  }
  EXPECT_EQ(classify_statement(";").kind, StatementKind::kEmpty);
  EXPECT_EQ(classify_statement(" ; /* */ ; -- x").kind, StatementKind::kEmpty);
  EXPECT_EQ(classify_statement("; SELECT 1").kind, StatementKind::kOrdinary);
}

TEST(TwopcStatement, NestedBlockComments) {
  EXPECT_EQ(classify_statement("/* /* COMMIT */ still a comment */ COMMIT").keyword, "COMMIT");
  EXPECT_EQ(classify_statement("/* /* */ COMMIT */").kind, StatementKind::kEmpty);
  EXPECT_EQ(classify_statement("/* -- */ COMMIT").keyword, "COMMIT");  // -- inside /* */
  EXPECT_EQ(classify_statement("-- /*\nCOMMIT").keyword, "COMMIT");    // /* inside --
  EXPECT_EQ(classify_statement("/* ' */ COMMIT").keyword, "COMMIT");   // quotes mean nothing
  EXPECT_EQ(classify_statement("/*/ COMMIT */").kind, StatementKind::kEmpty);
  EXPECT_EQ(classify_statement("/* a /* b */ COMMIT").kind, StatementKind::kOrdinary);  // open
}

// Identifiers as the lexer reads them: a keyword followed by identifier characters
// ($, digits, non-ASCII bytes) is another identifier, not the keyword; quoting never
// makes a keyword.
TEST(TwopcStatement, WordsAreWholeIdentifiers) {
  for (const char* s :
       {"COMMIT1", "commit$x", "begin_work", "end2", "COMMIT\xC3\xA9", "\"COMMIT\"", "U&\"COMMIT\"",
        "E'COMMIT'", "$$COMMIT$$", "$q$COMMIT$q$", "'COMMIT'", "PREPARE \"TRANSACTION\" AS SELECT 1",
        "PREPARE transaction1 AS SELECT 1", "PREPARE x AS SELECT 1"}) {
    EXPECT_EQ(classify_statement(s).kind, StatementKind::kOrdinary) << s;
  }
  EXPECT_EQ(classify_statement("COMMIT(").keyword, "COMMIT");
  EXPECT_EQ(classify_statement("\fcommit\v").keyword, "COMMIT");
  EXPECT_EQ(classify_statement("PREPARE TRANSACTION").keyword, "PREPARE TRANSACTION");
  EXPECT_EQ(classify_statement("rollback and chain").keyword, "ROLLBACK");
  EXPECT_EQ(classify_statement("COMMIT AND NO CHAIN").keyword, "COMMIT");
  EXPECT_EQ(classify_statement("START TRANSACTION ISOLATION LEVEL SERIALIZABLE").keyword, "START");
}

TEST(TwopcStatement, ParticipantNames) {
  for (const char* ok : {"a", "inventory", "shard_01", "eu-west.orders", "A9"})
    EXPECT_FALSE(participant_name_problem(ok).has_value()) << ok;
  for (const char* bad : {"", "has space", "semi;colon", "quote'", "ünï", "tab\t", "a/b"})
    EXPECT_TRUE(participant_name_problem(bad).has_value()) << bad;
  EXPECT_FALSE(participant_name_problem(std::string(63, 'x')).has_value());
  EXPECT_TRUE(participant_name_problem(std::string(64, 'x')).has_value());
}
