#!/usr/bin/env python3
"""Turns the soak's samples into soak.csv / rss.csv (for the plot), prints the figures and
the verdict, and exits 1 if a check fails.  Usage: report.py DIR (written by scripts/soak)."""
import csv
import os
import sys

# Bounds of the verdict (docs/operations.md, "Soak").
RSS_GROWTH_KB = 2048        # private memory a process may gain over the second half ...
RSS_GROWTH_FRACTION = 0.10  # ... or this fraction of what it had at half time, if larger
BOUNDED_GROWTH_BYTES = 1 << 20  # a table whose rows leave may grow this much in the 2nd half ...
BOUNDED_GROWTH_FRACTION = 0.25  # ... or this fraction of its half-time size, if larger
PER_ROW_GROWTH = 0.25       # bytes per retained row may rise this much over the 2nd half
# Tables that keep their rows by design, and the count of what they retain.
RETAINED = {"events": "events", "streams": "events", "snapshots": "events",
            "saga_instances": "sagas"}

d = sys.argv[1]


def rows(name):
    with open(os.path.join(d, name), newline="") as f:
        return list(csv.DictReader(f))


raw = rows("raw.csv")
for r in raw:
    for k in r:
        r[k] = float(r[k]) if k == "load1" else int(r[k])
procs = rows("processes.csv")
sizes = rows("sizes.csv")
workers = rows("workers.csv")
with open(os.path.join(d, "integrity.csv"), newline="") as f:
    integrity = list(csv.DictReader(f, fieldnames=["check_name", "ok", "detail"]))
with open(os.path.join(d, "crashes.log")) as f:
    crashes = [line.rstrip() for line in f if line.strip()]

last = raw[-1]["minute"]
mid = last // 2
minutes = [r["minute"] for r in raw]
by_minute = {r["minute"]: r for r in raw}
size_at = {}  # (minute, relation) -> bytes (table + indexes)
for s in sizes:
    size_at[(int(s["minute"]), s["relation"])] = int(s["table_bytes"]) + int(s["index_bytes"])
relations = sorted({s["relation"] for s in sizes})
anon = {}  # (pid, type) -> {minute: kB}
for p in procs:
    anon.setdefault((int(p["pid"]), p["backend_type"]), {})[int(p["minute"])] = int(p["rssanon_kb"])


def mb(b):
    return round(b / 1048576, 2)


def sagas(r):
    return sum(r[k] for k in ("sagas_running", "sagas_compensating", "sagas_completed",
                              "sagas_compensated", "sagas_failed"))


# soak.csv: one row a minute, rates as units per minute since the previous sample.
rates = [("appends", "appends"), ("publishes", "publishes"), ("delivered", "delivered"),
         ("sagas", "sagas_started"), ("twopc", "twopc"), ("inbox", "inbox"), ("projected", "projected")]
with open(os.path.join(d, "soak.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["minute", "schema_mb", "events_mb", "outbox_mb", "sagas_mb", "dedupe_mb", "relay_batches_mb",
                "outbox_pending", "dead_letters", "subscription_lag", "consumer_lag",
                "sagas_running", "sagas_compensating", "sagas_completed", "sagas_compensated",
                "sagas_failed"] + [n + "_per_min" for n, _ in rates] + ["load1"])
    prev = None
    for r in raw:
        m = r["minute"]
        w.writerow([m, mb(r["schema_bytes"]), mb(size_at.get((m, "events"), 0)),
                    mb(size_at.get((m, "outbox"), 0)), mb(size_at.get((m, "saga_instances"), 0)),
                    mb(size_at.get((m, "consumer_dedupe"), 0)), mb(size_at.get((m, "relay_batches"), 0)),
                    r["outbox_pending"],
                    r["dead_letters"] + r["consumer_dead_letters"], r["subscription_lag"],
                    r["consumer_lag"], r["sagas_running"], r["sagas_compensating"],
                    r["sagas_completed"], r["sagas_compensated"], r["sagas_failed"]]
                   + [(r[c] - prev[c]) * 60 // max(1, r["epoch"] - prev["epoch"]) if prev else ""
                      for _, c in rates] + [r["load1"]])
        prev = r
with open(os.path.join(d, "rss.csv"), "w", newline="") as f:
    w = csv.writer(f)
    keys = sorted(anon, key=lambda k: (k[1], k[0]))
    w.writerow(["minute"] + ["%s %d" % (t.replace("pg_consistency ", ""), p) for p, t in keys])
    for m in minutes:
        w.writerow([m] + [round(anon[k][m] / 1024, 2) if m in anon[k] else "" for k in keys])

# Figures.
first, end, half = raw[0], raw[-1], by_minute[mid]
span = max(1, end["epoch"] - first["epoch"])
print("== figures (%d minutes sampled; second half = minutes %d..%d)" % (last, mid, last))
for n, c in rates:
    print("   %-10s %8.1f/s on average" % (n, (end[c] - first[c]) / span))
print("   sagas by status at the end: running %d, compensating %d, completed %d, compensated %d, failed/aborted %d"
      % (end["sagas_running"], end["sagas_compensating"], end["sagas_completed"],
         end["sagas_compensated"], end["sagas_failed"]))
print("   outbox pending: max %d, at the end %d; dead letters %d (relay) + %d (inbox)"
      % (max(r["outbox_pending"] for r in raw), end["outbox_pending"], end["dead_letters"],
         end["consumer_dead_letters"]))
print("   subscription lag at the end %d events, consumer lag %d messages, in doubt %d"
      % (end["subscription_lag"], end["consumer_lag"], end["in_doubt"]))
