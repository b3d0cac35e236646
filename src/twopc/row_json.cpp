#include "twopc/row_json.hpp"

#include "pg/guard.hpp"

extern "C" {
#include "utils/json.h"
}

namespace pgc::twopc {

void JsonRow::add(std::string_view name, uint32_t type, std::string_view value, bool is_null) {
  JsonForm form = json_form(type, value, is_null);
  fields_.push_back({std::string(name), form, form == JsonForm::kNull ? std::string() : std::string(value)});
}

std::string JsonRow::finish() {
  std::string out = pg::pg_call([&] {
    StringInfoData buf;
    initStringInfo(&buf);
    appendStringInfoChar(&buf, '{');
    for (const Field& f : fields_) {
      if (&f != &fields_.front()) appendStringInfoChar(&buf, ',');
      escape_json(&buf, f.name.c_str());
      appendStringInfoChar(&buf, ':');
      switch (f.form) {
        case JsonForm::kNull:
          appendStringInfoString(&buf, "null");
          break;
        case JsonForm::kTrue:
          appendStringInfoString(&buf, "true");
          break;
        case JsonForm::kFalse:
          appendStringInfoString(&buf, "false");
          break;
        case JsonForm::kVerbatim:
          appendBinaryStringInfo(&buf, f.value.data(), static_cast<int>(f.value.size()));
          break;
        case JsonForm::kString:
          escape_json(&buf, f.value.c_str());
          break;
      }
    }
    appendStringInfoChar(&buf, '}');
    std::string json(buf.data, buf.len);
    pfree(buf.data);
    return json;
  });
  fields_.clear();
  return out;
}

}  // namespace pgc::twopc
