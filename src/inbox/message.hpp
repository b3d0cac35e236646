// Pure parts of the inbox (no PostgreSQL headers): which process serves a consumer, the
// checks a message must pass before its handler can get it, and its headers as JSON.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "relay/kafka.hpp"

namespace pgc::inbox {

// A message as the consumer process holds it between Kafka and its transaction.
struct Message {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  bool key_null = true;
  std::string key;
  bool value_null = true;
  std::string value;
  std::vector<relay::Header> headers;
};

// The consumer process (1..processes) that serves consumer `name`: a stable hash (FNV-1a),
// the same in every process and across restarts.
int owner_process(std::string_view name, int processes);

// True when `s` is valid UTF-8 without NUL bytes (what a text argument may hold).
bool valid_text(std::string_view s);

// The headers as a JSON object of strings. A header without a value, or whose value is not
// valid text, is JSON null; of repeated names the last one wins (as jsonb keeps it).
// Names that are not valid text are left out.
std::string headers_json(const std::vector<relay::Header>& headers);

// The value of the last header called `name`, or nullptr (also when it has no value).
const std::string* find_header(const std::vector<relay::Header>& headers, std::string_view name);

// Why the message cannot be given to a handler at all (dead-lettered at once), or "".
// Checks the key and, for a jsonb handler, that the value is text (JSON itself is
// checked by PostgreSQL).
std::string unusable_reason(const Message& m, bool raw_value);

}  // namespace pgc::inbox
