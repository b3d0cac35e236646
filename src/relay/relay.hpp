// The Kafka relay: a component of the per-database worker (see relay.cpp).
#pragma once

#include "pg/component.hpp"

namespace pgc::relay {

// Registered with the worker; publish() wakes it at commit.
extern const pg::Component kRelayComponent;

}  // namespace pgc::relay
