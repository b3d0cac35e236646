// A batch of outbox rows as the relay holds them between PostgreSQL and Kafka. Plain
// data: no PostgreSQL headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pgc::relay {

// A batch's rows: every string lives in one byte arena (few allocations per batch, not
// a dozen per row); rows and headers refer to it by offset.
struct Span {
  uint32_t off = 0;
  uint32_t len = 0;
};

struct OwnHeader {
  Span name;
  Span value;
  bool null = false;
};

struct Row {
  int64_t id = 0;
  Span topic, key, payload, content_type;
  bool key_null = false;
  bool payload_null = false;
  int64_t created_at = 0;
  int attempts = 0;
  uint32_t hdr_begin = 0;
  uint32_t hdr_count = 0;
};

// A batch stops growing past this many bytes of row data (offsets are 32-bit; and a huge
// batch only delays its acknowledgement).
constexpr size_t kMaxBatchBytes = 256u << 20;

struct RowSet {
  std::string blob;
  std::vector<Row> rows;
  std::vector<OwnHeader> headers;

  // Appends n bytes to the arena; returns where they are.
  Span add(const char* p, size_t n) {
    Span sp{static_cast<uint32_t>(blob.size()), static_cast<uint32_t>(n)};
    blob.append(p, n);
    return sp;
  }
  std::string_view view(Span sp) const { return std::string_view(blob.data() + sp.off, sp.len); }
};

}  // namespace pgc::relay
