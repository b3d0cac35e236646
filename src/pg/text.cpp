#include "pg/text.hpp"

#include "pg/postgres.hpp"

extern "C" {
#include "mb/pg_wchar.h"
}

namespace pgc::pg {

std::string clipped(const char* data, int len, int max_bytes, bool show_length) {
  if (data == nullptr || len <= 0) return std::string();
  if (len <= max_bytes) return std::string(data, static_cast<size_t>(len));
  // pg_mbcliplen never raises: it only walks lengths of the (already valid) text.
  int keep = pg_mbcliplen(data, len, max_bytes);
  std::string out(data, static_cast<size_t>(keep));
  return show_length ? out + "... (" + std::to_string(len) + " bytes)" : out + "...";
}

}  // namespace pgc::pg
