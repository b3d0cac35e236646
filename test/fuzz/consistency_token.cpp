// Consistency tokens (src/consistency/token.*): the input is cut into two candidate tokens.
// Parsing never throws; a token parsed is exactly the text it came from (format round-trips,
// so one position has one spelling); combine() covers both operands and is the smallest
// such token; covers() agrees with that order.
#include <cstdint>
#include <string>

#include "consistency/token.hpp"
#include "fuzz_input.hpp"

using pgc::consistency::Token;

namespace {
bool same(const Token& a, const Token& b) {
  return a.system_id == b.system_id && a.database == b.database && a.lsn == b.lsn && a.position == b.position;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = pgc::fuzz::fields(data, size, 2);
  auto pa = pgc::consistency::parse_token(f[0]);
  auto pb = pgc::consistency::parse_token(f[1]);
  PGC_FUZZ_CHECK(pa.token.has_value() == pa.problem.empty());
  if (pa.token) PGC_FUZZ_CHECK(pgc::consistency::format_token(*pa.token) == f[0]);
  if (!pa.token || !pb.token) return 0;
  const Token& a = *pa.token;
  const Token& b = *pb.token;
  if (pgc::consistency::mismatch(a, b)) return 0;
  Token c = pgc::consistency::combine(a, b);
  PGC_FUZZ_CHECK(pgc::consistency::covers(c, a) && pgc::consistency::covers(c, b));
  PGC_FUZZ_CHECK(same(c, pgc::consistency::combine(b, a)));
  PGC_FUZZ_CHECK(pgc::consistency::covers(a, b) == same(c, a));
  auto pc = pgc::consistency::parse_token(pgc::consistency::format_token(c));
  PGC_FUZZ_CHECK(pc.token && same(*pc.token, c));
  return 0;
}
