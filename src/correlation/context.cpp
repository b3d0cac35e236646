// The context is a small stack in static memory (no allocation, so it survives any error
// path): each entry remembers the transaction nesting level it was entered at, a
// subtransaction abort drops the entries of its level and deeper, and the end of the
// top-level transaction empties it.
#include "correlation/context.hpp"

#include "pg/component.hpp"
#include "pg/guard.hpp"

extern "C" {
#include "access/xact.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
}

namespace pgc::correlation {

namespace {

constexpr int kMaxDepth = 16;

struct Entry {
  int level;  // GetCurrentTransactionNestLevel() at enter()
  char correlation[kMaxIdBytes + 1];
  char causation[kMaxIdBytes + 1];
};

Entry g_stack[kMaxDepth];
int g_depth = 0;
bool g_callbacks_registered = false;

char* g_setting = nullptr;  // pg_consistency.correlation_id

void at_xact_end(XactEvent event, void*) {
  switch (event) {
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PARALLEL_COMMIT:
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
    case XACT_EVENT_PREPARE:
      g_depth = 0;
      break;
    default:
      break;
  }
}

// Runs while the aborting subtransaction is still the current one.
void at_subxact_end(SubXactEvent event, SubTransactionId, SubTransactionId, void*) {
  if (event != SUBXACT_EVENT_ABORT_SUB) return;
  int level = GetCurrentTransactionNestLevel();
  while (g_depth > 0 && g_stack[g_depth - 1].level >= level) g_depth--;
}

// Copies `id` into `out` when it is a valid id, else leaves `out` empty.
void copy_id(char* out, const char* id) {
  out[0] = '\0';
  if (id != nullptr && valid_id(id)) strlcpy(out, id, kMaxIdBytes + 1);
}

void push_string(JsonbParseState** st, const char* s, int len, JsonbIteratorToken token) {
  JsonbValue v;
  v.type = jbvString;
  v.val.string.val = const_cast<char*>(s);
  v.val.string.len = len;
  pushJsonbValue(st, token, &v);
}

// {"correlation_id": …, "causation_id": …} without the empty ones; nullptr when both are.
Jsonb* ids_object(const char* correlation, const char* causation) {
  if (correlation[0] == '\0' && causation[0] == '\0') return nullptr;
  JsonbParseState* st = nullptr;
  pushJsonbValue(&st, WJB_BEGIN_OBJECT, nullptr);
  if (correlation[0] != '\0') {
    push_string(&st, "correlation_id", 14, WJB_KEY);
    push_string(&st, correlation, static_cast<int>(strlen(correlation)), WJB_VALUE);
  }
  if (causation[0] != '\0') {
    push_string(&st, "causation_id", 12, WJB_KEY);
    push_string(&st, causation, static_cast<int>(strlen(causation)), WJB_VALUE);
  }
  return JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, nullptr));
}

// The setting's value when it is set; raises CS002 when it cannot be an id. The value is
// not echoed: the problem names the offending byte instead.
const char* setting_value() {
  if (g_setting == nullptr || g_setting[0] == '\0') return nullptr;
  if (auto problem = id_problem(g_setting))
    throw invalid_argument("invalid pg_consistency.correlation_id: " + *problem, {},
                           "Set it to 1 to " + std::to_string(kMaxIdBytes) +
                               " visible ASCII characters (a UUID, a request id), or to '' for none.");
  return g_setting;
}

void define_settings() {
  DefineCustomStringVariable(
      "pg_consistency.correlation_id",
      "Correlation id carried by the messages published and events appended outside handlers.",
      "Usually SET LOCAL per transaction; 1 to 320 visible ASCII characters, empty for none. "
      "Inside a consumer or subscription handler or a saga step, the handled message's ids are used instead.",
      &g_setting, "", PGC_USERSET, GUC_NOT_IN_SAMPLE, nullptr, nullptr, nullptr);
}

const pg::Component kComponent = {"correlation", define_settings, nullptr, nullptr, nullptr, nullptr};
pg::ComponentRegistrar registrar(&kComponent);

}  // namespace

int enter(const char* correlation, const char* causation) {
  if (!g_callbacks_registered) {
    RegisterXactCallback(at_xact_end, nullptr);
    RegisterSubXactCallback(at_subxact_end, nullptr);
    g_callbacks_registered = true;
  }
  if (g_depth >= kMaxDepth)
    ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                    errmsg("pg_consistency: handler calls nested more than %d deep", kMaxDepth)));
  Entry& e = g_stack[g_depth];
  e.level = GetCurrentTransactionNestLevel();
  copy_id(e.correlation, correlation);
  copy_id(e.causation, causation);
  return g_depth++;
}

int enter_event(Datum event_id, Datum metadata) {
  char* id = DatumGetCString(DirectFunctionCall1(uuid_out, event_id));
  char from_metadata[kMaxIdBytes + 1] = "";
  Jsonb* meta = DatumGetJsonbP(metadata);
  JsonbValue v;
  if (JB_ROOT_IS_OBJECT(meta) && getKeyJsonValueFromContainer(&meta->root, "correlation_id", 14, &v) &&
      v.type == jbvString && static_cast<std::size_t>(v.val.string.len) <= kMaxIdBytes) {
    memcpy(from_metadata, v.val.string.val, v.val.string.len);
    from_metadata[v.val.string.len] = '\0';
  }
  char correlation[kMaxIdBytes + 1];
  char causation[kMaxIdBytes + 1];
  {
    // Pure; its strings are gone before the next PostgreSQL call.
    Ids ids = of_event(from_metadata, id);
    strlcpy(correlation, ids.correlation.c_str(), sizeof correlation);
    strlcpy(causation, ids.causation.c_str(), sizeof causation);
  }
  pfree(id);
  return enter(correlation, causation);
}

void leave(int depth) {
  if (depth >= 0 && g_depth > depth) g_depth = depth;
}

Scope::Scope(const Ids& ids) {
  depth_ = pg::pg_call([&] { return enter(ids.correlation.c_str(), ids.causation.c_str()); });
}

Scope::~Scope() { leave(depth_); }

Jsonb* current_ids() {
  if (g_depth > 0) {
    const Entry& e = g_stack[g_depth - 1];
    return ids_object(e.correlation, e.causation);
  }
  const char* setting = setting_value();
  if (setting == nullptr) return nullptr;
  return ids_object(setting, "");
}

std::string current_correlation() {
  if (g_depth > 0) return g_stack[g_depth - 1].correlation;
  const char* setting = setting_value();
  return setting == nullptr ? std::string() : std::string(setting);
}

Jsonb* add_missing(Jsonb* obj, Jsonb* ids) {
  if (ids == nullptr) return obj;
  return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(ids), JsonbPGetDatum(obj)));
}

}  // namespace pgc::correlation
