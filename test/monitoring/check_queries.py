#!/usr/bin/env python3
"""Checks that the Grafana dashboard and the alert rules query only exported metrics.

usage: check_queries.py EXPORTED_NAMES DASHBOARD_JSON ALERTS_YML

EXPORTED_NAMES holds one sample name per line (as scraped: histogram samples end in
_bucket, _sum, _count). The dashboard must parse as JSON with unique panel ids and a query
in every panel; every pg_consistency_* name in a dashboard or alert expression must be
exported. Prints each problem and exits 1 if there is any.
"""
import json
import re
import sys

import yaml

NAME = re.compile(r"\bpg_consistency_[a-z0-9_]+")


def exprs_of_dashboard(d, problems):
    ids = set()
    out = []

    def walk(panels):
        for p in panels:
            if p.get("id") in ids:
                problems.append(f"dashboard: panel id {p.get('id')} used twice")
            ids.add(p.get("id"))
            if p.get("type") == "row":
                walk(p.get("panels", []))
                continue
            targets = [t.get("expr", "") for t in p.get("targets", [])]
            if not any(targets):
                problems.append(f"dashboard: panel '{p.get('title')}' has no query")
            out.extend((f"panel '{p.get('title')}'", e) for e in targets)

    walk(d.get("panels", []))
    for v in d.get("templating", {}).get("list", []):
        if isinstance(v.get("query"), str):
            out.append((f"variable {v.get('name')}", v["query"]))
    return out


def exprs_of_rules(r):
    return [(f"alert {rule.get('alert')}", rule["expr"]) for g in r["groups"] for rule in g["rules"]]


def main():
    names = {line.strip() for line in open(sys.argv[1]) if line.strip()}
    problems = []
    dashboard = json.load(open(sys.argv[2]))
    rules = yaml.safe_load(open(sys.argv[3]))
    queries = exprs_of_dashboard(dashboard, problems) + exprs_of_rules(rules)
    checked = 0
    for where, expr in queries:
        for name in NAME.findall(expr):
            checked += 1
            if name not in names:
                problems.append(f"{where}: {name} is not exported")
    for p in problems:
        print(p)
    print(f"{len(queries)} queries, {checked} metric references, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
