// Hard stops of consumer handlers: a handler that catches the cancellation of its time
// limit (consumer_handler_timeout) and goes on is ended with its process by the hard stop
// of pg::RunAs. The process names the message before each handler call; the restarted
// process collects what its predecessor left and charges each such message a failed
// attempt when its partition reaches it again: in the batch's transaction, together with
// the messages before it (which the stopped transaction had not committed either), so
// the charge is stored with the offset and retried or dead-lettered like any failure.
#pragma once

#include <string>

#include "inbox/message.hpp"
#include "pg/postgres.hpp"

namespace pgc::inbox {

// Names m of `consumer` as the user code about to run in process `process`.
void name_running_message(int process, const std::string& consumer, const Message& m);
void clear_running_message();

// Takes the hard stops left for process `process` of this database (from the shared
// ring) into this process's memory; kept until charged, whatever happens to the batch.
void collect_hard_stops(int process);

// Hard stops of m of `consumer` not yet charged; *at: the last one. They count as
// charged once the transaction commits (charges_committed); charges_lost puts them
// back when it did not.
int take_hard_stop_charges(const std::string& consumer, const Message& m, TimestampTz* at);
void charges_committed();
// True when m of `consumer` has hard stops waiting to be charged.
bool hard_stop_pending(const std::string& consumer, const Message& m);
void charges_lost();

}  // namespace pgc::inbox
