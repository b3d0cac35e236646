// The label a consumer process leaves for its hard stop (worker/hard_stop.hpp): which
// message's handler was running, so that the process taking over can charge that message
// a failed attempt. No PostgreSQL headers.
//
//   consumer:<process>:<key, 16 hex>:<partition>:<offset>: consumer "<name>" topic <topic>
//
// The key hashes consumer and topic (64-bit FNV-1a), so the parsed part never depends on
// how long the names are; the names after it are for the log line only (cut to fit).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pgc::inbox {

struct StoppedMessage {
  int process = 0;
  uint64_t key = 0;
  int32_t partition = 0;
  int64_t offset = 0;
};

// The key of (consumer, topic).
uint64_t partition_key(std::string_view consumer, std::string_view topic);
// "consumer:<process>:": the labels of one consumer process.
std::string hard_stop_prefix(int process);
std::string hard_stop_label(int process, std::string_view consumer, std::string_view topic, int32_t partition,
                            int64_t offset);
// False when `label` is not one of ours.
bool parse_hard_stop_label(std::string_view label, StoppedMessage* out);

}  // namespace pgc::inbox
