// Validation of the names the outbox accepts: Kafka topic names and event categories.
// Pure logic: no PostgreSQL headers.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pgc::outbox {

inline constexpr std::size_t kMaxTopicLength = 249;

// Kafka's rule: 1-249 characters of [a-zA-Z0-9._-], and not "." or "..".
// Returns the reason the name is invalid, or nullopt when it is valid.
std::optional<std::string> topic_name_problem(std::string_view topic);

// A category is the text of a stream name before its first '-': non-empty, no '-',
// no control characters, at most 200 bytes.
std::optional<std::string> category_problem(std::string_view category);

// The category of a stream name: the text before the first '-', or the whole name.
std::string_view stream_category(std::string_view stream);

// A Kafka header name: non-empty, at most 255 bytes, no NUL.
std::optional<std::string> header_name_problem(std::string_view name);

}  // namespace pgc::outbox
