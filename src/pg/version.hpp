// The library's version and the version of the extension installed in this database:
// they differ between installing a new library and ALTER EXTENSION pg_consistency UPDATE.
#pragma once

namespace pgc::pg {

// PGC_VERSION, the default_version of the control file the library was built with.
const char* library_version();

// extversion of pg_consistency in this database (palloc'd in the current memory
// context), or nullptr when it is not installed. Needs a transaction; plain code (no
// C++ object is live if the catalog read raises an ERROR).
char* installed_version();

}  // namespace pgc::pg
