// The Kafka relay: a component of the per-database worker (see relay.cpp).
#pragma once

#include "pg/component.hpp"

namespace pgc::relay {

// Registered with the worker; publish() wakes it at commit.
extern const pg::Component kRelayComponent;

// Asks for the relay to be woken when the current transaction commits, if it is on
// (pg_consistency.kafka_brokers set): with the relay off a wake-up would only cost the
// committing backend a signal and the worker an empty tick.
void wake_at_commit();

}  // namespace pgc::relay
