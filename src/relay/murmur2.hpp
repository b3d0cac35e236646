// Kafka's Java-client key partitioning: Utils.murmur2 and
// toPositive(murmur2(key)) % partitions. librdkafka's `murmur2_random` partitioner
// computes the same; this copy lets tests and consistency.kafka_partition() check it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pgc::relay {

// Signed, as Java returns it.
int32_t murmur2(const void* data, std::size_t len);
inline int32_t murmur2(std::string_view s) { return murmur2(s.data(), s.size()); }

// The partition a Java producer's default partitioner picks for a non-null key.
int32_t java_partition(std::string_view key, int32_t partitions);

}  // namespace pgc::relay
