// Function references kept in the extension's tables across clusters (function_refs.cpp).
#pragma once

namespace pgc::worker {

// In the database's worker, outside a transaction: binds again, by signature, every
// function reference that another cluster bound (after pg_upgrade). May ereport.
void rebind_function_refs();

}  // namespace pgc::worker
