#include "pg/text.hpp"

#include "pg/postgres.hpp"

extern "C" {
#include "mb/pg_wchar.h"
}

namespace pgc::pg {

std::string clipped(const char* data, int len, int max_bytes) {
  if (data == nullptr || len <= 0) return std::string();
  if (len <= max_bytes) return std::string(data, static_cast<size_t>(len));
  // pg_mbcliplen never raises: it only walks lengths of the (already valid) text.
  int keep = pg_mbcliplen(data, len, max_bytes);
  return std::string(data, static_cast<size_t>(keep)) + "... (" + std::to_string(len) + " bytes)";
}

}  // namespace pgc::pg
