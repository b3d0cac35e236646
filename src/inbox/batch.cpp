#include "inbox/batch.hpp"

#include <algorithm>
#include <random>

#include "common/backoff.hpp"
#include "inbox/hard_stops.hpp"
#include "inbox/settings.hpp"
#include "pg/guard.hpp"

extern "C" {
#include "miscadmin.h"
#include "utils/timestamp.h"
}

namespace pgc::inbox {

using pg::pg_call;

namespace {

double unit_random() {
  static std::minstd_rand rng(static_cast<unsigned>(MyProcPid));
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

void advance(Progress& p, const Message& m) {
  p.next = m.offset + 1;
  p.attempts = 0;
  p.error.clear();
  p.n++;
}

// What happened to m, applied to its partition: advanced past it, or (a failed attempt
// with attempts left) stopped for a retry in place with backoff, or dead-lettered.
// `failures`: attempts this outcome counts for (hard stops can charge several).
void settle(const ConsumerDef& def, Progress& p, const Message& m, Outcome o, int failures, std::string why,
            Counters* c) {
  if (o == Outcome::kApplied || o == Outcome::kDeduplicated) {
    (o == Outcome::kApplied ? c->consumed : c->deduplicated)++;
    advance(p, m);
    return;
  }
  if (o == Outcome::kFailed) {
    c->failed += failures;
    p.attempts += failures;
    std::string where =
        *p.topic + " [" + std::to_string(p.partition) + "] offset " + std::to_string(m.offset);
    if (p.attempts < settings::max_attempts) {
      p.error =
          clip_reason("handler failed at " + where + " (attempt " + std::to_string(p.attempts) + "): " + why);
      c->last_error = p.error;
      BackoffPolicy policy{settings::retry_ms, std::max(settings::retry_ms, settings::max_retry_ms), 2.0,
                           0.2};
      p.retry_at = TimestampTzPlusMilliseconds(
          GetCurrentTimestamp(), static_cast<long>(backoff_delay_ms(policy, p.attempts, unit_random())));
      p.stopped = true;
      return;
    }
    why = "after " + std::to_string(p.attempts) + " attempts: " + why;
    c->last_error = clip_reason("dead-lettered " + where + ": " + why);
  }
  dead_letter(def, m, clip_reason(why));
  c->dead_lettered++;
  advance(p, m);
}

// A message that needs a subtransaction of its own: one with hard stops to charge (a
// handler ended in an earlier process: failed attempts already, charged here with the
// offsets before it; the handler is not called now), or one that cannot be given to the
// handler.
void apply_one(const ConsumerDef& def, Progress& p, const Message& m, Counters* c, int process) {
  TimestampTz stopped_at = 0;
  int failures = take_hard_stop_charges(def.name, m, &stopped_at);
  if (failures > 0) {
    std::string why = "the handler ran past its time limit (pg_consistency.consumer_handler_timeout, " +
                      std::to_string(settings::handler_timeout_ms) +
                      " ms) and did not stop when cancelled; its process was stopped at " +
                      pg_call([&] { return std::string(timestamptz_to_str(stopped_at)); });
    settle(def, p, m, Outcome::kFailed, failures, why, c);
    return;
  }
  std::string why;
  name_running_message(process, def.name, m);
  Outcome o = apply_message(def, m, &why);
  clear_running_message();
  settle(def, p, m, o, 1, why, c);
}

// Applies msgs (owner[i]: the partition of msgs[i]) in runs of one subtransaction each
// (apply_run). A run that fails at message f is rolled back; the messages before f run
// again in a run of their own and f's failure is settled as its attempt (the handler is
// not called twice for it), so the outcome is that of one subtransaction per message.
// Returns the messages settled.
}  // namespace

long apply_messages(const ConsumerDef& def, const std::vector<const Message*>& msgs,
                    const std::vector<Progress*>& owner, Counters* c, int process) {
  std::size_t n = msgs.size();
  std::vector<char> special(n);
  for (std::size_t i = 0; i < n; i++)
    special[i] = hard_stop_pending(def.name, *msgs[i]) || !unusable_reason(*msgs[i], def.raw_value).empty();
  auto step = [&](std::size_t i) {
    return owner[i]->stopped ? RunStep::kSkip : special[i] ? RunStep::kStop : RunStep::kRun;
  };
  BatchHandler* h = prepare_handler(def);
  constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  std::size_t known_at = kNone;  // a failure seen in a rolled-back run, settled once reached
  Outcome known = Outcome::kFailed;
  std::string known_error;
  long settled = 0;
  std::size_t a = 0, b = n;
  while (a < n) {
    Progress& p = *owner[a];
    if (p.stopped) {
      a++;
    } else if (known_at == a) {
      settle(def, p, *msgs[a], known, 1, known_error, c);
      settled++;
      known_at = kNone;
      a++;
      b = n;
    } else if (special[a]) {
      apply_one(def, p, *msgs[a], c, process);
      settled++;
      a++;
    } else {
      RunResult r = apply_run(def, h, msgs, a, b, step, process);
      if (r.failed && r.end == a) {
        // Alone in its run: exactly a subtransaction of its own.
        settle(def, p, *msgs[a], r.outcome, 1, r.error, c);
        settled++;
        known_at = kNone;
        a++;
        b = n;
      } else if (r.failed) {
        known_at = r.end;
        known = r.outcome;
        known_error = r.error;
        b = r.end;
      } else {
        for (std::size_t i = a; i < r.end; i++) {
          if (r.outcomes[i - a] == Outcome::kUnusable) continue;  // skipped: its partition waits
          settle(def, *owner[i], *msgs[i], r.outcomes[i - a], 1, "", c);
          settled++;
        }
        a = r.end;
        if (a >= b && known_at == kNone) b = n;
      }
    }
  }
  return settled;
}

}  // namespace pgc::inbox
