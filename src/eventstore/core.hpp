// Pure logic of the event store: name and argument validation, expected-version and
// idempotency decisions, the gap-safe read horizon, upcaster chain rules and the
// subscription retry policy. No PostgreSQL headers: unit-tested with GoogleTest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/backoff.hpp"

namespace pgc::eventstore {

inline constexpr size_t kMaxStreamNameBytes = 1000;
inline constexpr size_t kMaxTypeNameBytes = 1000;

// The first control character in `s` (C0, DEL, and with `utf8` the C1 range U+0080–U+009F
// encoded as C2 80..C2 9F), as a byte offset; npos when there is none.
size_t find_control_char(std::string_view s, bool utf8);

// Why `name` cannot name a stream, or nothing when it can.
std::optional<std::string> stream_name_problem(std::string_view name, bool utf8);
// Category of a stream: the text before the first '-', or the whole name.
std::string_view category_of(std::string_view stream);
// The category reserved for the extension's own audit trails (the sagas' `saga-<id>`
// streams): the SQL functions refuse to append to it or to save snapshots of it.
inline constexpr std::string_view kReservedCategory = "saga";
bool is_reserved_stream(std::string_view stream);
// Why `category` cannot be a category filter (empty is allowed: streams named "-x").
std::optional<std::string> category_problem(std::string_view category, bool utf8);
// Why `name` cannot name an object of kind `what` (e.g. "subscription name"): empty,
// longer than `max_bytes`, or containing a control character.
std::optional<std::string> object_name_problem(std::string_view what, std::string_view name, size_t max_bytes,
                                               bool utf8);
// Why `type` cannot be an event type.
std::optional<std::string> event_type_problem(std::string_view type, bool utf8);

// Expected-version semantics of append_events: NULL = any, 0 = no stream, n = exactly n.
struct Expected {
  bool any = true;
  int64_t version = 0;
};
std::optional<std::string> expected_version_problem(const Expected& e);
bool expected_matches(const Expected& e, int64_t current_version);
// "any version", "no stream (version 0)", "version 7".
std::string describe_expected(const Expected& e);

// Idempotent re-append: which of the requested ids already exist in the stream.
struct FoundEvent {
  size_t index;       // position of the id in the request (0-based)
  int64_t version;    // version it was stored at
  bool same_content;  // stored type, data and metadata equal the requested ones
};
enum class Idempotency { kProceed, kAlreadyAppended, kClash };
struct IdempotencyDecision {
  Idempotency outcome = Idempotency::kProceed;
  int64_t version = 0;  // kAlreadyAppended: the stream version the call had produced
  std::string reason;   // kClash: why
};
// `has_id[i]` tells whether request event i carried an explicit id; `found` lists the
// stored events whose id equals a requested one (any order).
IdempotencyDecision decide_idempotency(const std::vector<bool>& has_id, std::vector<FoundEvent> found);

// Gap safety: the highest position a reader may return is H - 1 where
// H = min(next value of the position sequence, every published writer lower bound).
// `floors` holds lower bounds; 0 means an empty slot.
int64_t read_horizon(int64_t sequence_next, const int64_t* floors, size_t n);

// Upcasters: `latest` is the current latest schema version of the type (1 when no
// upcaster exists). An upcaster from version v may replace an existing link (v < latest)
// or extend the chain (v == latest); anything else leaves a gap.
std::optional<std::string> upcaster_registration_problem(int from_version, int latest);

// Subscription handler failures: after failure number `attempts` (1 = first failure),
// park when attempts >= max_attempts, else retry after a backoff delay.
struct RetryDecision {
  bool park = false;
  int64_t delay_ms = 0;
};
RetryDecision after_failure(int attempts, int max_attempts, const BackoffPolicy& policy, double unit_random);

// Subscription checkpoint after a batch: `last_handled` is the position of the last
// event the handler completed (or the old checkpoint), `batch_complete` tells whether
// the batch returned fewer rows than asked (so nothing else matches below the horizon)
// and no handler failed. Positions below the horizon are final, so a complete batch
// may move the checkpoint up to horizon - 1.
int64_t next_checkpoint(int64_t checkpoint, int64_t last_handled, bool batch_complete, int64_t horizon);

// Parses a UUID in the forms PostgreSQL accepts: 32 hex digits, optionally in braces,
// with a '-' allowed after any group of four digits. Returns false when malformed.
bool parse_uuid(std::string_view s, unsigned char out[16]);

// Truncates `s` to at most `max_bytes` bytes without cutting a UTF-8 sequence.
std::string truncate_utf8(std::string_view s, size_t max_bytes);

// Names echoed in messages are clipped to this many bytes.
inline constexpr size_t kMessageNameBytes = 200;
// The byte length of the longest prefix of `s` of at most `max_bytes` bytes that ends on a
// character boundary. The default rule is UTF-8's; the server side installs its database
// encoding's rule (pg_mbcliplen) once at load.
using ClipRule = size_t (*)(std::string_view s, size_t max_bytes);
void set_clip_rule(ClipRule rule);
// `s` clipped by the installed rule to at most `max_bytes` bytes.
std::string clip_text(std::string_view s, size_t max_bytes);
// A name as messages show it: clipped to kMessageNameBytes, "..." marking a clipped one.
std::string shown_name(std::string_view s);

}  // namespace pgc::eventstore
