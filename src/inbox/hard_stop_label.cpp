#include "inbox/hard_stop_label.hpp"

#include <charconv>
#include <cstdio>

namespace pgc::inbox {

namespace {

// Reads digits (base 10 or 16) up to the next ':' and moves past it.
template <typename T>
bool field(std::string_view* s, T* out, int base) {
  std::size_t colon = s->find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  auto [end, ec] = std::from_chars(s->data(), s->data() + colon, *out, base);
  if (ec != std::errc() || end != s->data() + colon) return false;
  s->remove_prefix(colon + 1);
  return true;
}

}  // namespace

uint64_t partition_key(std::string_view consumer, std::string_view topic) {
  uint64_t h = 14695981039346656037ull;
  auto mix = [&h](unsigned char c) {
    h ^= c;
    h *= 1099511628211ull;
  };
  for (unsigned char c : consumer) mix(c);
  mix(0);  // "ab"+"c" and "a"+"bc" differ
  for (unsigned char c : topic) mix(c);
  return h;
}

std::string hard_stop_prefix(int process) { return "consumer:" + std::to_string(process) + ":"; }

std::string hard_stop_label(int process, std::string_view consumer, std::string_view topic, int32_t partition,
                            int64_t offset) {
  char key[17];
  std::snprintf(key, sizeof(key), "%016llx", static_cast<unsigned long long>(partition_key(consumer, topic)));
  return hard_stop_prefix(process) + key + ":" + std::to_string(partition) + ":" + std::to_string(offset) +
         ": consumer \"" + std::string(consumer) + "\" topic " + std::string(topic);
}

bool parse_hard_stop_label(std::string_view label, StoppedMessage* out) {
  constexpr std::string_view kHead = "consumer:";
  if (label.substr(0, kHead.size()) != kHead) return false;
  label.remove_prefix(kHead.size());
  StoppedMessage m;
  if (!field(&label, &m.process, 10) || !field(&label, &m.key, 16) || !field(&label, &m.partition, 10) ||
      !field(&label, &m.offset, 10))
    return false;
  if (m.process < 1 || m.partition < 0 || m.offset < 0) return false;
  *out = m;
  return true;
}

}  // namespace pgc::inbox
