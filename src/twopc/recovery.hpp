// Finding and resolving our prepared transactions on participants: shared by the
// worker's recovery, the in_doubt view and drop_participant.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "twopc/decision.hpp"
#include "twopc/remote.hpp"
#include "twopc/state.hpp"

namespace pgc::twopc {

struct PreparedXact {
  std::string gid;
  uint64 xid = 0;
  TimestampTz prepared_at = 0;
  Action action = Action::kLeave;
};

// Our prepared transactions (this cluster and database) for participant `participant_id`,
// read from the participant's pg_prepared_xacts. Throws pgc::Error (CS005) on failure.
std::vector<PreparedXact> list_prepared(PGconn*& conn, const std::string& name, int32 participant_id,
                                        WaitMode mode);

// Local status of each xid (SPI connected, one statement).
std::vector<LocalStatus> local_statuses(const std::vector<uint64>& xids);
// Which of `xids` have a decision row for the participant (SPI connected, one statement).
std::vector<bool> decisions_recorded(int32 participant_id, const std::vector<uint64>& xids);
// The xids of the participant's decision rows: commits not yet confirmed there. At most
// `limit` of the lowest (-1: all). SPI connected; reads as the catalog owner.
std::set<uint64> decided_xids(int32 participant_id, int64 limit);

}  // namespace pgc::twopc

namespace pgc::twopc {
// The worker's tick and exit hook (see state.cpp's Component).
long recovery_tick();
void recovery_exit();
// Registers the transaction callbacks of the coordinator (coordinator.cpp).
void install_callbacks();
}  // namespace pgc::twopc
