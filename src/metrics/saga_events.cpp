#include "metrics/saga_events.hpp"

#include <string>

namespace pgc::metrics {

bool status_reached(const saga::Event& e, SagaStatus* out) {
  const std::string& t = e.type;
  if (t == "CompensationStarted") {
    *out = SagaStatus::kCompensating;
  } else if (t == "SagaCompleted") {
    *out = SagaStatus::kCompleted;
  } else if (t == "SagaCompensated") {
    *out = SagaStatus::kCompensated;
  } else if (t == "SagaFailed") {
    *out = SagaStatus::kFailed;
  } else if (t == "SagaAborted") {
    *out = SagaStatus::kAborted;
  } else if (t == "SagaRetried") {
    const saga::json::Value* from = saga::json::member(e.data, "status");
    if (from == nullptr || !from->is_string() || from->get<std::string>() != "failed") return false;
    *out = SagaStatus::kCompensating;
  } else {
    return false;
  }
  return true;
}

}  // namespace pgc::metrics
