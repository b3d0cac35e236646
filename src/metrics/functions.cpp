// The SQL side of the latency metrics: consistency._metrics_latency() (rows for
// consistency.metrics()), consistency._latency_histograms() (one row per series with its
// buckets as arrays, the shape postgres_exporter's HISTOGRAM columns read) and
// consistency._saga_counts(). They read shared memory only: no table is scanned.
#include <string>
#include <vector>

#include "metrics/collect.hpp"
#include "metrics/component.hpp"
#include "pg/guard.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
}

namespace pgc::metrics {

namespace {

// The labels (plus `le` when given) as a jsonb object; values escaped by PostgreSQL (saga
// and step names are in the database encoding).
Datum labels_jsonb(const Labels& labels, const std::string* le) {
  StringInfoData buf;
  initStringInfo(&buf);
  appendStringInfoChar(&buf, '{');
  bool first = true;
  auto add = [&](const std::string& name, const std::string& value) {
    if (!first) appendStringInfoString(&buf, ", ");
    first = false;
    escape_json(&buf, name.c_str());
    appendStringInfoString(&buf, ": ");
    escape_json(&buf, value.c_str());
  };
  for (const auto& [name, value] : labels) add(name, value);
  if (le != nullptr) add("le", *le);
  appendStringInfoChar(&buf, '}');
  return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

const char* label(const Labels& labels, const char* name) {
  for (const auto& [n, v] : labels)
    if (n == name) return v.c_str();
  return nullptr;
}

Datum text_or_null(const char* s, bool* isnull) {
  *isnull = s == nullptr;
  return s == nullptr ? 0 : CStringGetTextDatum(s);
}

}  // namespace

// consistency._metrics_latency(): metric, kind, help, labels, value. Histogram samples are
// rows of kind 'histogram' named <family>_bucket / _sum / _count.
PGC_FUNCTION(pgc_metrics_latency) {
  pg::pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
  auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  Area* a = my_area();
  if (a == nullptr) return (Datum)0;  // shared memory needs preloading
  std::vector<HistogramSeries> hs = histograms(*a);
  std::vector<CounterSeries> cs = counters(*a);
  for (const HistogramSeries& h : hs) {
    for (const Sample& s : samples(h.snapshot)) {
      std::string name = std::string(h.family) + s.suffix;
      pg::pg_call([&] {
        Datum v[5] = {CStringGetTextDatum(name.c_str()), CStringGetTextDatum("histogram"),
                      CStringGetTextDatum(h.help), labels_jsonb(h.labels, s.le.empty() ? nullptr : &s.le),
                      Float8GetDatum(s.value)};
        bool n[5] = {false, false, false, false, false};
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
      });
    }
  }
  for (const CounterSeries& c : cs) {
    pg::pg_call([&] {
      Datum v[5] = {CStringGetTextDatum(c.metric), CStringGetTextDatum("counter"),
                    CStringGetTextDatum(c.help), labels_jsonb(c.labels, nullptr),
                    Float8GetDatum(static_cast<double>(c.value))};
      bool n[5] = {false, false, false, false, false};
      tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
    });
  }
  return (Datum)0;
}

// consistency._latency_histograms(): metric, saga, step, outcome, bounds (float8[], +Inf
// left out), buckets (bigint[], cumulative, one per bound), sum, count.
PGC_FUNCTION(pgc_latency_histograms) {
  pg::pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
  auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  Area* a = my_area();
  if (a == nullptr) return (Datum)0;
  std::vector<HistogramSeries> hs = histograms(*a);
  for (const HistogramSeries& h : hs) {
    pg::pg_call([&] {
      Datum bounds[kBounds.size()];
      Datum counts[kBounds.size()];
      for (std::size_t i = 0; i < kBounds.size(); i++) {
        bounds[i] = Float8GetDatum(kBounds[i]);
        counts[i] = Int64GetDatum(static_cast<int64>(h.snapshot.cumulative[i]));
      }
      Datum v[8];
      bool n[8] = {false, false, false, false, false, false, false, false};
      v[0] = CStringGetTextDatum(h.family);
      v[1] = text_or_null(label(h.labels, "saga"), &n[1]);
      v[2] = text_or_null(label(h.labels, "step"), &n[2]);
      v[3] = text_or_null(label(h.labels, "outcome"), &n[3]);
      v[4] = PointerGetDatum(
          construct_array(bounds, kBounds.size(), FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
      v[5] = PointerGetDatum(
          construct_array(counts, kBounds.size(), INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
      v[6] = Float8GetDatum(h.snapshot.sum_seconds);
      v[7] = Int64GetDatum(static_cast<int64>(h.snapshot.count()));
      tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
    });
  }
  return (Datum)0;
}

// consistency._saga_counts(): saga, status, total (pg_consistency_sagas_total).
PGC_FUNCTION(pgc_saga_counts) {
  pg::pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
  auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  Area* a = my_area();
  if (a == nullptr) return (Datum)0;
  std::vector<CounterSeries> cs = counters(*a);
  for (const CounterSeries& c : cs) {
    if (std::string(c.metric) != kSagasTotal) continue;
    pg::pg_call([&] {
      Datum v[3] = {CStringGetTextDatum(label(c.labels, "saga")),
                    CStringGetTextDatum(label(c.labels, "status")),
                    Int64GetDatum(static_cast<int64>(c.value))};
      bool n[3] = {false, false, false};
      tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
    });
  }
  return (Datum)0;
}

}  // namespace pgc::metrics
