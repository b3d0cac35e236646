// pg_consistency.kafka_properties: extra librdkafka settings as `name=value` entries
// separated by ';' or newlines. Pure logic.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgc::relay {

using Properties = std::vector<std::pair<std::string, std::string>>;

// Parses the list. Whitespace around names and values is trimmed; empty entries are
// ignored; a value may contain '='. Names the relay sets itself (bootstrap servers,
// transactional.id, idempotence, partitioner, ...) are refused. On error returns false
// and a message that names the entry by position and name but never shows a value
// (values may be secrets).
bool parse_properties(std::string_view text, Properties* out, std::string* error);

// True for the settings the relay owns.
bool is_reserved_property(std::string_view name);

}  // namespace pgc::relay
