#include "correlation/ids.hpp"

#include <cstdio>

namespace pgc::correlation {

std::optional<std::string> id_problem(std::string_view s) {
  if (s.empty()) return std::string("an id must not be empty");
  if (s.size() > kMaxIdBytes)
    return "an id has at most " + std::to_string(kMaxIdBytes) + " bytes; this one has " +
           std::to_string(s.size());
  for (std::size_t i = 0; i < s.size(); i++) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x21 || c > 0x7e) {
      char what[96];
      snprintf(what, sizeof what, "byte %zu (0x%02x) is not a visible ASCII character", i + 1, c);
      return std::string(what);
    }
  }
  return std::nullopt;
}

Ids of_message(const std::string* correlation_header, const std::string* ce_id, std::string_view topic,
               int32_t partition, int64_t offset) {
  Ids ids;
  if (ce_id != nullptr && valid_id(*ce_id)) {
    ids.causation = *ce_id;
  } else {
    ids.causation = std::string(topic) + "/" + std::to_string(partition) + "/" + std::to_string(offset);
    // A topic name is always visible ASCII; only its length could be out of bounds.
    if (!valid_id(ids.causation)) ids.causation.clear();
  }
  if (correlation_header != nullptr && valid_id(*correlation_header)) {
    ids.correlation = *correlation_header;
  } else {
    ids.correlation = ids.causation;
  }
  return ids;
}

Ids of_event(std::string_view metadata_correlation, std::string_view event_id) {
  Ids ids;
  if (valid_id(event_id)) ids.causation = std::string(event_id);
  ids.correlation = valid_id(metadata_correlation) ? std::string(metadata_correlation) : ids.causation;
  return ids;
}

Ids of_saga(std::string_view stored_correlation, std::string_view saga_id) {
  Ids ids;
  if (valid_id(saga_id)) ids.causation = std::string(saga_id);
  ids.correlation = valid_id(stored_correlation) ? std::string(stored_correlation) : ids.causation;
  return ids;
}

}  // namespace pgc::correlation
