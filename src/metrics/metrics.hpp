// What the pillars call to feed the latency metrics (src/metrics/area.hpp). Every call is
// cheap (a table lookup and an atomic add, or an entry in a fixed array), never raises,
// and does nothing without shared memory or with pg_consistency.latency_metrics off.
#pragma once

#include <cstdint>
#include <string_view>

#include "metrics/series.hpp"

namespace pgc::metrics {

// pg_consistency.latency_metrics (on by default).
extern bool g_enabled;

// The relay: Kafka acknowledged a message whose outbox row was created at `created_at`
// (TimestampTz); `now` is the current TimestampTz. Counted at once: the delivery
// happened, whatever the relay's transaction does next.
void relay_acknowledged(int64_t created_at, int64_t now) noexcept;

// At commit of the current transaction (nothing on abort, or when the subtransaction
// that made the call rolls back):
// saga `saga` reached status `s`; at an end state, `seconds` since it started.
void saga_reached(std::string_view saga, SagaStatus s, double seconds) noexcept;
// an attempt of step `step` ended after `seconds`.
void step_ended(std::string_view saga, std::string_view step, StepOutcome o, double seconds) noexcept;

}  // namespace pgc::metrics
