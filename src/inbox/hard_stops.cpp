#include "inbox/hard_stops.hpp"

#include <map>
#include <tuple>

#include "inbox/hard_stop_label.hpp"
#include "worker/hard_stop.hpp"

namespace pgc::inbox {

namespace {

struct Charge {
  int count = 0;
  TimestampTz at = 0;
};

using Where = std::tuple<uint64_t, int32_t, int64_t>;  // (key, partition, offset)
// Small: at most a few per restart.
std::map<Where, Charge> g_charges;
std::map<Where, Charge> g_in_flight;  // taken by the open transaction

}  // namespace

void name_running_message(int process, const std::string& consumer, const Message& m) {
  std::string label = hard_stop_label(process, consumer, m.topic, m.partition, m.offset);
  worker::set_hard_stop_label(label.c_str());
}

void clear_running_message() { worker::clear_hard_stop_label(); }

void collect_hard_stops(int process) {
  worker::HardStopEntry entries[worker::kMaxHardStops];
  int n = worker::take_hard_stops(hard_stop_prefix(process).c_str(), entries, worker::kMaxHardStops);
  for (int i = 0; i < n; i++) {
    StoppedMessage s;
    if (!parse_hard_stop_label(entries[i].label, &s)) continue;
    Charge& c = g_charges[{s.key, s.partition, s.offset}];
    c.count++;
    if (entries[i].at > c.at) c.at = entries[i].at;
  }
}

int take_hard_stop_charges(const std::string& consumer, const Message& m, TimestampTz* at) {
  if (g_charges.empty()) return 0;
  auto it = g_charges.find({partition_key(consumer, m.topic), m.partition, m.offset});
  if (it == g_charges.end()) return 0;
  int n = it->second.count;
  *at = it->second.at;
  g_in_flight[it->first] = it->second;
  g_charges.erase(it);
  return n;
}

bool hard_stop_pending(const std::string& consumer, const Message& m) {
  return !g_charges.empty() && g_charges.count({partition_key(consumer, m.topic), m.partition, m.offset}) > 0;
}

void charges_committed() { g_in_flight.clear(); }

void charges_lost() {
  for (auto& [where, c] : g_in_flight) {
    Charge& back = g_charges[where];
    back.count += c.count;
    if (c.at > back.at) back.at = c.at;
  }
  g_in_flight.clear();
}

}  // namespace pgc::inbox
