// Memory-context helpers for C++ code (never across a longjmp: plain-data code pairs
// MemoryContextSwitchTo by hand).
#pragma once

#include "pg/postgres.hpp"

namespace pgc::pg {

// Switches CurrentMemoryContext for a scope and switches back, also when a C++
// exception leaves the scope.
class ContextSwitch {
 public:
  explicit ContextSwitch(MemoryContext target) : old_(MemoryContextSwitchTo(target)) {}
  ~ContextSwitch() { MemoryContextSwitchTo(old_); }
  ContextSwitch(const ContextSwitch&) = delete;
  ContextSwitch& operator=(const ContextSwitch&) = delete;

 private:
  MemoryContext old_;
};

}  // namespace pgc::pg
