#pragma once

namespace pgc::worker {
// Registers the launcher as a static background worker; only while preloading.
void register_launcher();
}  // namespace pgc::worker
