#include "relay/settings.hpp"

#include <string>

#include "outbox/names.hpp"
#include "pg/postgres.hpp"
#include "relay/properties.hpp"

extern "C" {
#include "utils/guc.h"
}

namespace pgc::relay::settings {

char* kafka_brokers = nullptr;
char* kafka_properties = nullptr;
int mode = kAtLeastOnce;
int batch_size = 1000;
int topic_partitions = 3;
int max_attempts = 5;
char* progress_topic = nullptr;
char* transactional_id = nullptr;

namespace {

const struct config_enum_entry kModeOptions[] = {
    {"at_least_once", kAtLeastOnce, false},
    {"exactly_once", kExactlyOnce, false},
    {nullptr, 0, false},
};

// GUC check hook: kafka_properties must parse (the detail never shows a value).
bool check_properties(char** newval, void**, GucSource) {
  try {
    Properties props;
    std::string error;
    if (!parse_properties(*newval ? *newval : "", &props, &error)) {
      GUC_check_errdetail("%s", error.c_str());
      return false;
    }
    return true;
  } catch (...) {
    GUC_check_errdetail("out of memory");
    return false;
  }
}

// GUC check hook: relay_progress_topic must be a valid topic name.
bool check_progress_topic(char** newval, void**, GucSource) {
  try {
    if (auto problem = outbox::topic_name_problem(*newval ? *newval : "")) {
      GUC_check_errdetail("%s", problem->c_str());
      return false;
    }
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace

void define_settings() {
  DefineCustomStringVariable(
      "pg_consistency.kafka_brokers",
      "Kafka bootstrap servers (host:port,...) for the outbox relay; empty = relay off.", nullptr,
      &kafka_brokers, "", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomStringVariable(
      "pg_consistency.kafka_properties",
      "Extra librdkafka settings for the relay, as name=value entries separated by ';'.",
      "Superuser only; may hold credentials, so it is never shown to other users.", &kafka_properties, "",
      PGC_SIGHUP, GUC_SUPERUSER_ONLY, check_properties, nullptr, nullptr);
  DefineCustomEnumVariable("pg_consistency.relay_mode",
                           "Delivery guarantee of the relay: at_least_once or exactly_once.", nullptr, &mode,
                           kAtLeastOnce, kModeOptions, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("pg_consistency.batch_size", "Outbox rows the relay sends per batch.", nullptr,
                          &batch_size, 1000, 1, 100000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "pg_consistency.topic_partitions",
      "Partitions of the topics the relay creates; 0 = rely on the broker's auto-creation.", nullptr,
      &topic_partitions, 3, 0, 100000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("pg_consistency.relay_max_attempts",
                          "Attempts before a message Kafka refuses for good goes to dead_letters.", nullptr,
                          &max_attempts, 5, 1, 1000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomStringVariable("pg_consistency.relay_progress_topic",
                             "Compacted topic where exactly_once mode commits its progress.", nullptr,
                             &progress_topic, "pg_consistency.relay_progress", PGC_SIGHUP, 0,
                             check_progress_topic, nullptr, nullptr);
  DefineCustomStringVariable("pg_consistency.relay_transactional_id",
                             "Kafka transactional.id of the exactly_once relay; empty = derived from the "
                             "cluster's system identifier and the database OID.",
                             nullptr, &transactional_id, "", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
}

}  // namespace pgc::relay::settings
