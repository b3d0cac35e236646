// Correlation and causation ids, the pure part (no PostgreSQL headers): which values may
// stand as an id, and which ids a handled message, event or saga passes on to what is
// written while it is handled. The current context itself is kept in context.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgc::correlation {

// Ids are 1 to kMaxIdBytes bytes of visible ASCII (0x21-0x7E): UUIDs, ULIDs, trace ids
// and "topic/partition/offset" all fit, and a header stays the same bytes in a database
// of any encoding. The bound is above the longest Kafka coordinates (a 249-character
// topic, a partition and an offset).
inline constexpr std::size_t kMaxIdBytes = 320;

// Why `s` cannot be an id, or nullopt when it can.
std::optional<std::string> id_problem(std::string_view s);
inline bool valid_id(std::string_view s) { return !id_problem(s).has_value(); }

// What a write made while something is handled carries; an empty string is "none".
struct Ids {
  std::string correlation;
  std::string causation;
};

// A Kafka message handled by a consumer: its id is its ce_id header when that is a valid
// id, else its coordinates "topic/partition/offset". causation = that id; correlation =
// its correlation_id header when valid, else that id (the message starts a conversation).
// A header pointer is nullptr when the message has no such header.
Ids of_message(const std::string* correlation_header, const std::string* ce_id, std::string_view topic,
               int32_t partition, int64_t offset);

// An event handled by a subscription: causation = its id; correlation = the
// correlation_id of its metadata when that is a valid id (`metadata_correlation`, empty
// when absent or not a string), else its id.
Ids of_event(std::string_view metadata_correlation, std::string_view event_id);

// A saga's steps: correlation = the id stored when it started, or the saga's own id when
// none was in effect then (the saga starts the conversation); causation = the saga id.
Ids of_saga(std::string_view stored_correlation, std::string_view saga_id);

}  // namespace pgc::correlation
