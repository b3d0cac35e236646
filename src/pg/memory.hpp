// Memory-context helpers: a scoped switch, and a scratch context freed at scope exit.
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

// A child context of `parent` deleted at scope exit: per-batch or per-row scratch work.
class ScratchContext {
 public:
  explicit ScratchContext(const char* name, MemoryContext parent = CurrentMemoryContext)
      : cxt_(AllocSetContextCreate(parent, name, ALLOCSET_DEFAULT_SIZES)) {}
  ~ScratchContext() { MemoryContextDelete(cxt_); }
  ScratchContext(const ScratchContext&) = delete;
  ScratchContext& operator=(const ScratchContext&) = delete;
  MemoryContext get() const { return cxt_; }
  void reset() { MemoryContextReset(cxt_); }

 private:
  MemoryContext cxt_;
};

}  // namespace pgc::pg
