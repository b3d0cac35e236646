#include "inbox/apply.hpp"

#include "correlation/context.hpp"
#include "inbox/hard_stops.hpp"
#include "inbox/settings.hpp"
#include "pg/catching.hpp"
#include "pg/roles.hpp"
#include "pg/run_as.hpp"
#include "pg/spi.hpp"
#include "pg/text.hpp"

extern "C" {
#include "catalog/pg_authid.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
}

namespace pgc::inbox {

using pg::pg_call;
using pg::SavedPlan;

namespace {

constexpr std::size_t kMaxReasonBytes = 2000;

Datum text_datum(const std::string& s) {
  return PointerGetDatum(cstring_to_text_with_len(s.data(), s.size()));
}

Datum jsonb_datum(const std::string& s) { return DirectFunctionCall1(jsonb_in, CStringGetDatum(s.c_str())); }

Datum bytea_datum(const std::string& s) {
  bytea* b = static_cast<bytea*>(palloc(VARHDRSZ + s.size()));
  SET_VARSIZE(b, VARHDRSZ + s.size());
  memcpy(VARDATA(b), s.data(), s.size());
  return PointerGetDatum(b);
}

// True when the ce_id is new for the consumer within the window (recorded now).
bool record_ce_id(const ConsumerDef& c, const std::string& ce_id) {
  static SavedPlan plan(
      "INSERT INTO consistency.consumer_dedupe AS d (consumer, ce_id) VALUES ($1, $2) "
      "ON CONFLICT (consumer, ce_id) DO UPDATE SET seen_at = pg_catalog.now() "
      "WHERE d.seen_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) "
      "pg_catalog.make_interval(secs => $3)) RETURNING 1",
      {TEXTOID, TEXTOID, INT4OID});
  pg::OwnerScope as_owner(catalog_owner());
  return pg_call([&] {
    Datum v[3] = {text_datum(c.name), text_datum(ce_id), Int32GetDatum(settings::dedupe_window_s)};
    plan.execute(v, nullptr, false);
    bool fresh = SPI_processed > 0;
    SPI_freetuptable(SPI_tuptable);  // else one per message stays until the batch ends
    return fresh;
  });
}

// Calls the handler (looked up in *flinfo) with m as c's owner (time limit, pinned
// search path). *stage: 1 while the value is converted, 2 once it was.
void call_handler(const ConsumerDef& c, FmgrInfo* flinfo, const Message& m, int* stage) {
  Datum args[6];
  bool nulls[6] = {false, false, false, m.key_null, m.value_null, false};
  *stage = 1;
  pg_call([&] {
    args[0] = text_datum(m.topic);
    args[1] = Int32GetDatum(m.partition);
    args[2] = Int64GetDatum(m.offset);
    args[3] = m.key_null ? 0 : text_datum(m.key);
    args[4] = m.value_null ? 0 : (c.raw_value ? bytea_datum(m.value) : jsonb_datum(m.value));
  });
  *stage = 2;
  pg_call([&] { args[5] = jsonb_datum(headers_json(m.headers)); });
  TimestampTz started = GetCurrentTimestamp();
  {
    // What the handler publishes or appends carries the message's ids (until the scope
    // ends, or the subtransaction aborts).
    correlation::Scope ids(correlation::of_message(find_header(m.headers, "correlation_id"),
                                                   find_header(m.headers, "ce_id"), m.topic, m.partition,
                                                   m.offset));
    pg::RunAs as_owner(c.owner, settings::handler_timeout_ms);
    pg_call([&] {
      LOCAL_FCINFO(fcinfo, 6);
      InitFunctionCallInfoData(*fcinfo, flinfo, 6, InvalidOid, nullptr, nullptr);
      for (int i = 0; i < 6; i++) {
        fcinfo->args[i].value = args[i];
        fcinfo->args[i].isnull = nulls[i];
      }
      (void)FunctionCallInvoke(fcinfo);
    });
  }
  // A handler that caught the cancellation of its time limit and went on has overrun it.
  int limit = settings::handler_timeout_ms;
  if (limit > 0 && TimestampDifferenceExceeds(started, GetCurrentTimestamp(), limit))
    throw Error("57014",
                "the handler returned after its time limit (pg_consistency.consumer_handler_timeout, " +
                    std::to_string(limit) + " ms) had passed");
}

// What a failed handler subtransaction means for its message.
Outcome classify(const pg::SubtransactionResult& r, int stage, std::string* error) {
  if (stage == 1) {
    *error = clip_reason("CS002: the message value is not valid JSON for a jsonb handler: " + r.error);
    return Outcome::kUnusable;
  }
  *error = r.error;
  if (r.sqlerrcode != 0)
    *error += std::string(" (SQLSTATE ") + pg_call([&] { return unpack_sql_state(r.sqlerrcode); }) + ")";
  *error = clip_reason(*error);
  return Outcome::kFailed;
}

// The ce_id to deduplicate m by, or nullptr.
const std::string* dedupe_id(const Message& m) {
  const std::string* ce_id = settings::dedupe_window_s > 0 ? find_header(m.headers, "ce_id") : nullptr;
  return ce_id != nullptr && valid_text(*ce_id) ? ce_id : nullptr;
}

}  // namespace

// Plain data in the batch's memory (freed with its transaction, also on an error).
struct BatchHandler {
  FmgrInfo flinfo;            // its fn_extra caches a SQL-language handler's plan
  MemoryContext message_cxt;  // one message's arguments, reset before the next
  char* problem;              // handler_problem, or nullptr
};

std::string clip_reason(const std::string& s) {
  if (s.size() <= kMaxReasonBytes) return s;
  return pg_call([&] { return std::string(s.data(), pg_mbcliplen(s.data(), s.size(), kMaxReasonBytes)); });
}

Oid catalog_owner() { return pg::extension_table_owner("consumer_state"); }

std::string handler_problem(const ConsumerDef& c) {
  bool role = false, fn = false, may = false;
  pg_call([&] {
    role = SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(c.owner));
    fn = SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(c.handler));
    if (role && fn) may = pg::may_execute(c.handler, c.owner);
  });
  if (!role) return "the consumer's owner (role " + std::to_string(c.owner) + ") no longer exists";
  if (!fn) return "the handler function " + std::to_string(c.handler) + " no longer exists";
  if (!may) return "permission denied for the handler function: the consumer's owner may not execute it";
  return "";
}

