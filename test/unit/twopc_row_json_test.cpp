#include "twopc/row_json.hpp"

#include <gtest/gtest.h>

#include <string>

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
  struct Case {
    uint32_t type;
    const char* text;
    bool is_null;
    F form;
  };
  const Case cases[] = {
      {oid::kBool, "t", false, F::kTrue},
      {oid::kBool, "f", false, F::kFalse},
      {oid::kBool, "maybe", false, F::kString},
      {oid::kInt4, "-42", false, F::kVerbatim},
      {oid::kInt8, "9223372036854775807", false, F::kVerbatim},
      {oid::kNumeric, "1.50", false, F::kVerbatim},
      {oid::kNumeric, "NaN", false, F::kString},
      {oid::kFloat8, "-Infinity", false, F::kString},
      {oid::kFloat8, "1e+100", false, F::kVerbatim},
      {oid::kJsonb, "{\"a\": [1, 2]}", false, F::kVerbatim},
      {oid::kJson, "[true]", false, F::kVerbatim},
      {oid::kJson, "", false, F::kString},
      {25, "plain text", false, F::kString},
      {1007, "{1,2}", false, F::kString},  // arrays keep their text form
      {oid::kInt4, "ignored", true, F::kNull},
      {25, "", false, F::kString},
  };
  for (const Case& c : cases)
    EXPECT_EQ(t::json_form(c.type, c.text, c.is_null), c.form) << c.type << " " << c.text;
}
