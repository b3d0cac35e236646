#include "eventstore/core.hpp"

#include <algorithm>
#include <cstdio>

namespace pgc::eventstore {

namespace {

// The default ClipRule: the longest prefix of at most `max_bytes` that ends on a UTF-8
// character boundary.
size_t utf8_clip_len(std::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s.size();
  size_t end = max_bytes;
  // Back up over continuation bytes (10xxxxxx) to the start of a sequence.
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) end--;
  return end;
}

ClipRule g_clip_rule = utf8_clip_len;

// `s` in double quotes for a message, clipped to 60 bytes ("..." marking a clipped one).
std::string quoted_prefix(std::string_view s) {
  constexpr size_t kShow = 60;
  std::string out = "\"";
  out += clip_text(s, kShow);
  if (s.size() > kShow) out += "...";
  out += "\"";
  return out;
}

// "<what> contains a control character (U+0007) at byte 3" for the one at byte offset
// `at` of `s` (a C1 character is shown by its code point, not its C2 lead byte).
std::string control_char_message(const char* what, std::string_view s, size_t at) {
  char buf[96];
  unsigned code = static_cast<unsigned char>(s[at]);
  if (code == 0xC2 && at + 1 < s.size()) code = static_cast<unsigned char>(s[at + 1]);
  snprintf(buf, sizeof(buf), " contains a control character (U+%04X) at byte %zu", code, at + 1);
  return std::string(what) + buf;
}

// Why `name`, shown as `what` in the message, holds a control character; nothing when it
// holds none.
std::optional<std::string> control_char_problem(std::string_view what, std::string_view name, bool utf8) {
  size_t at = find_control_char(name, utf8);
  if (at == std::string_view::npos) return std::nullopt;
  return control_char_message((std::string(what) + " " + quoted_prefix(name)).c_str(), name, at);
}

// The same, or first why `name` is longer than `max_bytes`.
std::optional<std::string> length_or_control_problem(std::string_view what, std::string_view name,
                                                     size_t max_bytes, bool utf8) {
  if (name.size() > max_bytes)
    return std::string(what) + " " + quoted_prefix(name) + " is longer than " + std::to_string(max_bytes) +
           " bytes";
  return control_char_problem(what, name, utf8);
}

}  // namespace

size_t find_control_char(std::string_view s, bool utf8) {
  for (size_t i = 0; i < s.size(); i++) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7F) return i;
    if (utf8 && c == 0xC2 && i + 1 < s.size()) {
      unsigned char d = static_cast<unsigned char>(s[i + 1]);
      if (d >= 0x80 && d <= 0x9F) return i;
    }
  }
  return std::string_view::npos;
}

std::optional<std::string> stream_name_problem(std::string_view name, bool utf8) {
  if (name.empty()) return std::string("stream name must not be empty");
  if (name.size() > kMaxStreamNameBytes)
    return "stream name " + quoted_prefix(name) + " is " + std::to_string(name.size()) +
           " bytes long; the limit is " + std::to_string(kMaxStreamNameBytes) + " bytes";
  return control_char_problem("stream name", name, utf8);
}

std::string_view category_of(std::string_view stream) {
  size_t dash = stream.find('-');
  return dash == std::string_view::npos ? stream : stream.substr(0, dash);
}

bool is_reserved_stream(std::string_view stream) { return category_of(stream) == kReservedCategory; }

std::optional<std::string> category_problem(std::string_view category, bool utf8) {
  if (category.find('-') != std::string_view::npos)
    return "category " + quoted_prefix(category) +
           " contains '-': a category is the part of a stream name before the first '-'";
  return length_or_control_problem("category", category, kMaxStreamNameBytes, utf8);
}

std::optional<std::string> object_name_problem(std::string_view what, std::string_view name, size_t max_bytes,
                                               bool utf8) {
  if (name.empty()) return std::string(what) + " must not be empty";
  return length_or_control_problem(what, name, max_bytes, utf8);
}

std::optional<std::string> event_type_problem(std::string_view type, bool utf8) {
  if (type.empty()) return std::string("event type must not be empty");
  return length_or_control_problem("event type", type, kMaxTypeNameBytes, utf8);
}

std::optional<std::string> expected_version_problem(const Expected& e) {
  if (!e.any && e.version < 0)
    return "expected_version must be NULL (any), 0 (no stream) or a positive version, not " +
           std::to_string(e.version);
  return std::nullopt;
}

bool expected_matches(const Expected& e, int64_t current_version) {
  return e.any || e.version == current_version;
}