Outcome apply_message(const ConsumerDef& c, const Message& m, std::string* error) {
  std::string unusable = unusable_reason(m, c.raw_value);
  if (!unusable.empty()) {
    *error = unusable;
    return Outcome::kUnusable;
  }
  const std::string* ce_id = dedupe_id(m);
  bool duplicate = false;
  int stage = 0;
  std::string problem = handler_problem(c);
  pg::SubtransactionResult r = pg::in_subtransaction([&] {
    if (ce_id != nullptr && !record_ce_id(c, *ce_id)) {
      duplicate = true;
      return;
    }
    if (!problem.empty()) throw Error("42501", problem);
    FmgrInfo flinfo;
    pg_call([&] { fmgr_info(c.handler, &flinfo); });
    call_handler(c, &flinfo, m, &stage);
  });
  if (r.ok()) return duplicate ? Outcome::kDeduplicated : Outcome::kApplied;
  return classify(r, stage, error);
}

BatchHandler* prepare_handler(const ConsumerDef& c) {
  std::string problem = handler_problem(c);
  return pg_call([&] {
    MemoryContext cxt =
        AllocSetContextCreate(TopTransactionContext, "pg_consistency consumer batch", ALLOCSET_DEFAULT_SIZES);
    auto* h = static_cast<BatchHandler*>(MemoryContextAllocZero(cxt, sizeof(BatchHandler)));
    h->message_cxt = AllocSetContextCreate(cxt, "pg_consistency consumer message", ALLOCSET_DEFAULT_SIZES);
    h->problem = problem.empty() ? nullptr : MemoryContextStrdup(cxt, problem.c_str());
    if (problem.empty()) fmgr_info_cxt(c.handler, &h->flinfo, cxt);
    return h;
  });
}

RunResult apply_run(const ConsumerDef& c, BatchHandler* h, const std::vector<const Message*>& msgs,
                    std::size_t from, std::size_t to, const std::function<RunStep(std::size_t)>& step,
                    int process) {
  RunResult out;
  std::size_t at = from;
  int stage = 0;
  std::vector<Outcome> outcomes;
  pg::SubtransactionResult r = pg::in_subtransaction([&] {
    for (; at < to; at++) {
      RunStep what = step(at);
      if (what == RunStep::kStop) break;
      if (what == RunStep::kSkip) {
        outcomes.push_back(Outcome::kUnusable);
        continue;
      }
      const Message& m = *msgs[at];
      stage = 0;
      // Each message's arguments and our statements' leftovers go with the next message;
      // in_subtransaction restores the caller's context afterwards.
      pg_call([&] {
        MemoryContextReset(h->message_cxt);
        MemoryContextSwitchTo(h->message_cxt);
      });
      const std::string* ce_id = dedupe_id(m);
      if (ce_id != nullptr && !record_ce_id(c, *ce_id)) {
        outcomes.push_back(Outcome::kDeduplicated);
        continue;
      }
      if (h->problem != nullptr) throw Error("42501", h->problem);
      name_running_message(process, c.name, m);
      call_handler(c, &h->flinfo, m, &stage);
      clear_running_message();
      outcomes.push_back(Outcome::kApplied);
    }
  });
  clear_running_message();
  out.end = at;
  if (r.ok()) {
    out.outcomes = std::move(outcomes);
    return out;
  }
  // Not a message's failure (the release of the subtransaction itself): the batch stops.
  if (at >= to) throw Error("55000", "the batch's subtransaction could not be released: " + r.error);
  out.failed = true;
  out.outcome = classify(r, stage, &out.error);
  return out;
}

void dead_letter(const ConsumerDef& c, const Message& m, const std::string& reason) {
  static SavedPlan plan(
      "INSERT INTO consistency.consumer_dead_letters AS d "
      "(consumer, topic, partition, \"offset\", key, value, headers, reason) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
      "ON CONFLICT (consumer, topic, partition, \"offset\") DO UPDATE "
      "SET reason = excluded.reason, failed_at = pg_catalog.now()",
      {TEXTOID, TEXTOID, INT4OID, INT8OID, TEXTOID, BYTEAOID, JSONBOID, TEXTOID});
  pg::OwnerScope as_owner(catalog_owner());
  pg_call([&] {
    bool key_ok = !m.key_null && valid_text(m.key);
    Datum v[8] = {text_datum(c.name),
                  text_datum(m.topic),
                  Int32GetDatum(m.partition),
                  Int64GetDatum(m.offset),
                  key_ok ? text_datum(m.key) : 0,
                  m.value_null ? 0 : bytea_datum(m.value),
                  jsonb_datum(headers_json(m.headers)),
                  text_datum(reason)};
    char nulls[9] = {' ', ' ', ' ', ' ', key_ok ? ' ' : 'n', m.value_null ? 'n' : ' ', ' ', ' ', '\0'};
    plan.execute(v, nulls, false);
  });
}

}  // namespace pgc::inbox
