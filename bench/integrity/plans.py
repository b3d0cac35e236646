"""Reads auto_explain's JSON plans (NOTICE lines) and prints how each table that grows
with traffic is scanned; exits 1 if one is read by a sequential scan."""
import json
import sys

GROWING = {"events", "streams", "saga_instances", "outbox", "dead_letters", "consumer_dead_letters"}

text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
decoder = json.JSONDecoder()
scans = {}
pos = 0
plans = 0
while True:
    at = text.find("plan:", pos)
    if at < 0:
        break
    start = text.find("{", at)
    doc, end = decoder.raw_decode(text[start:])
    pos = start + end
    plans += 1
    stack = [doc["Plan"]]
    while stack:
        node = stack.pop()
        rel = node.get("Relation Name")
        if rel in GROWING:
            scans.setdefault(rel, set()).add(node["Node Type"] + (" using " + node["Index Name"] if "Index Name" in node else ""))
        stack.extend(node.get("Plans", []))
print(f"  {plans} statements planned")
bad = []
for rel in sorted(scans):
    print(f"  {rel:24s} {', '.join(sorted(scans[rel]))}")
    if "Seq Scan" in scans[rel]:
        bad.append(rel)
print("  sequential scans of growing tables: " + (", ".join(bad) if bad else "none"))
sys.exit(1 if bad else 0)
