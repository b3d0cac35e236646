#!/usr/bin/env bash
# The shipping service: reads CreateShipment commands from Kafka and replies over SQL
set -euo pipefail
root="$1"; cluster="$2"
psql_shop() { "$root/scripts/pg-cluster" psql "$cluster" -d shop -v ON_ERROR_STOP=1 "$@"; }
# saga_id and step of every command on the topic (headers), read_committed.
commands() {
  kcat -C -b "$PGC_DEMO_BROKER" -t shipping.commands -o beginning -e -q -J \
       -X isolation.level=read_committed 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    h = m.get("headers") or []
    d = dict(zip(h[0::2], h[1::2]))
    if "saga_id" in d and "step" in d:
        print(d["saga_id"] + "\t" + d["step"])' | sort -u
}
answered=0
for _ in $(seq 1 150); do
  while IFS=$'\t' read -r saga step; do
    waiting=$(psql_shop -qAt -c "SELECT count(*) FROM consistency.sagas
                                  WHERE id = '$saga' AND current_step = '$step' AND status = 'running'")
    [ "$waiting" = 1 ] || continue
    psql_shop -qAt -c "SELECT consistency.complete_step('$saga', '$step', '{\"tracking\": \"TRK-${saga:0:8}\"}')" >/dev/null
    echo "   shipping: created shipment for saga $saga"
    answered=$((answered + 1))
  done < <(commands)
  pending=$(psql_shop -qAt -c "SELECT count(*) FROM consistency.sagas WHERE status IN ('running', 'compensating')")
  [ "$pending" = 0 ] && break
  sleep 0.2
done
echo "   shipping: answered $answered command(s)"
