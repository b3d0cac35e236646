// The metrics component: its per-database area, setting and transaction callbacks.
#pragma once

#include "metrics/area.hpp"
#include "pg/component.hpp"

namespace pgc::metrics {

extern const pg::Component kComponent;

// This database's area (claimed on first use); nullptr without preload or when the
// registry is full.
Area* my_area();

}  // namespace pgc::metrics
