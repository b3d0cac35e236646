// Text from users, made safe to show in an error message.
#pragma once

#include <string>

namespace pgc::pg {

// At most max_bytes of data[0..len) in the database encoding, cut on a character
// boundary (so a client in another encoding can still convert the message), with "..."
// and (with show_length) the full length appended when clipped: a 100 kB name is not
// echoed whole.
std::string clipped(const char* data, int len, int max_bytes = 200, bool show_length = true);

}  // namespace pgc::pg
