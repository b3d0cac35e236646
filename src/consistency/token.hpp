// Consistency tokens (docs/consistency.md): what a token holds, its text form, and how
// tokens compare and combine. Pure C++: no PostgreSQL header, unit-tested.
//
// Text form, version 1 (64 characters, lower-case hex, fixed widths):
//   pgc1-<system identifier:16>-<database oid:8>-<WAL position:16>-<event position:16>
// The system identifier and the database keep a token from being used against another
// cluster (a standby shares its primary's identifier) or another database, whose WAL or
// event positions mean something else. The text is opaque to services: they store it and
// hand it back; only this file reads it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgc::consistency {

struct Token {
  uint64_t system_id = 0;
  uint32_t database = 0;
  // WAL: every transaction the token covers has its commit record end at or before it.
  uint64_t lsn = 0;
  // Events: every event the token covers has a global position below it.
  int64_t position = 0;
};

inline constexpr std::string_view kTokenPrefix = "pgc1-";
inline constexpr size_t kTokenLength = 64;

std::string format_token(const Token& t);

// The token `s` holds, or the reason it holds none (for a CS002 message).
struct ParsedToken {
  std::optional<Token> token;
  std::string problem;
};
ParsedToken parse_token(std::string_view s);

// Why tokens `a` and `b` cannot be compared or combined (other cluster or database), or
// nothing.
std::optional<std::string> mismatch(const Token& a, const Token& b);

// True when `a` covers everything `b` covers (same cluster and database assumed).
bool covers(const Token& a, const Token& b);

// The smallest token that covers both (same cluster and database assumed): what a client
// that read at `a` and at `b` must wait for to keep its reads monotonic.
Token combine(const Token& a, const Token& b);

// The end of the last WAL record inserted, given PostgreSQL's insert position `insert`:
// at the start of a WAL page that position points past the page header, where no record
// ends, while a standby's replay position stops at the page boundary. `page_size` is
// XLOG_BLCKSZ, `segment_size` wal_segment_size; `short_header`/`long_header` the sizes
// of the page headers (SizeOfXLogShortPHD, SizeOfXLogLongPHD at a segment's start).
uint64_t insert_end(uint64_t insert, uint64_t page_size, uint64_t segment_size, uint64_t short_header,
                    uint64_t long_header);

}  // namespace pgc::consistency
