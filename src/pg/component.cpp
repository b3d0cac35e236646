#include "pg/component.hpp"

namespace pgc::pg {

namespace {
// Zero-initialised before any static constructor runs, so registration order is safe.
const Component* g_components[kMaxComponents];
int g_count;
bool g_overflowed;
}  // namespace

// Static constructors run before _PG_init, where no ereport is safe yet: an overflow is
// remembered and _PG_init refuses to load.
void register_component(const Component* c) {
  if (g_count < kMaxComponents)
    g_components[g_count++] = c;
  else
    g_overflowed = true;
}

int component_count() { return g_count; }

const Component* component_at(int i) { return (i >= 0 && i < g_count) ? g_components[i] : nullptr; }

int component_index(const Component* c) {
  for (int i = 0; i < g_count; i++)
    if (g_components[i] == c) return i;
  return -1;
}

bool components_overflowed() { return g_overflowed; }

}  // namespace pgc::pg
