#include "pg/component.hpp"

namespace pgc::pg {

namespace {
// Zero-initialised before any static constructor runs, so registration order is safe.
const Component* g_components[kMaxComponents];
int g_count;
}  // namespace

void register_component(const Component* c) {
  if (g_count < kMaxComponents) g_components[g_count++] = c;
}

int component_count() { return g_count; }

const Component* component_at(int i) { return (i >= 0 && i < g_count) ? g_components[i] : nullptr; }

}  // namespace pgc::pg
