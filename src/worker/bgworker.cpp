#include "worker/bgworker.hpp"

#include "pg/memory.hpp"

namespace pgc::worker {

BackgroundWorker dynamic_worker(const char* function, const char* type) {
  BackgroundWorker w;
  memset(&w, 0, sizeof(w));
  w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  w.bgw_start_time = BgWorkerStart_RecoveryFinished;
  w.bgw_restart_time = BGW_NEVER_RESTART;
  snprintf(w.bgw_library_name, BGW_MAXLEN, "pg_consistency");
  snprintf(w.bgw_function_name, BGW_MAXLEN, "%s", function);
  snprintf(w.bgw_type, BGW_MAXLEN, "%s", type);
  w.bgw_notify_pid = MyProcPid;
  return w;
}

BackgroundWorkerHandle* start_dynamic_worker(BackgroundWorker* w) {
  pg::ContextSwitch top(TopMemoryContext);
  BackgroundWorkerHandle* handle = nullptr;
  return RegisterDynamicBackgroundWorker(w, &handle) ? handle : nullptr;
}

}  // namespace pgc::worker
