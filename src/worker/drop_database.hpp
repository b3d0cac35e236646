// DROP DATABASE of a database the worker serves. PostgreSQL refuses to drop a database
// while other processes are connected to it, and our background workers are: without
// help a DBA had to use WITH (FORCE), which also throws out every client session.
#pragma once

namespace pgc::worker {

// Installs a ProcessUtility hook (preload only): before DROP DATABASE by a role that may
// drop it, the launcher is told not to start workers for it for a while and our own
// processes connected to it (the worker, saga workers) are asked to exit; PostgreSQL's
// DROP DATABASE then waits up to 5 s for them, as it does for autovacuum.
void install_drop_database_hook();

}  // namespace pgc::worker
