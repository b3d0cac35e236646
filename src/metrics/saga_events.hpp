// Which status a saga reached, read from the audit events of a transition (the one record
// of every change, whatever made it: a worker's chain of steps, a reply, an operator).
// Pure C++.
#pragma once

#include "metrics/series.hpp"
#include "saga/machine.hpp"

namespace pgc::metrics {

// True when event `e` means the saga entered a status: CompensationStarted, SagaCompleted,
// SagaCompensated, SagaFailed, SagaAborted, and SagaRetried of a failed saga (which
// compensates again). Step events and a retry of a running saga change no status.
bool status_reached(const saga::Event& e, SagaStatus* out);

}  // namespace pgc::metrics
