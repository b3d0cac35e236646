#include "relay/murmur2.hpp"

namespace pgc::relay {

int32_t murmur2(const void* data, std::size_t len) {
  // MurmurHash2 with the seed and mixing constants of org.apache.kafka.common.utils.Utils.
  const uint32_t seed = 0x9747b28cu;
  const uint32_t m = 0x5bd1e995u;
  const int r = 24;
  const auto* bytes = static_cast<const unsigned char*>(data);
  uint32_t h = seed ^ static_cast<uint32_t>(len);
  std::size_t blocks = len / 4;
  for (std::size_t i = 0; i < blocks; i++) {
    const unsigned char* p = bytes + 4 * i;
    // Little-endian read, independent of the host's byte order.
    uint32_t k = static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
                 (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
  }
  const unsigned char* tail = bytes + 4 * blocks;
  switch (len & 3) {
    case 3:
      h ^= static_cast<uint32_t>(tail[2]) << 16;
      [[fallthrough]];
    case 2:
      h ^= static_cast<uint32_t>(tail[1]) << 8;
      [[fallthrough]];
    case 1:
      h ^= static_cast<uint32_t>(tail[0]);
      h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return static_cast<int32_t>(h);
}

int32_t java_partition(std::string_view key, int32_t partitions) {
  if (partitions <= 0) return -1;
  uint32_t positive = static_cast<uint32_t>(murmur2(key)) & 0x7fffffffu;
  return static_cast<int32_t>(positive % static_cast<uint32_t>(partitions));
}

}  // namespace pgc::relay
