#include "twopc/row_json.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>

namespace t = pgc::twopc;
namespace oid = pgc::twopc::type_oid;

TEST(TwopcRowJson, JsonNumbers) {
  for (const char* s : {"0", "-0", "12", "-3.25", "1e+30", "1.5E-7", "123456789012345678901234567890.5"})
    EXPECT_TRUE(t::is_json_number(s)) << s;
  EXPECT_TRUE(t::is_json_number("1" + std::string(400, '0')));  // numeric: no range limit
  for (const char* s : {"", "-", "01", "1.", ".5", "1e", "NaN", "Infinity", "-Infinity", "+1", "0x10", "1 "})
    EXPECT_FALSE(t::is_json_number(s)) << s;
}

// What each value becomes; JsonRow writes it (escape_json, in the backend: covered by
// sql/40_twopc.sql).
TEST(TwopcRowJson, FormsByType) {
  using F = t::JsonForm;
  using Case = std::pair<uint32_t, const char*>;
  EXPECT_EQ(t::json_form(oid::kBool, "t", false), F::kTrue);
  EXPECT_EQ(t::json_form(oid::kBool, "f", false), F::kFalse);
  EXPECT_EQ(t::json_form(oid::kInt4, "ignored", true), F::kNull);
  // Numbers and JSON as they are.
  for (const Case& c :
       {Case{oid::kInt4, "-42"}, Case{oid::kInt8, "9223372036854775807"}, Case{oid::kNumeric, "1.50"},
        Case{oid::kFloat8, "1e+100"}, Case{oid::kJsonb, "{\"a\": [1, 2]}"}, Case{oid::kJson, "[true]"}})
    EXPECT_EQ(t::json_form(c.first, c.second, false), F::kVerbatim) << c.second;
  // The rest as strings: NaN and infinities, an empty json, other types (arrays keep their
  // text form), a bool that is neither.
  for (const Case& c : {Case{oid::kNumeric, "NaN"}, Case{oid::kFloat8, "-Infinity"}, Case{oid::kJson, ""},
                        Case{25, "plain text"}, Case{25, ""}, Case{1007, "{1,2}"}, Case{oid::kBool, "maybe"}})
    EXPECT_EQ(t::json_form(c.first, c.second, false), F::kString) << c.second;
}
