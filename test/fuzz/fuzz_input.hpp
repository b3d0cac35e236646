// Helpers shared by the libFuzzer targets: splitting one input into several fields, and a
// failed property that must stop the fuzzer with the input saved.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace pgc::fuzz {

// The input cut at each '\x1f' (ASCII unit separator): seeds stay readable text files and the
// fuzzer still reaches every field. Missing fields are empty.
inline std::vector<std::string_view> fields(const uint8_t* data, size_t size, size_t want) {
  std::string_view all(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (out.size() + 1 < want) {
    size_t cut = all.find('\x1f', pos);
    if (cut == std::string_view::npos) break;
    out.push_back(all.substr(pos, cut - pos));
    pos = cut + 1;
  }
  out.push_back(pos <= all.size() ? all.substr(pos) : std::string_view());
  while (out.size() < want) out.push_back({});
  return out;
}

// Aborts (the fuzzer keeps the input as a crash file) when a property does not hold.
#define PGC_FUZZ_CHECK(cond)                                                           \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)

}  // namespace pgc::fuzz