print("   consistency schema: %.1f MB at minute %d, %.1f MB at the end; biggest relations (table + indexes):"
      % (mb(half["schema_bytes"]), mid, mb(end["schema_bytes"])))
for rel in sorted(relations, key=lambda r: -size_at.get((last, r), 0))[:6]:
    print("     %-24s %8.2f MB (minute %d: %.2f MB)" % (rel, mb(size_at.get((last, rel), 0)), mid,
                                                      mb(size_at.get((mid, rel), 0))))
print("   private memory (RssAnon) of the pg_consistency processes, minute %d -> %d:" % (mid, last))
for (pid, typ), series in sorted(anon.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    print("     %-32s pid %-7d %7.1f MB -> %7.1f MB (x%.3f; max %.1f MB)"
          % (typ, pid, series.get(mid, 0) / 1024, series.get(last, 0) / 1024,
             series.get(last, 0) / max(1, series.get(mid, 0)), max(series.values()) / 1024))

# Verdict.
checks = []


def check(name, ok, detail):
    checks.append(ok)
    print("   %-4s %-28s %s" % ("ok" if ok else "FAIL", name, detail))


print("   size per retained row, minute %d -> %d:" % (mid, last))
bad = []
for rel in relations:
    a, b = size_at.get((mid, rel), 0), size_at.get((last, rel), 0)
    if rel in RETAINED:
        unit = RETAINED[rel]
        na = half["events"] if unit == "events" else sagas(half)
        nb = end["events"] if unit == "events" else sagas(end)
        if na and nb and b >= 65536:
            print("     %-24s %6.0f -> %6.0f bytes per retained %s (x%.2f)"
                  % (rel, a / na, b / nb, unit[:-1], (b / nb) / max(1e-9, a / na)))
        if na and nb and (b / nb) > (a / na) * (1 + PER_ROW_GROWTH):
            bad.append("%s: %.0f -> %.0f bytes per %s row" % (rel, a / na, b / nb, unit[:-1]))
    elif b - a > max(BOUNDED_GROWTH_BYTES, BOUNDED_GROWTH_FRACTION * a):
        bad.append("%s: %.2f -> %.2f MB" % (rel, mb(a), mb(b)))
growth = []
for (pid, typ), series in anon.items():
    if mid in series and last in series:
        bound = max(RSS_GROWTH_KB, RSS_GROWTH_FRACTION * series[mid])
        growth.append((series[last] - series[mid], bound, typ, pid))
worst = max(growth, key=lambda g: g[0] - g[1]) if growth else None
print("== verdict")
check("worker memory flat", bool(growth) and all(g <= b for g, b, _, _ in growth),
      "largest RssAnon growth over the second half: %+.0f kB (%s, pid %d; bound %.0f kB)"
      % (worst[0], worst[2], worst[3], worst[1]) if worst else "no process sampled")

per_min = [(by_minute[m]["publishes"] - by_minute[m - 1]["publishes"]) for m in minutes if m >= 1]
limit = max(1, min(per_min)) if per_min else 1
pend = max(r["outbox_pending"] for r in raw if r["minute"] >= mid)
check("outbox bounded", pend <= limit,
      "most rows pending in the second half: %d (bound: one minute of publishes, %d)" % (pend, limit))

check("table sizes", not bad,
      "; ".join(bad) if bad else "retained tables grew with their rows (events %d -> %d, sagas %d -> %d); the others stayed bounded"
      % (half["events"], end["events"], sagas(half), sagas(end)))

ident = lambda m: sorted((w["kind"], w["database"], w["pid"], w["started_at"]) for w in workers if int(w["minute"]) == m)
pids = {m: sorted((p["pid"], p["backend_type"]) for p in procs if int(p["minute"]) == m) for m in minutes}
restarted = ident(0) != ident(last) or any(pids[m] != pids[0] for m in minutes)
check("no process restarts", not restarted and bool(pids[0]),
      "%d pg_consistency processes, same pids and start times in every sample" % len(pids[0])
      if not restarted else "worker_status or the process list changed: %s -> %s" % (ident(0), ident(last)))
check("no backend crash", not crashes, "server logs clean" if not crashes else crashes[0])
failing = [i["check_name"] for i in integrity if i["ok"] != "t"]
check("integrity", bool(integrity) and not failing,
      "check_integrity(): %d checks ok" % len(integrity) if not failing else "failing: " + ", ".join(failing))
idle = [(n, m) for n, c in rates for m in minutes if m >= 1 and by_minute[m][c] <= by_minute[m - 1][c]]
check("load the whole time", not idle,
      "every load kind made progress in every minute" if not idle else "no progress: %s" % idle[:4])
lag = max(r["subscription_lag"] for r in raw if r["minute"] >= mid)
appends = min(by_minute[m]["appends"] - by_minute[m - 1]["appends"] for m in minutes if m >= 1) if last else 0
check("subscription keeps up", lag <= max(1, appends),
      "largest subscription lag in the second half: %d events (bound: one minute of appends, %d)" % (lag, appends))
dead = end["dead_letters"] + end["consumer_dead_letters"]
check("no dead letters", dead == 0, "%d dead letters" % dead)
check("worker errors", end["worker_errors"] == first["worker_errors"],
      "worker_status errors: %d at the start, %d at the end" % (first["worker_errors"], end["worker_errors"]))
print("== soak %s" % ("passed" if all(checks) else "FAILED"))
sys.exit(0 if all(checks) else 1)
