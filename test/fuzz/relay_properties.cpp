// Kafka property strings (src/relay/properties.*): parse_properties either fails with a message
// or returns entries whose names are valid and not the relay's own, trimmed names and values;
// writing the entries back as `name=value;...` parses to the same list. A message never
// shows a value (values may be secrets).
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_input.hpp"
#include "relay/properties.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  pgc::relay::Properties props;
  std::string error;
  if (!pgc::relay::parse_properties(text, &props, &error)) {
    PGC_FUZZ_CHECK(!error.empty());
    // Messages name an entry by position, or a reserved name: never a text from the input
    // (the seeds carry values with this marker).
    PGC_FUZZ_CHECK(error.find("s3cr3t") == std::string::npos);
    return 0;
  }
  std::string written;
  for (const auto& [name, value] : props) {
    PGC_FUZZ_CHECK(!name.empty() && !pgc::relay::is_reserved_property(name));
    const char* ws = " \t\r\n";
    PGC_FUZZ_CHECK(std::string(ws).find(name.front()) == std::string::npos);
    PGC_FUZZ_CHECK(value.empty() || (std::string(ws).find(value.front()) == std::string::npos &&
                                     std::string(ws).find(value.back()) == std::string::npos));
    PGC_FUZZ_CHECK(value.find_first_of(";\n") == std::string::npos);
    written += name + "=" + value + ";";
  }
  pgc::relay::Properties again;
  PGC_FUZZ_CHECK(pgc::relay::parse_properties(written, &again, &error));
  PGC_FUZZ_CHECK(again == props);
  return 0;
}