std::string describe_expected(const Expected& e) {
  if (e.any) return "any version";
  if (e.version == 0) return "no stream (version 0)";
  return "version " + std::to_string(e.version);
}

IdempotencyDecision decide_idempotency(const std::vector<bool>& has_id, std::vector<FoundEvent> found) {
  IdempotencyDecision d;
  if (found.empty()) return d;  // kProceed
  std::sort(found.begin(), found.end(),
            [](const FoundEvent& a, const FoundEvent& b) { return a.index < b.index; });
  const size_t n = has_id.size();
  d.outcome = Idempotency::kClash;
  for (size_t i = 0; i < n; i++) {
    if (!has_id[i]) {
      d.reason = "event " + std::to_string(i + 1) +
                 " has no id, so the call cannot be a repeat of an earlier append";
      return d;
    }
  }
  if (found.size() != n) {
    d.reason = std::to_string(found.size()) + " of the " + std::to_string(n) +
               " event ids already exist in the stream";
    return d;
  }
  for (size_t i = 0; i < n; i++) {
    if (found[i].index != i) {  // duplicates in the request are rejected earlier
      d.reason = "event ids of the call match the stream ambiguously";
      return d;
    }
    if (found[i].version != found[0].version + static_cast<int64_t>(i)) {
      d.reason = "the event ids exist in the stream in another order or not consecutively";
      return d;
    }
    if (!found[i].same_content) {
      d.reason = "event " + std::to_string(i + 1) +
                 " has the id of a stored event with a different type, data or metadata";
      return d;
    }
  }
  d.outcome = Idempotency::kAlreadyAppended;
  d.version = found[n - 1].version;
  return d;
}

int64_t read_horizon(int64_t sequence_next, const int64_t* floors, size_t n) {
  int64_t h = sequence_next;
  for (size_t i = 0; i < n; i++) {
    if (floors[i] > 0 && floors[i] < h) h = floors[i];
  }
  return h;
}

std::optional<std::string> upcaster_registration_problem(int from_version, int latest) {
  if (from_version < 1) return "from_schema_version must be at least 1, not " + std::to_string(from_version);
  if (from_version > latest)
    return "from_schema_version " + std::to_string(from_version) +
           " leaves a gap: the latest schema version is " + std::to_string(latest) +
           ", so the next upcaster must start from " + std::to_string(latest);
  return std::nullopt;
}

RetryDecision after_failure(int attempts, int max_attempts, const BackoffPolicy& policy, double unit_random) {
  RetryDecision r;
  if (attempts >= max_attempts) {
    r.park = true;
    return r;
  }
  r.delay_ms = backoff_delay_ms(policy, attempts, unit_random);
  return r;
}

int64_t next_checkpoint(int64_t checkpoint, int64_t last_handled, bool batch_complete, int64_t horizon) {
  int64_t next = std::max(checkpoint, last_handled);
  if (batch_complete && horizon - 1 > next) next = horizon - 1;
  return next;
}

bool parse_uuid(std::string_view s, unsigned char out[16]) {
  if (!s.empty() && s.front() == '{') {
    if (s.size() < 2 || s.back() != '}') return false;
    s = s.substr(1, s.size() - 2);
  }
  int digits = 0;
  for (size_t i = 0; i < s.size(); i++) {
    char c = s[i];
    int v;
    if (c >= '0' && c <= '9')
      v = c - '0';
    else if (c >= 'a' && c <= 'f')
      v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v = c - 'A' + 10;
    else if (c == '-' && digits > 0 && digits < 32 && digits % 4 == 0 && s[i - 1] != '-')
      continue;
    else
      return false;
    if (digits >= 32) return false;
    if (digits % 2 == 0)
      out[digits / 2] = static_cast<unsigned char>(v << 4);
    else
      out[digits / 2] |= static_cast<unsigned char>(v);
    digits++;
  }
  return digits == 32 && (s.empty() || s.back() != '-');
}

std::string truncate_utf8(std::string_view s, size_t max_bytes) {
  return std::string(s.substr(0, utf8_clip_len(s, max_bytes)));
}

void set_clip_rule(ClipRule rule) { g_clip_rule = rule != nullptr ? rule : utf8_clip_len; }

std::string clip_text(std::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return std::string(s);
  size_t n = g_clip_rule(s, max_bytes);
  if (n > max_bytes) n = max_bytes;
  return std::string(s.substr(0, n));
}

std::string shown_name(std::string_view s) {
  if (s.size() <= kMessageNameBytes) return std::string(s);
  return clip_text(s, kMessageNameBytes) + "...";
}

}  // namespace pgc::eventstore
